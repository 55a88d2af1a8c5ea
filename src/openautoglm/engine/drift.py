"""Dynamic correction: stop following a pinned plan once reality drifts away from it.

A strict plan is only as good as its costs. Each pinned task carries its planned duration as
the annotation ``oag_est``. :class:`DriftWatcher`, a scheduler plugin, watches every
``processing -> memory`` transition of such a task::

    realised compute time > FACTOR (2) x estimate  and  > estimate + MIN_SECONDS (0.05 s)

and on the first such task of a run releases the run's pins: every task of the run not yet
finished loses its ``workers=`` restriction, so Dask's own placement and work stealing take
over (the plan's priorities stay). What it did is returned to the client (``result.decision
.corrections``), e.g. ``"released 37 pins at 1.2 s: 'slow-3' ran 0.61 s, planned 0.20 s"``.

Redundancy for what matters (``compute(..., backup=True)``, pure tasks only): the watcher
also looks, every 0.1 s, at the tasks the workers report executing (their heartbeats). A task
of the plan's critical path (marked ``oag_backup``) that has run ``FACTOR`` times its estimate
gets a copy on another worker, and the run's pins are released. Dask holds one running copy
of a key at a time, so the copy takes the key over: the straggling attempt runs on until its
thread is free and its result is dropped. Started at 2x the estimate, the copy ends near 3x:
it wins against a worker slowed more than 3x (the injected straggler of the tests and the
benchmark is 5x) and loses up to one estimate against a milder one. Every backup is listed in
the corrections.

Read ``tests/engine/test_modes.py::test_drift_releases_the_pins`` and
``::test_backup_beats_a_straggler``.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import SchedulerPlugin

if TYPE_CHECKING:
    from openautoglm.simulate.schedule import Schedule

__all__ = ["DriftWatcher", "annotate_estimates", "critical_tasks", "pop_corrections"]

WATCHER = "openautoglm-drift"
#: A task is off its estimate when it runs this many times longer...
FACTOR = 2.0
#: ... and at least this many seconds longer (timer noise on tiny tasks is no drift).
MIN_SECONDS = 0.05


class DriftWatcher(SchedulerPlugin):
    """Scheduler plugin: release a run's pins when a task runs far beyond its estimate."""

    name = WATCHER
    idempotent = True

    def __init__(self, factor: float = FACTOR, min_seconds: float = MIN_SECONDS) -> None:
        self.factor = factor
        self.min_seconds = min_seconds
        self.scheduler: Any = None
        self.corrections: dict[str, list[str]] = defaultdict(list)
        self.released: set[str] = set()
        self.first_start: dict[str, float] = {}
        self.backed_up: dict[str, set[Any]] = defaultdict(set)

    async def start(self, scheduler: Any) -> None:
        from tornado.ioloop import PeriodicCallback

        self.scheduler = scheduler
        self._pc = PeriodicCallback(self.check_stragglers, 100)
        self._pc.start()

    async def close(self) -> None:
        pc = getattr(self, "_pc", None)
        if pc is not None:
            pc.stop()

    def check_stragglers(self) -> None:
        """Launch a copy of each straggling critical task on another worker (see module doc)."""
        s = self.scheduler
        if s is None or len(s.workers) < 2:
            return
        for ws in list(s.workers.values()):
            for ts, elapsed in list(ws.executing.items()):
                ann = ts.annotations
                if not ann or not ann.get("oag_backup") \
                        or ts.key in self.backed_up[ann.get("oag_run")]:
                    continue
                est = float(ann.get("oag_est") or 0.0)
                if est <= 0 or elapsed < self.factor * est or elapsed - est < self.min_seconds:
                    continue
                if ts.state != "processing" or ts.processing_on is not ws:
                    continue
                self.backup(ts, ws, elapsed, est)

    def backup(self, ts: Any, slow: Any, elapsed: float, est: float) -> None:
        """Take ``ts`` off the slow worker and run it on another one."""
        run = ts.annotations.get("oag_run")
        others = {a for a in self.scheduler.workers if a != slow.address}
        self.backed_up[run].add(ts.key)
        if run not in self.released:
            n = self.release(run)
            self.released.add(run)
            self.corrections[run].append(f"released {n} pins: {ts.key!r} straggles on "
                                         f"{slow.address}")
        ts.worker_restrictions = others
        ts.loose_restrictions = False
        self.scheduler.transitions({ts.key: "released"},
                                   stimulus_id=f"openautoglm-backup-{time.time()}")
        self.corrections[run].append(
            f"backup of {ts.key!r} on another worker: {elapsed:.3g} s on {slow.address}, "
            f"planned {est:.3g} s")

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start != "processing" or finish != "memory" or self.scheduler is None:
            return
        ts = self.scheduler.tasks.get(key)
        ann = ts.annotations if ts is not None else None
        if not ann or "oag_est" not in ann:
            return
        run = ann.get("oag_run")
        compute = [s for s in kwargs.get("startstops", []) if s.get("action") == "compute"]
        if not compute:
            return
        self.first_start.setdefault(run, compute[-1]["start"])
        if run in self.released:
            return
        took = compute[-1]["stop"] - compute[-1]["start"]
        est = float(ann["oag_est"])
        if took > self.factor * est and took - est > self.min_seconds:
            n = self.release(run)
            self.released.add(run)
            at = compute[-1]["stop"] - self.first_start[run]
            self.corrections[run].append(
                f"released {n} pins at {at:.2f} s: {key!r} ran {took:.3g} s, planned {est:.3g} s")

    def release(self, run: str) -> int:
        """Drop the worker restrictions of the run's unfinished tasks; returns how many."""
        n = 0
        recs = {}
        for ts in self.scheduler.tasks.values():
            ann = ts.annotations
            if not ann or ann.get("oag_run") != run or not ts.worker_restrictions:
                continue
            if not ann.get("workers") or "shuffle_original_restrictions" in ann:
                continue  # not our pin (P2P shuffles restrict their own output tasks)
            if ts.state in ("memory", "erred", "forgotten"):
                continue
            ts.worker_restrictions = None
            ts.loose_restrictions = False
            n += 1
            if ts.state == "no-worker":
                recs[ts.key] = "processing"
        if recs:
            self.scheduler.transitions(recs, stimulus_id=f"openautoglm-drift-{time.time()}")
        return n

    def pop(self, run: str) -> list[str]:
        self.released.discard(run)
        self.first_start.pop(run, None)
        self.backed_up.pop(run, None)
        return self.corrections.pop(run, [])


def _pop(dask_scheduler: Any, run_id: str) -> list[str]:
    plugin = dask_scheduler.plugins.get(WATCHER)
    return plugin.pop(run_id) if plugin is not None else []


def pop_corrections(client: Any, run_id: str) -> list[str]:
    """What the watcher did during a run (empty when nothing drifted)."""
    return client.run_on_scheduler(_pop, run_id=run_id)


def annotate_estimates(client: Any, annotations: dict[str, Any], plan: Schedule,
                       dkey: dict[Hashable, Hashable], backup: bool = False) -> None:
    """Add the planned durations (``oag_est``), and with ``backup`` mark the plan's critical
    tasks (``oag_backup``); make sure the watcher runs on the scheduler."""
    if not getattr(client, "_oag_drift_registered", False):
        client.register_plugin(DriftWatcher())
        client._oag_drift_registered = True
    est = {dkey[k]: p.finish - p.start for k, p in plan.placements.items()}
    annotations["oag_est"] = est.get
    if backup:
        critical = {dkey[k] for k in critical_tasks(plan)}
        annotations["oag_backup"] = lambda key: True if key in critical else None


def critical_tasks(plan: Schedule, slack: float = 0.1) -> set[Hashable]:
    """Tasks whose planned start plus the longest path after them (at the plan's durations)
    reaches within ``slack`` of the plan's makespan: the ones a delay would push the end.

    Example:
        >>> import networkx as nx
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.graph import TaskGraph
        >>> from openautoglm.schedulers import schedule
        >>> G = nx.DiGraph([("a", "b")]); G.add_node("c")
        >>> nx.set_node_attributes(G, {"a": 2.0, "b": 2.0, "c": 1.0}, "cost")
        >>> sorted(critical_tasks(schedule(TaskGraph.from_networkx(G), Cluster.homogeneous(2))))
        ['a', 'b']
    """
    g = plan.graph
    dur = {k: p.finish - p.start for k, p in plan.placements.items()}
    tail: dict[Hashable, float] = {}
    for k in reversed(g.tasks):
        tail[k] = dur.get(k, 0.0) + max((tail[d] for d in g.dependents(k)), default=0.0)
    end = plan.makespan
    return {k for k, p in plan.placements.items() if p.start + tail[k] >= (1 - slack) * end}
