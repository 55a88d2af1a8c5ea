"""Task functions for the service's test pipelines (registered server-side from YAML)."""
from __future__ import annotations

import time


def nap(x: float) -> float:
    """Sleeps ``x`` seconds (in small steps) and returns ``x``."""
    end = time.monotonic() + float(x)
    while time.monotonic() < end:
        time.sleep(0.05)
    return float(x)


def add(a: float, b: float) -> float:
    return a + b
