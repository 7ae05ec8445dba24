"""Instance files in S3-compatible object storage: django-storages' S3Storage, streaming both ways.

``EXAMS_STORAGE_BACKEND=exams.s3storage.S3InstanceStorage`` (the ``s3`` extra). django-storages'
own ``S3Storage`` works too, but its files download the whole object into memory before the first
byte can be read (a SpooledTemporaryFile that, with the default ``max_memory_size`` of 0, never
spills), so retrieving or rendering a 1 GB multi-frame instance would hold 1 GB in the web worker.
Here a file opened for reading is a seekable stream of ranged GETs:

- the first GET is made by ``open`` (it answers 404 for a missing object, as a local file would,
  and gives the size), and asks for the first ``WINDOW`` bytes, so an ordinary instance is one
  round trip;
- reading on from where the last range ended asks for the next range, twice as long each time up
  to ``MAX_WINDOW`` (a 1 GB retrieval is about twenty GETs, each read to its end, so the HTTP
  connection goes back to the pool);
- a seek elsewhere (the renderer reads the header, then jumps to one frame) starts a new range
  there; memory is the read buffer, whatever the object's size.

An instance below ``multipart_threshold`` is uploaded with one PutObject; a larger one goes
through boto3's managed transfer as in django-storages, with a bounded part size and
concurrency: an instance past ``multipart_threshold`` is a multipart upload that holds at most
``max_concurrency`` parts of ``multipart_chunksize`` bytes in memory at once (4 x 8 MiB by
default; ``OPTIONS["transfer_config"]`` takes a dict of ``boto3.s3.transfer.TransferConfig``
arguments to change it).
"""

from __future__ import annotations

import io

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from django.core.files import File
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

WINDOW = 1024 * 1024
MAX_WINDOW = 64 * 1024 * 1024
BUFFER = 256 * 1024
TRANSFER_DEFAULTS = {
    "multipart_threshold": 8 * 1024 * 1024,
    "multipart_chunksize": 8 * 1024 * 1024,
    "max_concurrency": 4,
}


class _RangedObject(io.RawIOBase):
    """One S3 object as a seekable raw stream of ranged GETs (see the module docstring)."""

    def __init__(self, client, bucket: str, key: str):
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._position = 0
        self._body = None  # the streaming body of the range being read ...
        self._body_position = 0  # ... the object offset of its next byte ...
        self._body_end = 0  # ... and the offset where the range ends
        self._window = WINDOW
        self._open_range(0)  # raises FileNotFoundError for a missing object

    def _open_range(self, start: int) -> None:
        self._close_body()
        end = start + self._window  # exclusive
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end - 1}"
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                raise FileNotFoundError(self._key) from None
            if status == 416 and start == 0:  # an empty object has no first range
                self.size = 0
                return
            raise
        content_range = response.get("ContentRange") or ""
        if "/" in content_range:
            self.size = int(content_range.rsplit("/", 1)[1])
        else:  # a server that ignores Range sends the whole object
            self.size = response["ContentLength"]
        self._body = response["Body"]
        self._body_position = start
        self._body_end = start + response["ContentLength"]

    def _close_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer) -> int:
        if self._position >= self.size:
            return 0
        if (
            self._body is None
            or self._body_position != self._position
            or self._body_position >= self._body_end
        ):
            sequential = self._body_position == self._position
            self._window = min(self._window * 2, MAX_WINDOW) if sequential else WINDOW
            self._window = max(self._window, len(buffer))
            self._open_range(self._position)
            if self._body is None:
                return 0
        count = min(len(buffer), self._body_end - self._body_position)
        data = self._body.read(count)
        if not data:
            raise OSError(f"object storage ended the range of {self._key!r} early")
        buffer[: len(data)] = data
        self._position += len(data)
        self._body_position += len(data)
        if self._body_position >= self._body_end:
            self._close_body()  # read to its end: the connection goes back to the pool
        return len(data)

    def close(self) -> None:
        self._close_body()
        super().close()


class S3InstanceStorage(S3Storage):
    """django-storages' S3Storage with ranged reads and bounded uploads; the same OPTIONS, plus
    ``transfer_config`` as a dict."""

    def __init__(self, **settings):
        transfer = settings.get("transfer_config")
        if transfer is None or isinstance(transfer, dict):
            config = TransferConfig(**{**TRANSFER_DEFAULTS, **(transfer or {})})
            # s3transfer reads up to max_in_memory_upload_chunks parts ahead of the uploads (10 by
            # default: 80 MiB of 8 MiB parts); one part ahead per upload thread keeps them all busy.
            config.max_in_memory_upload_chunks = config.max_request_concurrency
            settings["transfer_config"] = config
        super().__init__(**settings)

    def _save(self, name, content):
        # An object below the multipart threshold (every ordinary instance) is one PutObject: boto3's
        # managed transfer costs about twice its CPU (6-8 ms against 3.4 ms per 0.5 MB object,
        # measured on moto), for a thread pool and futures that a single request does not need.
        size = getattr(content, "size", None)
        if self.gzip or size is None or size >= self.transfer_config.multipart_threshold:
            return super()._save(name, content)
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        content.seek(0)
        source = getattr(content, "file", None)
        body = source if isinstance(source, io.BytesIO) else content.read()  # no copy of a BytesIO
        self.bucket.Object(key).put(Body=body, **self._get_write_parameters(key, content))
        return cleaned

    def _open(self, name, mode="rb"):
        if "w" in mode or "+" in mode or "a" in mode:
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        raw = _RangedObject(self.connection.meta.client, self.bucket_name, key)
        return File(io.BufferedReader(raw, BUFFER), name=name)
