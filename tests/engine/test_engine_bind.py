"""The embedded Engine listens on 127.0.0.1 only, unless told otherwise.

Before, ``Engine()`` served the scheduler's HTTP endpoints (``/info``, ``/eventstream``,
``/metrics``, call stacks) on 0.0.0.0 without authentication, even with ``dashboard=False``.
The listening sockets of this process and its children are read with psutil.
"""
from __future__ import annotations

import os

import psutil
import pytest

from openautoglm.engine import Engine


def listening() -> list[tuple[str, int]]:
    me = psutil.Process(os.getpid())
    addrs = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        addrs += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return addrs


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
@pytest.mark.parametrize("dashboard", [False, True], ids=["no-dashboard", "dashboard"])
def test_embedded_engine_listens_on_loopback_only(processes, dashboard):
    before = set(listening())
    with Engine(n_workers=1, processes=processes, dashboard=dashboard, progress=False) as engine:
        opened = [addr for addr in listening() if addr not in before]
        assert opened, "the engine opened no socket at all?"
        assert {ip for ip, _ in opened} == {"127.0.0.1"}, opened
        if dashboard:
            assert engine.dashboard_link is not None


def test_host_must_be_an_address():
    with pytest.raises(ValueError, match="host"):
        Engine(n_workers=1, dashboard=False, progress=False, host=None)
