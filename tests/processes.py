"""Processes the tests start themselves (dask schedulers and workers, servers): a free port on
127.0.0.1, and stopping exactly the processes a test started, politely first."""
from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs: Iterable[subprocess.Popen], grace: float = 30.0) -> None:
    """SIGTERM each process still running, wait up to ``grace`` seconds in all, then SIGKILL."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=30)
