"""Prometheus metrics of an :class:`~openautoglm.engine.engine.Engine` (opt-in).

An Engine given ``metrics=EngineMetrics(...)`` reports every plan and run::

    openautoglm_engine_runs_total{policy,status}          runs finished (ok, error, cancelled)
    openautoglm_engine_runs_in_progress                   runs submitted and not finished
    openautoglm_engine_tasks_total{state}                 tasks by final state (ok, error, not_run)
    openautoglm_engine_makespan_seconds{policy,kind}      histogram, kind = planned | realised
    openautoglm_engine_last_makespan_seconds{policy,kind} the last run's makespans
    openautoglm_engine_makespan_error_ratio{policy}       histogram of realised / planned - 1
    openautoglm_engine_duration_mape_ratio{policy}        the last run's per-task duration error
    openautoglm_engine_planning_seconds{policy}           histogram of time spent planning
    openautoglm_history_runs / openautoglm_history_executions   rows in the History (at scrape)

:meth:`EngineMetrics.serve` exposes them on ``127.0.0.1`` for Prometheus to scrape; the
``openautoglm serve`` service shows them on its own ``/metrics``.

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> metrics = EngineMetrics(CollectorRegistry())
    >>> metrics.observe_plan("heft", 0.002)
    >>> b'openautoglm_engine_planning_seconds_count{policy="heft"} 1.0' in generate_latest(
    ...     metrics.registry)
    True
"""
from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

__all__ = ["EngineMetrics"]

_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 7200)
_PLANNING = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ERROR = (-0.5, -0.25, -0.1, -0.05, 0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


class EngineMetrics:
    """The Engine's metric families, registered in ``registry``.

    Args:
        registry: where to register (default prometheus_client's global ``REGISTRY``).
        history: a :class:`~openautoglm.history.store.History` (file-backed) whose size is exported
            at each scrape; ``None``: no history metrics.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY, history: Any = None) -> None:
        self.registry = registry
        self.runs = Counter("openautoglm_engine_runs", "Engine runs finished, by policy and "
                            "status", ("policy", "status"), registry=registry)
        self.in_progress = Gauge("openautoglm_engine_runs_in_progress", "Engine runs submitted "
                                 "and not finished", registry=registry)
        self.tasks = Counter("openautoglm_engine_tasks", "Tasks of finished runs, by final "
                             "state", ("state",), registry=registry)
        self.makespan = Histogram("openautoglm_engine_makespan_seconds", "Makespan of runs: "
                                  "the plan's and the realised", ("policy", "kind"),
                                  buckets=_SECONDS, registry=registry)
        self.last_makespan = Gauge("openautoglm_engine_last_makespan_seconds", "The last run's "
                                   "makespan, planned and realised", ("policy", "kind"),
                                   registry=registry)
        self.makespan_error = Histogram("openautoglm_engine_makespan_error_ratio", "Realised "
                                        "makespan / planned - 1", ("policy",), buckets=_ERROR,
                                        registry=registry)
        self.duration_mape = Gauge("openautoglm_engine_duration_mape_ratio", "The last run's "
                                   "mean absolute error of task durations vs the plan",
                                   ("policy",), registry=registry)
        self.planning = Histogram("openautoglm_engine_planning_seconds", "Time spent planning, "
                                  "by policy", ("policy",), buckets=_PLANNING, registry=registry)
        self.history = history
        if history is not None and str(history.path) != ":memory:":
            registry.register(_HistoryCollector(str(history.path)))

    def observe_plan(self, policy: str, seconds: float) -> None:
        """One planning call of ``policy`` took ``seconds``."""
        self.planning.labels(policy=policy).observe(seconds)

    def observe_run(self, result: Any, policy: str, status: str) -> None:
        """A finished run: its :class:`~openautoglm.engine.report.RunResult` (``None`` if none)."""
        self.runs.labels(policy=policy, status=status).inc()
        if result is None:
            return
        states: dict[str, int] = {}
        for row in result.times:
            state = row.get("status") or "not_run"
            states[state] = states.get(state, 0) + 1
        for state, n in states.items():
            self.tasks.labels(state=state).inc(n)
        for kind, value in (("planned", result.planned_makespan), ("realised", result.makespan)):
            self.makespan.labels(policy=policy, kind=kind).observe(value)
            self.last_makespan.labels(policy=policy, kind=kind).set(value)
        error = result.estimate_error()
        if math.isfinite(error["makespan_error"]):
            self.makespan_error.labels(policy=policy).observe(error["makespan_error"])
        if math.isfinite(error["duration_mape"]):
            self.duration_mape.labels(policy=policy).set(error["duration_mape"])

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> tuple[Any, int]:
        """Expose the registry over HTTP for Prometheus (``/metrics`` on ``addr:port``).

        Args:
            port: 0 lets the OS choose.
            addr: the address to bind (loopback unless you mean otherwise).

        Returns:
            ``(server, port)``; ``server.shutdown()`` stops it.
        """
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return server, server.server_address[1]


class _HistoryCollector:
    """Counts the rows of a History file at each scrape (read-only connection)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = {"runs": math.nan, "executions": math.nan}
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1.0)
            try:
                for table in counts:
                    counts[table] = conn.execute(f"SELECT COUNT(*) FROM oag_{table}").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # not created yet, or locked for longer than a scrape should wait
        yield GaugeMetricFamily("openautoglm_history_runs", "Runs stored in the History",
                                value=counts["runs"])
        yield GaugeMetricFamily("openautoglm_history_executions", "Task executions stored in "
                                "the History", value=counts["executions"])

    def describe(self) -> list[GaugeMetricFamily]:
        return []
