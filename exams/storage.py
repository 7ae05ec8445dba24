"""The default storage of instance files: Django's FileSystemStorage, with a shorter save.

An instance upload is held in memory (``exams.multipart.SpoolWriter``), its name is new (made of
validated UIDs and the start of the content hash) and its directory usually exists. Such a file is
written from the upload's own buffer in one ``write``, with the permissions and group Django's
storage gives: about five system calls instead of fifteen, no copy, and no pathlib work. Anything
else (a name with other characters, a spilled upload, a missing directory, a name taken, an
overwriting storage) takes Django's own ``save``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
# Relative names whose components are plain (no "." or ".." component, no separator but "/").
_PLAIN_NAME = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z._-]*(?:/[0-9A-Za-z_-][0-9A-Za-z._-]*)*")


class InstanceFileStorage(FileSystemStorage):
    @cached_property
    def _location_gid(self) -> int | None:
        try:
            return os.stat(self.location).st_gid
        except OSError:
            return None

    def save(self, name, content, max_length=None):
        source = getattr(content, "file", None)
        if (
            isinstance(name, str)
            and isinstance(source, io.BytesIO)
            and not self._allow_overwrite
            and os.name == "posix"
            and (max_length is None or len(name) <= max_length)
            and _PLAIN_NAME.fullmatch(name)
        ):
            saved = self._save_new(name, source)
            if saved is not None:
                return saved
        return super().save(name, content, max_length=max_length)

    def _save_new(self, name: str, source: io.BytesIO) -> str | None:
        """Write ``source`` under ``name`` if nothing is there and its directory exists; None
        otherwise (Django's save then creates the directory or picks another name)."""
        full_path = os.path.join(self.location, name)
        try:
            fd = os.open(full_path, _CREATE, 0o666)
        except (FileNotFoundError, FileExistsError):
            return None
        try:
            with source.getbuffer() as data:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
            if self.file_permissions_mode is not None:
                os.fchmod(fd, self.file_permissions_mode)
            gid = self._location_gid
            if gid is not None and os.fstat(fd).st_gid != gid:
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, -1, gid)
        except BaseException:
            os.close(fd)
            os.unlink(full_path)
            raise
        os.close(fd)
        return name
