"""What a service is started with (the ``openautoglm serve`` flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .plans import PLAN_POLICIES

__all__ = ["ENV_TOKEN", "ServeSettings"]

#: The environment variable holding the bearer token (unset or empty: no token asked).
ENV_TOKEN = "OPENAUTOGLM_SERVE_TOKEN"


@dataclass
class ServeSettings:
    """Settings of one service.

    Attributes:
        registry: the SQLite file of the model registry.
        model_dir: the only directory ``checkpoint:`` sources may read (``None``: none).
        token: the bearer token (default: ``$OPENAUTOGLM_SERVE_TOKEN``; empty: none asked).
        max_body_bytes: the largest request body.
        max_tasks, max_edges: the largest DAG ``/v1/plan`` accepts.
        plan_policies: the policies ``/v1/plan`` and ``/v1/runs`` accept.
        history: the History file of the service's Engine (``None``: runs are not recorded).
        engine_workers: workers of the embedded Dask cluster (0: no runs).
        scheduler: a running Dask scheduler's address instead of an embedded cluster.
        max_queued_runs: runs that may wait.
    """

    registry: Path = field(default_factory=lambda: Path("openautoglm-models.sqlite"))
    model_dir: Path | None = None
    token: str | None = field(default_factory=lambda: os.environ.get(ENV_TOKEN) or None)
    max_body_bytes: int = 16 * 2**20
    max_tasks: int = 50_000
    max_edges: int = 500_000
    plan_policies: tuple[str, ...] = PLAN_POLICIES
    history: Path | None = None
    engine_workers: int = 2
    scheduler: str | None = None
    max_queued_runs: int = 16
