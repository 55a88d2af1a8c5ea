"""One bounded HTTP POST: a deadline for the whole exchange, a size cap, no foreign redirects.

``urllib`` (what the chat backend used before) follows 301/302/303 to any host with the same
headers, ``Authorization`` included, turning the POST into a GET; its ``timeout`` bounds each
socket read, so a server trickling one byte every 0.4 s holds a call for as long as it likes;
and it reads a body of any size. :func:`post` instead:

- arms a timer for the whole attempt (connect, send, status line, headers, body); when it fires
  the socket is shut down, which wakes any blocked read, and :class:`DeadlineError` is raised;
- reads at most ``max_bytes`` of body (a larger ``Content-Length`` is refused before reading);
- follows a redirect only when it keeps the method and body (307/308) *and* stays on the same
  origin (scheme, host, port); any other redirect raises :class:`RedirectError` without
  contacting the new location, so credentials never reach another origin.

httpx has no total deadline either (its timeouts are per phase and per read), hence http.client
with a timer. Standard library only; imports nothing of openautoglm.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

__all__ = ["DeadlineError", "RedirectError", "Reply", "TooLargeError", "post"]

_REDIRECTS = (301, 302, 303, 307, 308)


class DeadlineError(TimeoutError):
    """The whole exchange did not finish within its deadline."""


class TooLargeError(ValueError):
    """The reply is larger than the cap."""


class RedirectError(ValueError):
    """A redirect that was not followed (another origin, or a method-changing status)."""

    def __init__(self, message: str, status: int, location: str) -> None:
        super().__init__(message)
        self.status = status
        self.location = location


class Reply:
    """A finished reply: ``status``, ``headers`` (lower-case names) and ``body`` bytes."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, max_bytes: int,
         max_redirects: int = 3) -> Reply:
    """POST ``body`` to ``url`` and read the reply, all within ``timeout`` seconds.

    Raises:
        DeadlineError: the exchange (all redirects included) took longer than ``timeout``.
        TooLargeError: the body is over ``max_bytes``.
        RedirectError: a redirect to another origin, or one that would change the method.
        OSError: the server cannot be reached.
        http.client.HTTPException: the server does not speak HTTP.
    """
    deadline = time.monotonic() + timeout
    for _ in range(max_redirects + 1):
        reply = _once(url, body, headers, deadline, max_bytes)
        if reply.status not in _REDIRECTS:
            return reply
        location = reply.headers.get("location", "")
        target = urljoin(url, location)
        if origin(target) != origin(url):
            raise RedirectError(f"HTTP {reply.status} redirect to another origin "
                                f"({origin(target)[1] or '?'}) not followed: credentials are "
                                "never sent to another origin", reply.status, target)
        if reply.status not in (307, 308):
            raise RedirectError(f"HTTP {reply.status} redirect not followed: it would turn the "
                                "POST into a GET", reply.status, target)
        url = target
    raise RedirectError(f"more than {max_redirects} redirects", 310, url)


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=ssl.create_default_context()), path
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout), path
    raise ValueError(f"unsupported URL scheme {parts.scheme!r}; use http:// or https://")


def _once(url: str, body: bytes, headers: Mapping[str, str], deadline: float,
          max_bytes: int) -> Reply:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineError("deadline passed")
    conn, path = _connection(url, remaining)
    fired = threading.Event()
    sockets: list[socket.socket] = []

    def abort() -> None:
        fired.set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read at once
            except OSError:
                pass

    timer = threading.Timer(remaining, abort)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()  # bounded by the socket timeout (the time left)
        # Kept here: the connection drops its own reference when the reply says "close".
        sockets.append(conn.sock)
        if fired.is_set():
            abort()
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise TooLargeError(f"reply of {int(length)} bytes is over the {max_bytes}-byte cap")
        chunks, size = [], 0
        while True:
            if fired.is_set():
                raise DeadlineError("deadline passed while reading")
            # read1: what has arrived (read() would wait for the whole amount).
            chunk = response.read1(min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(f"reply is over the {max_bytes}-byte cap")
            chunks.append(chunk)
        if fired.is_set():
            raise DeadlineError("deadline passed while reading")
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     b"".join(chunks))
    except (OSError, http.client.HTTPException) as exc:
        if fired.is_set() or isinstance(exc, (TimeoutError, socket.timeout)):
            raise DeadlineError("deadline passed") from exc
        raise
    finally:
        timer.cancel()
        conn.close()
