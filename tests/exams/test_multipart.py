"""The streaming multipart reader, fed in pieces of every small size."""

from __future__ import annotations

import io

import pytest

from exams.multipart import MultipartError, header_params, iter_parts


def _body(parts: list[bytes], boundary: str = "XyZ") -> bytes:
    out = b"preamble to ignore\r\n"
    for index, data in enumerate(parts):
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\nX-Index: {index}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue".encode()


def _reader(body: bytes, piece: int):
    stream = io.BytesIO(body)
    return lambda n: stream.read(min(n, piece))


def _collect(body: bytes, piece: int, boundary: str = "XyZ"):
    return [(p.headers, p.file.read(), p.size) for p in iter_parts(_reader(body, piece), boundary)]


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_parts_come_out_whole_however_the_body_is_split(piece):
    # Payloads that contain CRLF, dashes and a near-boundary, to trip a naive search.
    parts = [b"\r\n--XyQ\r\n--Xy" * 3, b"", b"-" * 50 + b"\r\n-", bytes(range(256)) * 4]
    found = _collect(_body(parts), piece)
    assert [data for _, data, _ in found] == parts
    assert [size for _, _, size in found] == [len(p) for p in parts]
    assert [headers["x-index"] for headers, _, _ in found] == ["0", "1", "2", "3"]
    assert found[0][0]["content-type"] == "application/dicom"


def test_a_body_that_ends_inside_a_part_is_an_error():
    body = _body([b"abc" * 100])[:-40]
    with pytest.raises(MultipartError, match="ends inside a part"):
        _collect(body, 7)


def test_a_body_without_the_boundary_is_an_error():
    with pytest.raises(MultipartError, match="no multipart boundary"):
        _collect(b"just bytes" * 10, 5)


def test_header_parameters_are_parsed_with_quotes():
    params = header_params('multipart/related; type="application/dicom"; boundary="a b;c"')
    assert params == {"type": "application/dicom", "boundary": "a b;c"}


def test_a_part_within_the_memory_limit_stays_in_memory_and_a_larger_one_goes_to_a_file(settings):
    settings.EXAMS_UPLOAD_MEMORY_BYTES = 1000
    small, large = b"s" * 1000, b"L" * 1001
    body = b"".join(b"--b\r\n\r\n" + data + b"\r\n" for data in (small, large)) + b"--b--\r\n"
    chunks = iter([body])
    seen = []
    for part in iter_parts(lambda n: next(chunks, b""), "b"):
        seen.append((part.file.read(), isinstance(part.file, io.BytesIO)))
    assert seen == [(small, True), (large, False)]


def test_a_part_spilled_to_a_file_keeps_every_byte_across_reads_of_any_size(settings):
    settings.EXAMS_UPLOAD_MEMORY_BYTES = 4096
    parts = [bytes(range(256)) * 100, b"x" * 4096, b"y" * 4097]  # spill mid-part, at, past the limit
    for piece in (1, 7, 1000, 5000, 1 << 20):
        found = _collect(_body(parts), piece)
        assert [data for _, data, _ in found] == parts
        assert [size for _, _, size in found] == [len(p) for p in parts]
