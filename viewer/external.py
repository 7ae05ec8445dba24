"""Compatibility mode: obtain viewer tokens from an external DICOM viewer service.

When DICOM_VIEWER_URL, VIEWER_GET_TOKEN_ENDPOINT and VIEWER_AUTHORIZATION_TOKEN are all set, ``GET /token``
forwards its query (studyUID, patientID, user, role) to ``DICOM_VIEWER_URL + VIEWER_GET_TOKEN_ENDPOINT``
with ``Authorization: Bearer <VIEWER_AUTHORIZATION_TOKEN>`` (or the value as given when it names its own
scheme, e.g. ``Basic ...``) and returns the token it answers unchanged. The service may answer
``{"token": "..."}`` or the bare token as text.
"""

from __future__ import annotations

import requests
from django.conf import settings


class ExternalViewerError(Exception):
    """The external viewer service failed; ``status`` is 502 (bad answer) or 504 (no answer in time)."""

    def __init__(self, message: str, *, status: int = 502):
        super().__init__(message)
        self.status = status


def enabled() -> bool:
    return bool(
        settings.DICOM_VIEWER_URL
        and settings.VIEWER_GET_TOKEN_ENDPOINT
        and settings.VIEWER_AUTHORIZATION_TOKEN
    )


def _url() -> str:
    return settings.DICOM_VIEWER_URL.rstrip("/") + "/" + settings.VIEWER_GET_TOKEN_ENDPOINT.lstrip("/")


def _authorization() -> str:
    value = settings.VIEWER_AUTHORIZATION_TOKEN
    return value if " " in value else f"Bearer {value}"


def external_token_get(*, study_uid: str, patient_id: str | None, user: str | None, role: str) -> str:
    params = {"studyUID": study_uid, "role": role}
    if patient_id:
        params["patientID"] = patient_id
    if user:
        params["user"] = user
    try:
        response = requests.get(
            _url(),
            params=params,
            headers={"Authorization": _authorization(), "Accept": "application/json, text/plain"},
            timeout=settings.VIEWER_EXTERNAL_TIMEOUT,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise ExternalViewerError("The external viewer service did not answer in time.", status=504) from None
    except requests.RequestException:
        raise ExternalViewerError("The external viewer service cannot be reached.") from None
    if response.status_code != 200:
        raise ExternalViewerError(f"The external viewer service answered HTTP {response.status_code}.")
    token: object = None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
    else:
        token = response.text.strip()
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise ExternalViewerError("The external viewer service answered without a token.")
    return token
