"""The UPS event channel (PS3.18 8.10.4 Open Notification Connection): a WebSocket per subscriber
AE title at ``/<DICOMWEB_PATH>/subscribers/<aetitle>``, over which the relay's Event Report
messages (DICOM JSON, PS3.18 11.13) are pushed. The upgrade request needs an API key with the
``worklist:read`` scope (``Authorization: Bearer``); a refused one gets HTTP 403 before any
WebSocket exists. The channel only sends: what the client sends is ignored."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from rest_framework import exceptions

from core import scopes
from core.audit import audit_record
from core.auth import ApiKeyAuthentication
from ups.relay import group_name
from worklist.events import scp_status_change

logger = logging.getLogger("dicomsvc.ups")
OPEN_CHANNELS: set[EventChannelConsumer] = set()  # this process's, told when it goes down


def _valid_ae(value: str) -> bool:
    return 0 < len(value) <= 16 and value.isprintable() and "\\" not in value and bool(value.strip())


@database_sync_to_async
def _authorize(headers: dict[bytes, bytes], ae_title: str, client: str | None):
    header = headers.get(b"authorization", b"").decode("latin-1")
    try:
        request = SimpleNamespace(headers={"authorization": header}, META={"HTTP_AUTHORIZATION": header})
        result = ApiKeyAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed:
        result = None
    principal = result[0] if result else None
    allowed = principal is not None and principal.has_scope(scopes.WORKLIST_READ)
    audit_record(
        actor=principal.name if principal else "anonymous",
        actor_type=principal.kind if principal else "anonymous",
        action="ups.channel.open",
        outcome="success" if allowed else "denied",
        client_address=client,
        detail={"ae_title": ae_title},
    )
    return allowed


class EventChannelConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.ae_title = str(self.scope["url_route"]["kwargs"].get("aetitle", "")).strip()
        self.group = None
        client = (self.scope.get("client") or [None])[0]
        if not _valid_ae(self.ae_title):
            await self.close()
            return
        if not await _authorize(dict(self.scope.get("headers") or []), self.ae_title, client):
            logger.warning("UPS event channel refused for AE %r from %s", self.ae_title, client)
            await self.close()
            return
        self.group = group_name(self.ae_title)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        OPEN_CHANNELS.add(self)
        logger.info("UPS event channel open for AE %r", self.ae_title)

    async def disconnect(self, code) -> None:
        OPEN_CHANNELS.discard(self)
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return None  # a one-way channel

    async def ups_event(self, message) -> None:
        await self.send(text_data=message["text"])


async def tell_going_down() -> None:
    """SCP Status Change GOING DOWN (PS3.4 CC.2.4.2) to this process's open channels."""
    import orjson

    text = orjson.dumps(scp_status_change("GOING DOWN")).decode()
    for consumer in list(OPEN_CHANNELS):
        try:
            await consumer.send(text_data=text)
        except Exception:  # noqa: S112 - a socket closing at the same time
            continue
