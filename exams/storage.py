"""The default storage of instance files: Django's FileSystemStorage, with a shorter save.

An instance upload is held in memory (``exams.multipart.SpoolWriter``), its name is new (it
holds the SOP Instance UID and the start of the content hash) and its directory usually exists.
Such a file is written from the upload's own buffer in one ``write``, with the permissions and
group Django's storage gives: about five system calls instead of fifteen, and no copy. Anything
else (a spilled upload, a missing directory, a name taken, overwriting storages) takes Django's
own ``_save``.
"""

from __future__ import annotations

import contextlib
import io
import os

from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class InstanceFileStorage(FileSystemStorage):
    @cached_property
    def _location_gid(self) -> int | None:
        try:
            return os.stat(self.location).st_gid
        except OSError:
            return None

    def _save(self, name, content):
        source = getattr(content, "file", None)
        if not isinstance(source, io.BytesIO) or self._allow_overwrite or os.name != "posix":
            return super()._save(name, content)
        full_path = self.path(name)
        try:
            fd = os.open(full_path, _CREATE, 0o666)
        except (FileNotFoundError, FileExistsError):
            return super()._save(name, content)  # creates the directories / picks another name
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
        return os.path.relpath(full_path, self.location).replace("\\", "/")
