"""Date and time formats of the console (Django's FORMAT_MODULE_PATH): unambiguous and to the second.

English's defaults write "8 a.m." and "Dec. 2, 2026, 1:37 p.m." (no seconds; no minutes on the hour):
a scheduler reads times in 24 hours as DICOM writes them, and an audit trail needs its seconds.
Only display formats are set; input formats stay Django's English ones.
"""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
MONTH_DAY_FORMAT = "F j"
YEAR_MONTH_FORMAT = "F Y"
FIRST_DAY_OF_WEEK = 1  # Monday
