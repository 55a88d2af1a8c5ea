"""Run-time faults: a worker that dies, a task that hangs, a scheduler that goes away.

What the engine guarantees (``tests/integration/test_faults.py`` checks each on a real process
cluster):

- **A worker dies** (at any moment of a run): the tasks the plan pinned to it are re-homed
  (their strict ``workers=`` pin is dropped, whether the worker died before the graph reached
  the scheduler or while its tasks waited or ran); results it held are recomputed by Dask. A run
  whose tasks no live worker can take (every worker gone, or a resource only the dead worker
  had) fails after ``no_worker_timeout`` seconds with :class:`WorkerLostError` naming the lost
  workers and the tasks that cannot run. Every output is gathered and checked: none is dropped.
- **A task kills its worker** (segfault, ``os._exit``, out of memory): Dask retries it on
  another worker until ``distributed.scheduler.allowed-failures`` deaths, then fails it with
  ``KilledWorker``; the engine raises :class:`~openautoglm.pipeline.TaskFailedError` naming the
  task and the number of deaths, and history has one ``"worker-died"`` row per death.
- **A task hangs**: ``Task(timeout=s)`` fails the attempt with :class:`TaskTimeoutError` after
  ``s`` seconds (retried like any error); ``Engine.run(timeout=s)`` stops the whole run with
  :class:`RunTimeoutError` naming the tasks still running. History records ``"timeout"`` rows.
- **The scheduler goes away**: :class:`SchedulerLostError` as soon as the client sees the
  connection drop (not a raw ``OSError`` after the reconnect timeout).

Glossary: *pin* = the strict ``workers=[address]`` restriction a planned task carries;
*orphan* = a pinned task whose worker is no longer in the cluster; *death* = a worker removed
while it was running a task (Dask's ``suspicious`` count).
"""
from __future__ import annotations

import contextvars
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

__all__ = ["EngineError", "WorkerLostError", "SchedulerLostError", "RunTimeoutError",
           "TaskTimeoutError", "call_with_timeout", "LossTracker", "drop_orphan_pins", "run_state"]

#: Engine annotation that marks a Dask task as part of an engine run (its value: the run id).
RUN_ANNOTATION = "oag_run"


class EngineError(RuntimeError):
    """The engine cannot run this (unreachable cluster, unsatisfiable request, lost workers...)."""


class _RunError(EngineError):
    """A run that stopped: ``partial`` holds every output computed, ``result`` the run record."""

    partial: dict[Hashable, Any]
    result: Any = None

    def __init__(self, message: str, partial: dict[Hashable, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = dict(partial or {})


class WorkerLostError(_RunError):
    """Workers died and some tasks of the run can run on no worker that is left.

    Attributes:
        workers: the workers lost during the run (addresses), with the tasks each was running.
        tasks: the tasks that no live worker can run.
    """

    def __init__(self, message: str, workers: dict[str, list[Hashable]], tasks: list[Hashable],
                 partial: dict[Hashable, Any] | None = None) -> None:
        super().__init__(message, partial)
        self.workers = workers
        self.tasks = tasks


class SchedulerLostError(_RunError):
    """The connection to the Dask scheduler dropped during a run."""


class RunTimeoutError(_RunError, TimeoutError):
    """``Engine.run(timeout=...)`` ran out: the run was cancelled.

    Attributes:
        timeout: the limit in seconds.
        running: the tasks that were still running (or waiting) when it ran out.
    """

    def __init__(self, message: str, timeout: float, running: list[Hashable],
                 partial: dict[Hashable, Any] | None = None) -> None:
        super().__init__(message, partial)
        self.timeout = timeout
        self.running = running


class TaskTimeoutError(TimeoutError):
    """A task ran past its ``Task(timeout=...)`` (raised on the worker, per attempt)."""

    def __init__(self, task: str, timeout: float) -> None:
        super().__init__(task, timeout)
        self.task, self.timeout = task, timeout

    def __str__(self) -> str:
        return (f"task {self.task!r} ran past its timeout of {self.timeout:g} s and was abandoned "
                "(its thread cannot be interrupted and finishes in the background; its result "
                "is discarded); raise Task(timeout=...) if the task is just slow")


def call_with_timeout(fn: Callable[..., Any], args: Iterable[Any], timeout: float,
                      name: str) -> Any:
    """Call ``fn(*args)`` in a helper thread and wait at most ``timeout`` seconds.

    Python cannot stop a thread: on timeout the call is abandoned (it runs on in the background,
    its result discarded) and the Dask worker's thread is freed at once. The helper thread runs
    in a copy of the caller's context, so ``distributed.get_worker()`` works inside ``fn``.

    Raises:
        TaskTimeoutError: the call did not return within ``timeout`` seconds.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(fn, *args)
        except BaseException as e:  # handed to the caller below
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name=f"openautoglm-task-{name}", daemon=True).start()
    if not done.wait(timeout):
        raise TaskTimeoutError(name, timeout)
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- on the scheduler (called by the engine's RunRecorder plugin) ------------------------------
def _engine_task(ts: Any) -> bool:
    return bool(ts.annotations) and RUN_ANNOTATION in ts.annotations


def drop_orphan_pins(scheduler: Any, tasks: Iterable[Any]) -> dict[Hashable, str]:
    """Drop the pins of engine tasks pinned to workers that are gone.

    The plan pins with strict restrictions so that nothing steals a task; a pin to a worker
    that has left would keep the task in ``no-worker`` forever. The pin is dropped, not made
    loose: Dask's ``loose_restrictions`` would also ignore the task's ``resources=`` and could
    send it to a worker without them, where it would wait forever.

    Returns:
        Transitions that start tasks already stuck in ``no-worker``.
    """
    recs: dict[Hashable, str] = {}
    for ts in tasks:
        if not ts.worker_restrictions or not _engine_task(ts):
            continue
        if not any(addr in scheduler.workers for addr in ts.worker_restrictions):
            scheduler.set_restrictions({ts.key: None})  # any worker with its resources
            if ts.state == "no-worker":
                recs[ts.key] = "processing"
    return recs


class LossTracker:
    """Remembers, per run, each worker that died and what it was running (deaths) or held.

    The scheduler moves a dead worker's tasks (``processing -> released``, or ``-> erred`` with
    ``KilledWorker``) before it tells plugins that the worker left, under one stimulus id:
    transitions seen under that id are the dead worker's.
    """

    def __init__(self) -> None:
        self.where: dict[Hashable, str] = {}
        self.sent: dict[Hashable, float] = {}
        self._moved: tuple[str | None, list[tuple[Hashable, str, str]]] = (None, [])
        self.losses: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def transition(self, ts: Any, start: str, finish: str, stimulus_id: str | None,
                   kwargs: dict[str, Any]) -> None:
        key = ts.key
        if finish == "forgotten":
            self.where.pop(key, None)
            self.sent.pop(key, None)
            return
        if finish == "processing" and ts.processing_on is not None:
            self.where[key] = ts.processing_on.address
            self.sent[key] = time.time()
            return
        if start == "processing":
            worker = self.where.pop(key, None) or kwargs.get("worker")
            if finish in ("released", "erred") and worker is not None:
                self._note(stimulus_id, key, worker, "running")
            if finish != "released":
                self.sent.pop(key, None)
        elif start == "memory" and finish == "released":
            self._note(stimulus_id, key, None, "held")

    def _note(self, stimulus_id: str | None, key: Hashable, worker: str | None, what: str) -> None:
        sid, moved = self._moved
        if sid != stimulus_id:
            moved = []
            self._moved = (stimulus_id, moved)
        moved.append((key, worker or "", what))

    def remove_worker(self, scheduler: Any, worker: str, stimulus_id: str | None) -> None:
        sid, moved = self._moved
        self._moved = (None, [])
        when = time.time()
        for key, w, what in (moved if sid == stimulus_id else []):
            ts = scheduler.tasks.get(key)
            if ts is None or not _engine_task(ts) or (what == "running" and w != worker):
                continue
            self.losses[ts.annotations[RUN_ANNOTATION]].append({
                "key": key, "worker": worker, "what": what, "time": when,
                "start": self.sent.get(key) if what == "running" else None,
                "deaths": ts.suspicious, "state": ts.state})

    def pop(self, run_id: str) -> list[dict[str, Any]]:
        return self.losses.pop(run_id, [])


def _runnable_somewhere(scheduler: Any, ts: Any) -> bool:
    """Whether some worker in the cluster (running, starting or paused) could take ``ts``."""
    if ts.worker_restrictions and not ts.loose_restrictions:  # (loose: not set by the engine)
        candidates = [a for a in ts.worker_restrictions if a in scheduler.workers]
    else:
        candidates = list(scheduler.workers)
    need = ts.resource_restrictions or {}
    return any(all(scheduler.workers[a].resources.get(r, 0) >= v for r, v in need.items())
               for a in candidates)


def run_state(dask_scheduler: Any, run_id: str, recorder: str) -> dict[str, Any]:
    """``client.run_on_scheduler`` target: where a run's unfinished tasks stand.

    A task in ``no-worker`` whose worker is only starting or paused is waiting, not stuck:
    ``no_worker`` lists the tasks that no worker in the cluster can take at all.

    Returns:
        ``workers`` (count), ``no_worker`` (those keys, with their restrictions),
        ``processing`` (key -> [worker, sent time]) and ``losses`` so far.
    """
    plugin = dask_scheduler.plugins.get(recorder)
    tracker = getattr(plugin, "losses", None)
    stuck, processing = [], {}
    for ts in dask_scheduler.tasks.values():
        if not ts.annotations or ts.annotations.get(RUN_ANNOTATION) != run_id:
            continue
        if ts.state == "no-worker" and not _runnable_somewhere(dask_scheduler, ts):
            stuck.append({"key": ts.key, "workers": sorted(ts.worker_restrictions or ()),
                          "resources": dict(ts.resource_restrictions or {})})
        elif ts.state == "processing" and ts.processing_on is not None:
            sent = tracker.sent.get(ts.key) if tracker is not None else None
            processing[ts.key] = [ts.processing_on.address, sent]
    return {"workers": len(dask_scheduler.workers), "no_worker": stuck, "processing": processing,
            "losses": list(tracker.losses.get(run_id, [])) if tracker is not None else []}


# -- on the client (the engine's wait loop) ----------------------------------------------------
class RunWatch:
    """The engine's watchdog over one run: its deadline, the scheduler link, stuck tasks.

    ``check()`` is cheap (a clock read) except once every ``every`` seconds, when it asks the
    scheduler where the run's unfinished tasks stand (one ``run_on_scheduler`` call).

    Attributes:
        reason: why the run must stop: ``"timeout"``, ``"stuck"`` (tasks no live worker can
            run for ``no_worker_timeout`` s) or ``"scheduler-lost"``; ``None`` while it may go on.
        state: the scheduler's last answer (see :func:`run_state`), ``None`` before the first.
    """

    def __init__(self, client: Any, run_id: str, recorder: str, deadline: float | None,
                 no_worker_timeout: float, *, timeout: float | None = None,
                 every: float = 1.0) -> None:
        self.client, self.run_id, self.recorder = client, run_id, recorder
        self.timeout = timeout
        self.deadline, self.no_worker_timeout, self.every = deadline, no_worker_timeout, every
        self.reason: str | None = None
        self.state: dict[str, Any] | None = None
        self._next = time.monotonic() + min(every, no_worker_timeout)
        self._stuck_since: float | None = None

    def scheduler_lost(self) -> bool:
        """Whether the client has lost its scheduler (it then cancels every future)."""
        if self.client.status != "running":  # "connecting" (trying again), "closed"...
            self.reason = "scheduler-lost"
        return self.reason == "scheduler-lost"

    def check(self) -> str | None:
        """Returns ``reason`` once the run must stop."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.reason = "timeout"
            self.poll()
        elif now >= self._next:
            self._next = now + self.every
            state = self.poll()
            if state is not None and state["no_worker"]:
                self._stuck_since = self._stuck_since or now
                if now - self._stuck_since >= self.no_worker_timeout:
                    self.reason = "stuck"
            else:
                self._stuck_since = None
        return self.reason

    def poll(self) -> dict[str, Any] | None:
        """Ask the scheduler for :func:`run_state` (``None`` when it cannot answer)."""
        if self.scheduler_lost():
            return None
        try:
            self.state = self.client.run_on_scheduler(run_state, run_id=self.run_id,
                                                      recorder=self.recorder)
        except (OSError, TimeoutError) as e:  # CommClosedError is an OSError
            if self.scheduler_lost() or "connect" in str(e).lower():
                self.reason = "scheduler-lost"
            return None
        return self.state


def pop_losses(dask_scheduler: Any, run_id: str, recorder: str) -> list[dict[str, Any]]:
    """``client.run_on_scheduler`` target: take a run's worker losses off the scheduler."""
    plugin = dask_scheduler.plugins.get(recorder)
    tracker = getattr(plugin, "losses", None)
    return tracker.pop(run_id) if tracker is not None else []


class WorkerKilledError(EngineError):
    """A task whose worker process died every time it ran (Dask's ``KilledWorker``).

    Attributes:
        task: the task.
        deaths: how many workers died while running it.
        workers: the addresses of those workers.
    """

    def __init__(self, task: str, deaths: int, workers: list[str]) -> None:
        super().__init__(task, deaths, workers)
        self.task, self.deaths, self.workers = task, deaths, workers

    def __str__(self) -> str:
        return (f"the worker process died {self.deaths} time(s) while running task "
                f"{self.task!r} (on {', '.join(self.workers) or 'unknown workers'}), so Dask gave "
                "up on it (distributed.scheduler.allowed-failures). The task most likely crashes "
                "its process (segfault, os._exit, out of memory): read those workers' logs")
