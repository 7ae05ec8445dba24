"""Specific Character Set (0008,0005) values, defined once (PS3.3 C.12.1.1.2)."""

SPECIFIC_CHARACTER_SET_TAG = "00080005"
# UTF-8: what every data set we build says (the reference docs misspell it "ISO-IR 192").
ISO_IR_192 = "ISO_IR 192"
