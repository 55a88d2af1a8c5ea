"""The HTTP chat backend against hostile servers: redirects, tricklers, huge bodies.

Every server is a real ``ThreadingHTTPServer`` on 127.0.0.1 (port from the OS) started and
stopped by the test. Times are bounds with a wide margin (the old client took 80 s and more on
the trickling servers), never speed goals.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openautoglm.models import (
    ChatCompletionsModel,
    ModelHTTPError,
    ModelReplyError,
    ModelTimeoutError,
)

REPLY = json.dumps({"choices": [{"message": {"content": "hello"}}]}).encode()


class Server:
    """A server whose POST handler is ``respond(handler)``; records every request it gets."""

    def __init__(self, respond: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[dict] = []
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers),
                                       "body": self.rfile.read(length) if length else b""})

            def do_POST(self):
                self._record()
                try:
                    respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # close() must not wait for a trickling handler
        self.httpd.stop_event = self.stop  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(respond):
        s = Server(respond)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def answer(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(REPLY)))
    h.end_headers()
    h.wfile.write(REPLY)


def redirect(status: int, location: Callable[[], str]) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(h):
        h.send_response(status)
        h.send_header("Location", location())
        h.send_header("Content-Length", "0")
        h.end_headers()
    return respond


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_origin_never_gets_the_key(servers, status):
    """The old client followed 301/302/303 to any host with ``Authorization: Bearer``."""
    other = servers(answer)
    front = servers(redirect(status, lambda: other.url + "/v1/chat/completions"))
    m = ChatCompletionsModel("m", base_url=front.url + "/v1", api_key="sk-secret",
                             max_retries=0, timeout=10)
    with pytest.raises(ModelHTTPError, match="another origin") as info:
        m.generate("hi")
    assert info.value.status == status
    assert other.requests == []  # never contacted, so never saw the key
    assert front.requests[0]["headers"]["Authorization"] == "Bearer sk-secret"


def test_same_origin_307_is_followed_with_the_post(servers):
    box: dict = {}

    def respond(h):
        if h.path.startswith("/old"):
            redirect(307, lambda: box["url"] + "/new/chat/completions")(h)
        else:
            answer(h)

    s = servers(respond)
    box["url"] = s.url
    m = ChatCompletionsModel("m", base_url=s.url + "/old", api_key="k", max_retries=0, timeout=10)
    assert m.generate("hi") == "hello"
    assert [r["method"] for r in s.requests] == ["POST", "POST"]
    assert json.loads(s.requests[1]["body"])["messages"][-1]["content"] == "hi"


def test_same_origin_303_is_refused_not_turned_into_a_get(servers):
    box: dict = {}
    s = servers(lambda h: redirect(303, lambda: box["url"] + "/x")(h))
    box["url"] = s.url
    m = ChatCompletionsModel("m", base_url=s.url, max_retries=0, timeout=10)
    with pytest.raises(ModelHTTPError, match="POST into a GET"):
        m.generate("hi")
    assert [r["method"] for r in s.requests] == ["POST"]


def trickle(head: bool) -> Callable[[BaseHTTPRequestHandler], None]:
    """One byte every 0.4 s: of the body (``head=False``) or of the status line itself."""
    def respond(h):
        server_stop = h.server.stop_event  # type: ignore[attr-defined]
        data = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n" + b" " * 400 if head else b" " * 400
        if not head:
            h.send_response(200)
            h.send_header("Content-Length", "400")
            h.end_headers()
            h.wfile.flush()
        for byte in data:
            if server_stop.is_set():
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.4)
    return respond


@pytest.mark.parametrize("head", [False, True], ids=["body", "status-line"])
def test_trickling_server_cannot_stretch_the_timeout(servers, head):
    """timeout=1, max_retries=1: two attempts of 1 s each (the old client: 160 s)."""
    s = servers(trickle(head))
    m = ChatCompletionsModel("m", base_url=s.url, timeout=1, max_retries=1, backoff=0)
    t0 = time.monotonic()
    with pytest.raises(ModelTimeoutError, match="within 1 s"):
        m.generate("hi")
    assert time.monotonic() - t0 < 30  # a bound far above 2 s, far below the old 160 s
    assert m.attempts == 2


def huge(declared: bool) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(h):
        h.send_response(200)
        if declared:
            h.send_header("Content-Length", str(10**11))
        h.end_headers()
        block = b"x" * 65536
        for _ in range(2000):  # up to 128 MiB, until the client hangs up
            h.wfile.write(block)
    return respond


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_huge_reply_is_cut_at_the_cap(servers, declared):
    s = servers(huge(declared))
    m = ChatCompletionsModel("m", base_url=s.url, timeout=30, max_retries=0,
                             max_response_bytes=2**20)
    with pytest.raises(ModelReplyError, match="cap"):
        m.generate("hi")


@pytest.mark.parametrize("kwargs, field", [
    ({"timeout": 0}, "timeout"), ({"timeout": "5"}, "timeout"),
    ({"max_retries": -1}, "max_retries"), ({"max_retries": 1.5}, "max_retries"),
    ({"backoff": float("nan")}, "backoff"), ({"max_response_bytes": 0}, "max_response_bytes"),
])
def test_bad_client_settings_are_named(kwargs, field):
    from openautoglm._validate import InputError

    with pytest.raises(InputError, match=field):
        ChatCompletionsModel("m", base_url="http://127.0.0.1:9", **kwargs)
