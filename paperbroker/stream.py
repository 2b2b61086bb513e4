"""The trade_updates websocket: authenticate, listen, then JSON events in binary frames."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from paperbroker.book import Book, TradeUpdate
from paperbroker.serialize import trade_update_json

log = logging.getLogger(__name__)


class Connection:
    """One authenticated websocket and its outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.listening = False
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()


class StreamHub:
    """Accepts one trade_updates connection per account and fans events out to it."""

    def __init__(self, book: Callable[[], Book], key_id: str, secret_key: str) -> None:
        self._book = book
        self._key_id = key_id
        self._secret_key = secret_key
        self.connections: set[Connection] = set()
        self.sockets: set[web.WebSocketResponse] = set()

    def publish(self, update: TradeUpdate) -> None:
        """Queue an event for every listening connection (serialized now, as the state is now)."""
        if not any(c.listening for c in self.connections):
            return
        frame = json.dumps(trade_update_json(update, self._book()), separators=(",", ":")).encode()
        for connection in self.connections:
            if connection.listening:
                connection.queue.put_nowait(frame)

    async def drop_all(self) -> int:
        """Close every stream connection (clients are expected to reconnect)."""
        sockets = list(self.sockets)
        for ws in sockets:
            await ws.close(code=1001, message=b"dropped by simulator")
        return len(sockets)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one websocket connection."""
        if self.sockets:
            return web.json_response({"message": "connection limit exceeded"}, status=429)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.add(ws)
        connection = Connection(ws)
        writer = asyncio.create_task(self._write(connection))
        try:
            await self._serve(connection)
        finally:
            self.connections.discard(connection)
            self.sockets.discard(ws)
            connection.queue.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                await ws.close()
        return ws

    async def _serve(self, connection: Connection) -> None:
        ws = connection.ws
        authorized = False
        async for message in ws:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            try:
                raw = message.data if isinstance(message.data, str) else message.data.decode()
                payload = json.loads(raw)
            except ValueError:
                await self._send(ws, {"stream": "listening", "data": {"error": "invalid syntax"}})
                continue
            action = payload.get("action") if isinstance(payload, dict) else None
            data = payload.get("data") or {} if isinstance(payload, dict) else {}
            if action in ("authenticate", "auth"):
                authorized = self._check(data if isinstance(data, dict) else {}, payload)
                status = "authorized" if authorized else "unauthorized"
                reply: dict[str, Any] = {"status": status, "action": "authenticate"}
                if not authorized:
                    reply["message"] = "access key verification failed"
                await self._send(ws, {"stream": "authorization", "data": reply})
                if not authorized:
                    await ws.close()
                    return
                self.connections.add(connection)
            elif action == "listen" and authorized:
                streams = [s for s in data.get("streams", []) if s == "trade_updates"]
                connection.listening = bool(streams)
                await self._send(ws, {"stream": "listening", "data": {"streams": streams}})
            elif not authorized:
                await self._send(
                    ws,
                    {
                        "stream": "authorization",
                        "data": {"status": "unauthorized", "action": str(action)},
                    },
                )

    def _check(self, data: dict[str, Any], payload: dict[str, Any]) -> bool:
        key = str(data.get("key_id") or payload.get("key") or "")
        secret = str(data.get("secret_key") or payload.get("secret") or "")
        return hmac.compare_digest(key, self._key_id) and hmac.compare_digest(
            secret, self._secret_key
        )

    async def _send(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_bytes(json.dumps(message, separators=(",", ":")).encode())

    async def _write(self, connection: Connection) -> None:
        while True:
            frame = await connection.queue.get()
            if frame is None or connection.ws.closed:
                return
            try:
                await connection.ws.send_bytes(frame)
            except (ConnectionResetError, RuntimeError):
                log.info("trade_updates connection went away while sending")
                return
