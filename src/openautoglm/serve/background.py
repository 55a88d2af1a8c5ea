"""Run the service in a background thread of this process (notebooks, tests, examples)."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["serving"]


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int = 0,
            timeout: float = 60.0) -> Iterator[str]:
    """Serves ``app`` with uvicorn in a thread; yields its base URL; stops it on exit.

    Args:
        app: the ASGI app (:func:`openautoglm.serve.create_app`).
        host: the address to bind (loopback by default).
        port: 0 lets the OS choose a free port.
        timeout: seconds to wait for the server to start (and to stop).

    Raises:
        RuntimeError: the server did not start within ``timeout``.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="openautoglm-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the service did not start on {host}:{bound}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
