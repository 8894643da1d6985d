"""The dashboard's websocket: staff only; a snapshot on connect and after every change."""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder

from pizzaq.dashboard import bridge
from pizzaq.dashboard.snapshot import snapshot

FORBIDDEN = 4403


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            await self.close(code=FORBIDDEN)
            return
        self.filters = {"status": "", "kind": "", "queue": ""}
        await self.channel_layer.group_add(bridge.GROUP, self.channel_name)
        await self.accept()
        bridge.ensure_running()
        await self.send_snapshot()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(bridge.GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """The browser changes its recent-orders filter. (It acts through the HTTP views,
        which check the same permission.)"""
        if not isinstance(content, dict):
            return
        if isinstance(content.get("filter"), dict):
            wanted = content["filter"]
            self.filters = {key: str(wanted.get(key) or "")[:100] for key in ("status", "kind", "queue")}
            await self.send_snapshot()

    async def dashboard_changed(self, message):
        await self.send_snapshot()

    @classmethod
    async def encode_json(cls, content):
        # Times as the JSON API writes them.
        return json.dumps(content, cls=DjangoJSONEncoder)

    async def send_snapshot(self):
        data = await database_sync_to_async(snapshot)(**self.filters)
        await self.send_json({"type": "snapshot", "data": data})
