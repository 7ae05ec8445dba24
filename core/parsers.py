"""DRF parsers that apply ``core.inputs``' rules to request bodies (the defaults in REST_FRAMEWORK)."""

from __future__ import annotations

from rest_framework import parsers

from core.inputs import json_body, nul_error, nul_path


class JSONParser(parsers.JSONParser):
    """``core.inputs.json_body``: bounded nesting, no NUL, strict JSON, a 400 naming the field."""

    def parse(self, stream, media_type=None, parser_context=None):
        return json_body(stream.read())


def _check_form(data) -> None:
    for name in data:
        if nul_path([name, *data.getlist(name)]) is not None:
            raise nul_error(name.replace("\x00", "\\u0000"), "field")


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _check_form(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _check_form(parsed.data)
        for name, upload in parsed.files.items():
            if "\x00" in name or "\x00" in (upload.name or ""):
                raise nul_error(name.replace("\x00", "\\u0000"), "file field")
        return parsed
