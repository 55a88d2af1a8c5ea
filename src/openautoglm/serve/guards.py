"""ASGI guards in front of every route: a bounded body, and the optional bearer token."""
from __future__ import annotations

import hmac
import json
from typing import Any

__all__ = ["BodyLimit", "BearerToken"]

Scope = dict[str, Any]


async def _answer(send: Any, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413: by Content-Length, or while streaming."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        message = (f"request body over this service's limit of {self.limit} bytes; "
                   "send less (split the graph, fewer prompts)")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _answer(send, 400, "Content-Length is not a number")
            if int(length) > self.limit:
                return await _answer(send, 413, message)
        if length is not None:
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): read it here, bounded, then hand it on in one piece.
        chunks, seen = [], 0
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return  # the client went away
            chunks.append(event.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                return await _answer(send, 413, message)
            if not event.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class BearerToken:
    """Asks ``Authorization: Bearer <token>`` on every path but ``/v2/health/*``."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.token or scope["path"].startswith("/v2/health/"):
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        expected = b"Bearer " + self.token.encode()
        if not hmac.compare_digest(given, expected):
            return await _answer(send, 401, "missing or wrong bearer token: send "
                                 "'Authorization: Bearer <token>' (the service's "
                                 "OPENAUTOGLM_SERVE_TOKEN)",
                                 [(b"www-authenticate", b"Bearer")])
        return await self.app(scope, receive, send)
