"""What every request passes before a route sees it: the API key, the body limit, metrics, safe headers.

A plain ASGI middleware (no per-request task or copy of the body beyond the limit):

- API key: when one is set, a request must present it as `X-API-Key: KEY`, `Authorization: Bearer KEY`,
  or HTTP Basic with KEY as the password (what a browser sends for the search page after asking once);
  compared in constant time, never logged. A missing or wrong key gets 401.
- Body limit: a body longer than `max_body_bytes` gets 413, whether it announces its length or not.
- Every response says `X-Content-Type-Options: nosniff` and sends no referrer.
- Each request is counted and timed under its route's template (see `metrics`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gcl_vectordb.serve.metrics import ServeMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ServiceGuard:
    """The middleware; `api_key=None` lets every request through."""

    def __init__(self, app: ASGIApp, *, metrics: ServeMetrics, max_body_bytes: int, api_key: str | None) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self._key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_safely(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *SAFE_HEADERS]
            await send(message)

        try:
            if self._key is not None and not self.authorized(scope):
                await _error(send_safely, 401, "a valid API key is required (X-API-Key or Authorization header)",
                             [(b"www-authenticate", b'Basic realm="gcl-vdb", charset="UTF-8"')])
            elif scope["method"] in _BODY_METHODS:
                body = await _read_body(scope, receive, self.max_body_bytes)
                if body is None:
                    await _error(send_safely, 413, f"the request body is larger than {self.max_body_bytes} bytes")
                else:
                    await self.app(scope, _replay(body, receive), send_safely)
            else:
                await self.app(scope, receive, send_safely)
        finally:
            route = scope.get("route")
            self.metrics.observe_request(scope["method"], getattr(route, "path", "<unmatched>"), status,
                                         time.perf_counter() - started)

    def authorized(self, scope: Scope) -> bool:
        assert self._key is not None
        presented = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                presented = value
            elif name == b"authorization":
                presented = _credential(value)
        return hmac.compare_digest(presented, self._key)


def _credential(value: bytes) -> bytes:
    """The key in an Authorization header: `Bearer KEY`, or the password of `Basic base64(user:KEY)`."""
    scheme, _, rest = value.partition(b" ")
    if scheme.lower() == b"bearer":
        return rest.strip()
    if scheme.lower() == b"basic":
        try:
            return base64.b64decode(rest.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return b""
    return b""


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `limit` bytes (announced or counted)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away; the route will see the same
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: the disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _error(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
