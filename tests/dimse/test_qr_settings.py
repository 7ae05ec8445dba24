"""DIMSE_MOVE_DESTINATIONS parsing, and the module graph of the DIMSE services (issue 12)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dimse
from dimse.qr import Destination, parse_destinations


def test_move_destinations_parse():
    assert parse_destinations(["DEST@10.0.0.5:104", " PACS2 @pacs.example.org:11112"]) == {
        "DEST": Destination("DEST", "10.0.0.5", 104),
        "PACS2": Destination("PACS2", "pacs.example.org", 11112),
    }
    assert parse_destinations(["V6@[::1]:4242"])["V6"] == Destination("V6", "::1", 4242)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("DEST", "AETITLE@host:port"),
        ("DEST@host", "AETITLE@host:port"),
        ("DEST@host:x", "AETITLE@host:port"),
        ("@host:104", "AE title"),
        ("A_TITLE_LONGER_THAN_16@host:104", "AE title"),
        ("DEST@host:0", "port"),
    ],
)
def test_bad_move_destination_names_the_entry(entry, reason):
    with pytest.raises(ValueError, match=reason):
        parse_destinations([entry])


def test_services_do_not_import_the_listener():
    """No DIMSE service module imports dimse.scp, not even for type checking (issue 12: scp and
    store imported each other); the listener imports the services, never the reverse."""
    root = Path(dimse.__file__).parent
    offenders = []
    for path in root.glob("*.py"):
        if path.name == "scp.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if "dimse.scp" in names:
                offenders.append(path.name)
    assert offenders == []
