"""Fixtures of the service tests."""
from __future__ import annotations

import pytest
from servicekit import Service


@pytest.fixture
def service_factory():
    """Starts services; stops every one at the end of the test."""
    started: list[Service] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Service:
        s = Service(list(args), env=env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
