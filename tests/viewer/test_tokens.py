"""The token codec on its own: signatures, expiry, kinds, key rotation."""

import base64
import json
import time

import pytest

from viewer.tokens import (
    TokenInvalid,
    grant_decode,
    grant_encode,
    new_grant,
    session_decode,
    session_for,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"


def test_a_grant_survives_encoding_unchanged():
    grant = new_grant(study_uid=STUDY, patient_id="P1", user="dr.who", role="diagnostic", single_use=True)
    assert grant_decode(grant_encode(grant)) == grant


def test_the_token_carries_study_patient_user_role_expiry_and_an_id():
    grant = new_grant(study_uid=STUDY, patient_id="P1", user="dr.who", role="patient", ttl=60)
    assert grant.expires_at - grant.issued_at == 60
    assert len(grant.token_id) >= 20
    assert new_grant(study_uid=STUDY).token_id != grant.token_id


def test_default_expiry_is_viewer_token_ttl(settings):
    settings.VIEWER_TOKEN_TTL = 123
    grant = new_grant(study_uid=STUDY)
    assert grant.expires_at - grant.issued_at == 123


def _tamper_payload(token: str, **changes) -> str:
    """Rewrite the signed payload (e.g. another study) while keeping the old signature."""
    body, _, rest = token.partition(":")
    compressed = body.startswith(".")
    raw = body.lstrip(".")
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    if compressed:
        import zlib

        data = zlib.decompress(data)
    payload = json.loads(data)
    payload.update(changes)
    new = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{new}:{rest}"


def test_a_token_whose_study_was_changed_is_refused_as_invalid():
    token = grant_encode(new_grant(study_uid=STUDY, role="patient"))
    forged = _tamper_payload(token, st="1.2.3.4.5")
    with pytest.raises(TokenInvalid) as caught:
        grant_decode(forged)
    assert caught.value.reason == "invalid"


def test_a_token_whose_role_was_raised_to_diagnostic_is_refused_as_invalid():
    token = grant_encode(new_grant(study_uid=STUDY, role="patient"))
    with pytest.raises(TokenInvalid) as caught:
        grant_decode(_tamper_payload(token, rol="diagnostic"))
    assert caught.value.reason == "invalid"


def test_a_token_with_a_changed_signature_character_is_refused():
    token = grant_encode(new_grant(study_uid=STUDY))
    last = token[-1]
    forged = token[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(TokenInvalid) as caught:
        grant_decode(forged)
    assert caught.value.reason == "invalid"


@pytest.mark.parametrize("garbage", ["", "abc", "a:b:c", "x" * 5000, "..::.."])
def test_garbage_is_refused_as_malformed_or_invalid(garbage):
    with pytest.raises(TokenInvalid) as caught:
        grant_decode(garbage)
    assert caught.value.reason in ("malformed", "invalid")


def test_a_token_signed_with_another_secret_is_refused(settings):
    settings.VIEWER_TOKEN_SECRET = "one secret"
    token = grant_encode(new_grant(study_uid=STUDY))
    settings.VIEWER_TOKEN_SECRET = "another secret"
    with pytest.raises(TokenInvalid) as caught:
        grant_decode(token)
    assert caught.value.reason == "invalid"


def test_viewer_token_secret_replaces_secret_key_for_signing(settings):
    settings.VIEWER_TOKEN_SECRET = "dedicated"
    token = grant_encode(new_grant(study_uid=STUDY))
    settings.SECRET_KEY = "rotated django key"
    assert grant_decode(token).study_uid == STUDY


def test_an_expired_token_is_refused_as_expired():
    grant = new_grant(study_uid=STUDY, ttl=60, issued_at=time.time() - 61)
    with pytest.raises(TokenInvalid) as caught:
        grant_decode(grant_encode(grant))
    assert caught.value.reason == "expired"
    assert "expired" in str(caught.value)


def test_a_token_is_valid_until_its_expiry_second():
    grant = new_grant(study_uid=STUDY, ttl=60)
    token = grant_encode(grant)
    assert grant_decode(token, now=grant.expires_at - 1) == grant
    with pytest.raises(TokenInvalid):
        grant_decode(token, now=grant.expires_at)


def test_an_unknown_role_cannot_be_issued():
    with pytest.raises(ValueError):
        new_grant(study_uid=STUDY, role="admin")


def test_a_grant_token_is_not_a_session_token_and_the_other_way_round():
    grant = new_grant(study_uid=STUDY)
    with pytest.raises(TokenInvalid):
        session_decode(grant_encode(grant))
    _, session_token = session_for(grant)
    with pytest.raises(TokenInvalid):
        grant_decode(session_token)


def test_a_session_keeps_the_grant_and_gets_its_own_expiry(settings):
    settings.VIEWER_SESSION_TTL = 3600
    grant = new_grant(study_uid=STUDY, patient_id="P1", role="diagnostic", ttl=30)
    session, token = session_for(grant)
    decoded = session_decode(token)
    assert decoded == session
    assert (decoded.token_id, decoded.study_uid, decoded.role) == (grant.token_id, STUDY, "diagnostic")
    assert decoded.expires_at - decoded.issued_at == 3600
