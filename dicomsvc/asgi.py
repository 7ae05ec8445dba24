"""ASGI entry point: the UPS-RS WebSocket event channel (``ups.routing``) and, for health checks
and one-origin setups, Django's HTTP views. gunicorn (WSGI) stays the HTTP server in production;
uvicorn serves this on WS_PORT (``scripts/run.sh``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomsvc.settings")

django_application = get_asgi_application()  # sets Django up before the routing imports models

from ups.routing import application  # noqa: E402

__all__ = ["application", "django_application"]
