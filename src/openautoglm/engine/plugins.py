"""Dask plugins, the engine's documented hooks: :class:`RunRecorder` (scheduler: transitions and
transfers of one run, lost workers, pins to dead workers dropped), :class:`FailureRecorder`
(worker: a failed task's traceback) and :func:`seed_durations` (the scheduler's duration
estimates from history).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from openautoglm.engine.faults import LossTracker, drop_orphan_pins

RECORDER = "openautoglm-recorder"


FAILURES = "openautoglm-failures"


class RunRecorder(SchedulerPlugin):
    """Scheduler plugin: per-task records of engine runs, lost workers, re-homing of orphaned pins."""

    name = RECORDER
    idempotent = True

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.losses = LossTracker()
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def update_graph(self, scheduler: Any, *, tasks: list[Any] | None = None, **kwargs: Any) -> None:
        # A worker that died after the plan was made, before the graph arrived: nothing else
        # would ever drop the pins to it. (Called before the new tasks are transitioned.)
        drop_orphan_pins(scheduler, (scheduler.tasks[k] for k in tasks or () if k in scheduler.tasks))

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        ts = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        if ts is None or not ts.annotations or "oag_run" not in ts.annotations:
            return
        self.losses.transition(ts, start, finish, kwargs.get("stimulus_id"), kwargs)
        if start != "processing" or finish not in ("memory", "erred"):
            return
        rec = {
            "key": key,
            "status": "ok" if finish == "memory" else "error",
            "worker": kwargs.get("worker"),
            "nbytes": kwargs.get("nbytes", 0) or 0,
            "startstops": kwargs.get("startstops", []),
            "deps": [(d.key, d.nbytes) for d in ts.dependencies],
            "priority": ts.priority,
        }
        if finish == "erred":
            rec["exception_text"] = kwargs.get("exception_text")
            rec["traceback_text"] = kwargs.get("traceback_text")
        self.records[ts.annotations["oag_run"]].append(rec)

    def pop(self, run_id: str) -> list[dict[str, Any]]:
        return self.records.pop(run_id, [])

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        self.losses.remove_worker(scheduler, worker, kwargs.get("stimulus_id"))
        # The plan pinned tasks to this worker with strict restrictions (so that nothing steals
        # them); now that it is gone, let them run anywhere rather than wait forever.
        recs = drop_orphan_pins(scheduler, scheduler.tasks.values())
        if recs:
            scheduler.transitions(recs, stimulus_id=f"openautoglm-rehome-{worker}")


class FailureRecorder(WorkerPlugin):
    """Worker plugin: every failed attempt of an engine task, with its exception."""

    name = FAILURES
    idempotent = True

    def __init__(self) -> None:
        self.failures: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.worker: Any = None

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "error" or self.worker is None:
            return
        ts = self.worker.state.tasks.get(key)
        if ts is None or not ts.annotations or "oag_run" not in ts.annotations:
            return
        compute = [s for s in ts.startstops if s.get("action") == "compute"]
        self.failures[ts.annotations["oag_run"]].append({
            "key": key,
            "worker": self.worker.address,
            "start": compute[-1]["start"] if compute else None,
            "stop": compute[-1]["stop"] if compute else None,
            "exception_text": ts.exception_text,
            "traceback_text": ts.traceback_text,
        })


def pop_records(dask_scheduler: Any, run_id: str) -> list[dict[str, Any]]:
    """``client.run_on_scheduler`` target: take a run's records off the scheduler."""
    plugin = dask_scheduler.plugins.get(RECORDER)
    return plugin.pop(run_id) if plugin is not None else []


def pop_failures(dask_worker: Any, run_id: str) -> list[dict[str, Any]]:
    """``client.run`` target: take a run's failed attempts off a worker."""
    plugin = dask_worker.plugins.get(FAILURES)
    return plugin.failures.pop(run_id, []) if plugin is not None else []


def seed_durations(dask_scheduler: Any, durations: dict[str, float]) -> int:
    """``client.run_on_scheduler`` target: seed Dask's per-prefix duration estimates.

    Sets ``distributed.scheduler.default-task-durations`` (read when a prefix is first seen)
    and the average of prefixes the scheduler already knows but has not measured.
    """
    import dask

    known = dict(dask.config.get("distributed.scheduler.default-task-durations", {}) or {})
    known.update({k: f"{float(v)}s" for k, v in durations.items()})
    dask.config.set({"distributed.scheduler.default-task-durations": known})
    n = 0
    for name, seconds in durations.items():
        tp = dask_scheduler.task_prefixes.get(name)
        if tp is not None and tp.duration_average < 0:
            tp.duration_average = float(seconds)
            n += 1
    return n
