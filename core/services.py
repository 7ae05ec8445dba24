from core.models import ApiKey
from core.scopes import ALL_SCOPES


def api_key_create(*, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plain key, which is never stored."""
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)} (known: {', '.join(ALL_SCOPES)})")
    if not name.strip():
        raise ValueError("the key needs a name")
    return ApiKey.objects.create_key(name=name.strip()[:50], scopes=sorted(set(scopes)))
