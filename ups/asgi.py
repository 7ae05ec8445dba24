"""The ASGI application uvicorn serves on WS_PORT (``uvicorn ups.asgi:application``): the UPS-RS
WebSocket event channel, Django's HTTP views (health checks, one-origin setups), and the ASGI
lifespan that starts and stops the event relay. gunicorn (WSGI, ``dicomsvc.wsgi``) stays the HTTP
server of the API."""

import os

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


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        return await router(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            relay.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await tell_going_down()  # SCP Status Change GOING DOWN (PS3.4 CC.2.4.2)
            await relay.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
