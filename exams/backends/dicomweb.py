"""A DICOMweb PACS (Orthanc, dcm4chee, cloud DICOM stores): STOW-RS, QIDO-RS and WADO-RS.

One pooled ``requests`` session per process, connect/read timeouts, retries on idempotent GETs
only (a STOW POST is never repeated behind the caller's back). Auth: bearer token when
``token`` is set, else basic when ``username`` is, else none. Failures become ``PacsError``
subclasses whose messages name the PACS and never carry patient data.
"""

from __future__ import annotations

import secrets
import shutil
from urllib.parse import quote, urlsplit

import requests
from django.core.checks import Error
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from dicomsvc.dicom import status
from dicomsvc.dicom.part10 import Part10Info
from dicomsvc.dicom.vr import format_da
from exams.backends.base import (
    InstanceNotFound,
    PacsBackend,
    PacsError,
    PacsTimeout,
    PacsUnauthorized,
    PacsUnavailable,
    ProxiedResponse,
    StoreResult,
    StudyFilter,
)
from exams.dicomjson import INCLUDE_FIELDS, row_from_dicom_json
from exams.multipart import MultipartError, SpoolWriter, header_params, iter_parts

DICOM_JSON = "application/dicom+json"
ACCEPT_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
COPY_CHUNK = 1024 * 1024


class _MultipartBody:
    """A STOW-RS body streamed from the file, with a known length (no chunked encoding)."""

    def __init__(self, fileobj, size: int, boundary: str):
        self._pieces = [
            (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode(),
            fileobj,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        self._length = len(self._pieces[0]) + size + len(self._pieces[2])
        self._position = 0
        fileobj.seek(0)

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._position

    def read(self, n: int = -1) -> bytes:
        out = b""
        while self._pieces and (n < 0 or len(out) < n):
            piece = self._pieces[0]
            want = -1 if n < 0 else n - len(out)
            if isinstance(piece, bytes):
                chunk, rest = (piece, b"") if want < 0 else (piece[:want], piece[want:])
                if rest:
                    self._pieces[0] = rest
                else:
                    self._pieces.pop(0)
            else:
                chunk = piece.read(want)
                if not chunk or want < 0:
                    self._pieces.pop(0)
            out += chunk
        self._position += len(out)
        return out


def _timed_out(exc: requests.RequestException) -> bool:
    """A read timeout, also when urllib3's retries wrapped it into a ConnectionError."""
    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, ReadTimeoutError)


class DicomWebBackend(PacsBackend):
    name = "dicomweb"
    proxies_dicomweb = True

    def __init__(
        self,
        *,
        url: str = "",
        token: str = "",
        username: str = "",
        password: str = "",
        name: str = "",
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        retries: int = 2,
        pool_size: int = 10,
        max_matches: int = 5000,
        **options,
    ):
        super().__init__(**options)
        self.url = url.rstrip("/")
        self.label = name or urlsplit(self.url).netloc or "the PACS"
        self.timeout = (connect_timeout, read_timeout)
        self.max_matches = max_matches
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            allowed_methods=frozenset({"GET", "HEAD"}),
            status_forcelist=(502, 503, 504),
            backoff_factor=0.2,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif username:
            self.session.auth = (username, password)

    # -- HTTP ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            if _timed_out(exc):
                raise PacsTimeout(f"The PACS at {self.label} did not answer in time.") from None
            raise PacsUnavailable(f"The PACS at {self.label} cannot be reached.") from None
        if response.status_code in (401, 403):
            response.close()
            raise PacsUnauthorized(
                f"The PACS at {self.label} refused our credentials (HTTP {response.status_code}): "
                "check PACS_AUTHORIZATION_TOKEN or PACS_USERNAME / PACS_PASSWORD."
            )
        if response.status_code >= 500:
            response.close()
            raise PacsUnavailable(f"The PACS at {self.label} failed (HTTP {response.status_code}).")
        return response

    def _qido(self, path: str, params: dict, level: str) -> list[dict] | None:
        params = {**params, "includefield": INCLUDE_FIELDS[level]}  # repeated: some PACS do not split "%2C"
        response = self._request("GET", path, params=params, headers={"Accept": DICOM_JSON})
        if response.status_code == 404:
            return None
        if response.status_code == 204 or not response.content:
            return []
        if response.status_code >= 400:
            raise PacsError(f"The PACS at {self.label} refused the query (HTTP {response.status_code}).")
        try:
            datasets = response.json()
        except ValueError:
            raise PacsError(f"The PACS at {self.label} answered a query with invalid JSON.") from None
        return [row_from_dicom_json(ds, level) for ds in datasets if isinstance(ds, dict)]

    # -- store ---------------------------------------------------------------------------------

    def store(self, *, fileobj, info: Part10Info, size: int, sha256: str) -> StoreResult:
        boundary = "dicomsvc-" + secrets.token_hex(16)
        body = _MultipartBody(fileobj, size, boundary)
        response = self._request(
            "POST",
            "/studies",
            data=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": DICOM_JSON,
                "Content-Length": str(len(body)),
            },
        )
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        if isinstance(answer, list):
            answer = answer[0] if answer else {}
        failed = (answer.get("00081198") or {}).get("Value") or []
        if failed or response.status_code >= 400:
            code = status.PROCESSING_FAILURE
            for item in failed:
                values = (item.get("00081197") or {}).get("Value") or []
                if values:
                    code = int(values[0])
            return StoreResult(
                "failed", f"the PACS at {self.label} refused the instance (HTTP {response.status_code})", code
            )
        return StoreResult("stored")

    # -- queries -------------------------------------------------------------------------------

    def search_studies(self, flt: StudyFilter, *, limit: int, offset: int) -> list[dict]:
        # The PACS pages in its own order: fetch the patient's matches (a bounded number), then
        # order newest first and page here, so both backends page alike.
        params: dict[str, str | int] = {"limit": self.max_matches}
        if flt.patient_id is not None:
            params["PatientID"] = flt.patient_id
        if flt.study_uid is not None:
            params["StudyInstanceUID"] = flt.study_uid
        if flt.date_from or flt.date_to:
            params["StudyDate"] = f"{format_da(flt.date_from)}-{format_da(flt.date_to)}"
        if flt.modality is not None:
            params["ModalitiesInStudy"] = flt.modality
        if flt.accession_number is not None:
            params["AccessionNumber"] = flt.accession_number
        rows = self._qido("/studies", params, "study") or []
        # Exact match on PatientID: a PACS may treat it as a pattern ("*" or "?" in an ID).
        if flt.patient_id is not None:
            rows = [row for row in rows if row["patient_id"] == flt.patient_id]
        rows.sort(key=lambda r: (r["study_date"] or "", r["study_time"] or ""), reverse=True)
        return rows[offset : offset + limit]

    def _study_is_patients(self, study_uid: str, patient_id: str | None) -> bool:
        return bool(
            self.search_studies(StudyFilter(study_uid=study_uid, patient_id=patient_id), limit=1, offset=0)
        )

    def search_series(self, *, study_uid: str, patient_id: str | None) -> list[dict] | None:
        if not self._study_is_patients(study_uid, patient_id):
            return None
        rows = self._qido(f"/studies/{quote(study_uid)}/series", {}, "series")
        if rows is None:
            return None
        rows = [row for row in rows if row["series_uid"]]
        rows.sort(key=lambda r: (r["series_number"] is None, r["series_number"] or 0))
        return rows

    def search_instances(
        self, *, study_uid: str, series_uid: str, patient_id: str | None
    ) -> list[dict] | None:
        if not self._study_is_patients(study_uid, patient_id):
            return None
        rows = self._qido(f"/studies/{quote(study_uid)}/series/{quote(series_uid)}/instances", {}, "instance")
        if not rows:
            return None  # a stored series holds at least one instance
        rows.sort(key=lambda r: (r["instance_number"] is None, r["instance_number"] or 0))
        return rows

    def open_instance(self, *, study_uid: str, series_uid: str, instance_uid: str):
        path = f"/studies/{quote(study_uid)}/series/{quote(series_uid)}/instances/{quote(instance_uid)}"
        response = self._request(
            "GET",
            path,
            # identity: DICOM pixel data gains little from gzip and costs the PACS CPU.
            # transfer-syntax=*: the stored bytes as they are (the default would be transcoding to
            # Explicit VR Little Endian, which is neither byte for byte nor always possible).
            headers={"Accept": ACCEPT_AS_STORED, "Accept-Encoding": "identity"},
            stream=True,
        )
        with response:
            if response.status_code in (400, 404):
                raise InstanceNotFound(instance_uid)
            if response.status_code >= 300:
                raise PacsError(
                    f"The PACS at {self.label} refused the retrieval (HTTP {response.status_code})."
                )
            spool = SpoolWriter()
            try:
                self._copy_first_part(response, spool)
            except BaseException:
                spool.close()
                raise
        return spool.finish()

    def _copy_first_part(self, response: requests.Response, spool: SpoolWriter) -> None:
        content_type = response.headers.get("Content-Type", "")
        raw = response.raw

        def read(n: int) -> bytes:
            return raw.read(n, decode_content=True)

        if content_type.lower().startswith("multipart/"):
            boundary = header_params(content_type).get("boundary", "")
            try:
                for part in iter_parts(read, boundary):
                    shutil.copyfileobj(part.file, spool, COPY_CHUNK)
                    break
                else:
                    raise InstanceNotFound("empty WADO-RS response")
            except MultipartError:
                raise PacsError(f"The PACS at {self.label} sent a malformed WADO-RS response.") from None
        else:
            while chunk := read(COPY_CHUNK):
                spool.write(chunk)

    def dicomweb_get(self, path: str, *, query: list[tuple[str, str]], accept: str) -> ProxiedResponse:
        # Streamed: a study retrieval passes through chunk by chunk, never held here whole.
        response = self._request(
            "GET", path, params=query, headers={"Accept": accept, "Accept-Encoding": "identity"}, stream=True
        )
        headers = {
            name: response.headers[name]
            for name in ("ETag", "Warning", "Content-Length", "Cache-Control")
            if name in response.headers
        }
        return ProxiedResponse(
            status_code=response.status_code,
            content_type=response.headers.get("Content-Type", ""),
            headers=headers,
            chunks=response.raw.stream(COPY_CHUNK, decode_content=True),
            close=response.close,
            remote_root=self.url,
        )

    def check(self) -> list:
        if not self.url:
            return [
                Error(
                    "PACS_BACKEND=dicomweb needs PACS_SERVICE_URL (the DICOMweb root URL).", id="exams.E003"
                )
            ]
        if urlsplit(self.url).scheme not in ("http", "https"):
            return [Error("PACS_SERVICE_URL must be an http:// or https:// URL.", id="exams.E003")]
        return []


__all__ = ["DicomWebBackend"]
