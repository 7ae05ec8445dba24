"""The ASGI application uvicorn serves on WS_PORT (``uvicorn ups.asgi:application``): the UPS-RS
WebSocket event channel, Django's HTTP views (health checks, one-origin setups), and the ASGI
lifespan that starts and stops the event relay. gunicorn (WSGI, ``dicomsvc.wsgi``) stays the HTTP
server of the API."""

import asyncio
import os
import signal

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomsvc.settings")
django_application = get_asgi_application()  # sets Django up before the imports below load models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from ups.consumers import EventChannelConsumer, tell_going_down  # noqa: E402
from ups.relay import relay  # noqa: E402

websocket_urlpatterns = [
    path(f"{settings.DICOMWEB_PATH}/subscribers/<str:aetitle>", EventChannelConsumer.as_asgi()),
]
router = ProtocolTypeRouter({"http": django_application, "websocket": URLRouter(websocket_urlpatterns)})


def _going_down_first() -> None:
    """On SIGTERM/SIGINT, tell the open channels GOING DOWN before the server's own handler starts
    closing them (uvicorn closes connections before the lifespan shutdown runs)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        async def going_down(signum=signum, previous=previous) -> None:
            try:
                await asyncio.wait_for(tell_going_down(), timeout=2.0)
            finally:
                previous(signum, None)

        def handler(signum, frame, going_down=going_down) -> None:
            loop.call_soon_threadsafe(lambda: loop.create_task(going_down()))

        signal.signal(signum, handler)


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        return await router(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            relay.start()
            _going_down_first()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await relay.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
