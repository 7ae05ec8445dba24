"""Keep DICOM values out of the logs.

pydicom logs (and warns) the offending value when it reads an invalid one, e.g. ``Invalid value
for VR PN: 'ROSSI^MARIO...'``: a patient's name in a log line. ``install()`` adds a filter to the
``pydicom`` logger that keeps the record but replaces any message quoting a value with the rule
alone.
"""

from __future__ import annotations

import logging
import re
import warnings

_QUOTED = re.compile(r"""(:\s*)?(b?'[^']*'|b?"[^"]*")""")


class ScrubValuesFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is dropped, not raised
            return False
        record.msg = _QUOTED.sub(" <value not logged>", message)
        record.args = None
        return True


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        logging.getLogger("pydicom").addFilter(ScrubValuesFilter())
        # pydicom also raises each of those as a UserWarning, printed on stderr with the value; the
        # scrubbed log record above already carries the rule, so the warning adds only the leak.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        _installed = True
