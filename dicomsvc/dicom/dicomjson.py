"""DICOM JSON pieces shared by every JSON front (PS3.18 Annex F): person names and the character set.

Each front (worklist, exams, and the standard services beside them) builds its own data sets from
its own rows for speed, with these encoders, so that a name or a character set reads the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dicomsvc.dicom.charsets import ISO_IR_192, SPECIFIC_CHARACTER_SET_TAG

PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def pn_to_json(value: str) -> dict[str, str]:
    """One PN value ("Family^Given=ideographic=phonetic") as its JSON object (PS3.18 F.2.2);
    empty component groups are left out."""
    groups = dict(zip(PN_GROUPS, value.split("="), strict=False))
    return {group: text for group, text in groups.items() if text}


def pn_from_json(value: Mapping[str, Any]) -> str:
    """The PN value of a JSON person name object (PS3.18 F.2.2), without trailing empty groups."""
    return "=".join(str(value.get(group) or "") for group in PN_GROUPS).rstrip("=")


def character_set_element() -> tuple[str, dict[str, Any]]:
    """The (0008,0005) element of every data set we build: UTF-8 (ISO_IR 192)."""
    return SPECIFIC_CHARACTER_SET_TAG, {"vr": "CS", "Value": [ISO_IR_192]}
