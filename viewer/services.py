"""Issuing viewer tokens and opening viewer sessions (the writes of the viewer app)."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, Outcome, audit_record
from exams import selectors as exams
from viewer import external
from viewer.models import RedeemedToken
from viewer.selectors import first_value, study_view
from viewer.tokens import Grant, TokenInvalid, grant_decode, grant_encode, new_grant, session_for


class StudyNotFound(Exception):
    """No such study, or not that patient's (deliberately the same error)."""


def _audit(actor: Actor, **fields) -> None:
    audit_record(actor=actor.name, actor_type=actor.kind, client_address=actor.address, **fields)


def viewer_token_issue(
    *,
    study_uid: str,
    patient_id: str | None = None,
    user: str | None = None,
    role: str = "patient",
    single_use: bool = False,
    actor: Actor,
) -> tuple[str, Grant | None]:
    """A token to view one study: our own signed grant, or (compatibility mode) the external viewer's.

    Returns the token and its grant (None for an external token, which we cannot read).
    Raises ``StudyNotFound``, or ``external.ExternalViewerError`` in compatibility mode.
    """
    study = exams.study_get(study_uid=study_uid, patient_id=patient_id)
    if study is None:
        _audit(
            actor,
            action="viewer.token.issue",
            outcome=Outcome.FAILURE,
            patient_id=patient_id or "",
            study_uid=study_uid,
            detail={"reason": "study not found", "role": role},
        )
        raise StudyNotFound
    study_patient = first_value(study, "00100020", "")
    if external.enabled():
        try:
            token = external.external_token_get(
                study_uid=study_uid, patient_id=patient_id, user=user, role=role
            )
        except external.ExternalViewerError as exc:
            _audit(
                actor,
                action="viewer.token.issue",
                outcome=Outcome.FAILURE,
                patient_id=study_patient,
                study_uid=study_uid,
                detail={"reason": str(exc), "role": role, "mode": "external"},
            )
            raise
        _audit(
            actor,
            action="viewer.token.issue",
            patient_id=study_patient,
            study_uid=study_uid,
            detail={"role": role, "user": user or "", "mode": "external"},
        )
        return token, None
    grant = new_grant(
        study_uid=study_uid,
        patient_id=study_patient,
        user=user or "",
        role=role,
        single_use=single_use,
    )
    _audit(
        actor,
        action="viewer.token.issue",
        patient_id=study_patient,
        study_uid=study_uid,
        detail={
            "token_id": grant.token_id,
            "role": role,
            "user": grant.user,
            "single_use": single_use,
            "expires_at": grant.expires_at,
        },
    )
    return grant_encode(grant), grant


def viewer_session_open(*, token: str, actor: Actor) -> tuple[Grant, str, dict]:
    """Exchange a grant token for a viewer session token (once only for a single-use grant).

    Returns the session grant, its token and the study as the viewer shows it (``study_view``).
    Raises ``TokenInvalid`` (reasons: malformed, invalid, expired, used) or ``StudyNotFound``.
    """
    try:
        grant = grant_decode(token)
        if grant.single_use:
            _redeem(grant)
    except TokenInvalid as exc:
        _audit(
            actor,
            action="viewer.open",
            outcome=Outcome.DENIED,
            detail={"reason": exc.reason},
        )
        raise
    view = study_view(grant)
    if view is None:
        _audit(
            actor,
            action="viewer.open",
            outcome=Outcome.FAILURE,
            patient_id=grant.patient_id,
            study_uid=grant.study_uid,
            detail={"reason": "study not found", "token_id": grant.token_id},
        )
        raise StudyNotFound
    session, session_token = session_for(grant)
    _audit(
        Actor(name=f"viewer {grant.user or '-'}", kind="viewer_token", address=actor.address),
        action="viewer.open",
        patient_id=grant.patient_id,
        study_uid=grant.study_uid,
        detail={"token_id": grant.token_id, "role": grant.role, "user": grant.user},
    )
    return session, session_token, view


def _redeem(grant: Grant) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            RedeemedToken.objects.create(
                token_id=grant.token_id,
                study_uid=grant.study_uid,
                expires_at=dt.datetime.fromtimestamp(grant.expires_at, tz=dt.UTC),
            )
    except IntegrityError:
        raise TokenInvalid("used", "This single-use token has been used already.") from None
    # Rows of tokens that have expired anyway protect nothing any more.
    RedeemedToken.objects.filter(expires_at__lt=now - dt.timedelta(hours=1)).delete()
