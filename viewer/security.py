"""Response headers of the viewer page and its data endpoints."""

from django.conf import settings

# No inline script or style anywhere: the page's code is /static/viewer/*.js and *.css only.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'",
    # The token lives in the URL fragment, which browsers never send; no-referrer also keeps the
    # page address out of any request the page makes.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def page_headers() -> dict[str, str]:
    """The viewer page's headers: only VIEWER_FRAME_ANCESTORS origins may frame it (none by default)."""
    ancestors = settings.VIEWER_FRAME_ANCESTORS
    if not ancestors:
        return SECURITY_HEADERS
    headers = {name: value for name, value in SECURITY_HEADERS.items() if name != "X-Frame-Options"}
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY + "; frame-ancestors " + " ".join(ancestors)
    return headers
