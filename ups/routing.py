"""The ASGI application served by uvicorn on WS_PORT: the UPS event channel, Django's HTTP views
(health checks, one-origin setups), and the ASGI lifespan that starts and stops the event relay."""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.urls import path

from ups.consumers import EventChannelConsumer, tell_going_down
from ups.relay import relay

websocket_urlpatterns = [
    path(f"{settings.DICOMWEB_PATH}/subscribers/<str:aetitle>", EventChannelConsumer.as_asgi()),
]

router = ProtocolTypeRouter({"http": get_asgi_application(), "websocket": URLRouter(websocket_urlpatterns)})


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        return await router(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            relay.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await tell_going_down()
            await relay.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
