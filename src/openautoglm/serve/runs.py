"""``/v1/runs``: pipelines registered in the service, run one at a time on its Engine.

Only pipelines the operator registered (``create_app(pipelines=...)`` or ``openautoglm serve
--pipeline NAME=FILE.yaml``) can run; a request names one and gives its inputs as JSON values,
so nothing from a request is ever executed or unpickled. Runs wait in a bounded queue
(``max_queued``; one more is refused with a retry hint) and go through one worker thread::

    queued -> running -> succeeded | failed | cancelled
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict, deque
from typing import Any

__all__ = ["RunManager", "RunQueueFullError"]

_FINAL = ("succeeded", "failed", "cancelled")


class RunQueueFullError(RuntimeError):
    """``max_queued`` runs are waiting already."""


def _jsonable(value: Any, limit: int = 2000) -> Any:
    """The value if it is small JSON, else a truncated repr (outputs are data, not code)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = None
    if text is not None and len(text) <= limit:
        return value
    r = repr(value)
    return r if len(r) <= limit else r[:limit] + "..."


class RunManager:
    """Queues and runs registered pipelines on an :class:`~openautoglm.engine.engine.Engine`.

    Args:
        engine_factory: ``() -> Engine``, called once, on the first run.
        pipelines: name -> :class:`~openautoglm.pipeline.Pipeline`.
        history: a History to refine costs from and record runs into (or ``None``).
        max_queued: runs that may wait.
        keep: finished runs remembered for ``GET``.
    """

    def __init__(self, engine_factory: Any, pipelines: dict[str, Any], history: Any = None,
                 max_queued: int = 16, keep: int = 1000) -> None:
        self.engine_factory = engine_factory
        self.engine: Any = None
        self.pipelines = dict(pipelines)
        self.history = history
        self.max_queued = max_queued
        self.keep = keep
        self._runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="openautoglm-runs", daemon=True)
        self._thread.start()

    def submit(self, pipeline: str, inputs: dict[str, Any], policy: str) -> dict[str, Any]:
        """Queues a run; returns its record.

        Raises:
            KeyError: unknown pipeline (the message lists the registered ones).
            ValueError: inputs that do not match the pipeline's.
            RunQueueFullError: the queue is full.
        """
        p = self.pipelines.get(pipeline)
        if p is None:
            raise KeyError(f"unknown pipeline {pipeline!r}; registered: "
                           f"{', '.join(sorted(self.pipelines)) or 'none'}")
        missing = sorted(set(p.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(p.inputs))
        if missing or extra:
            raise ValueError(f"pipeline {pipeline!r} takes inputs {p.inputs}; "
                             + (f"missing {missing}" if missing else f"unknown {extra}"))
        with self._cond:
            if self._closed:
                raise RunQueueFullError("the service is shutting down")
            if len(self._queue) >= self.max_queued:
                raise RunQueueFullError(f"{len(self._queue)} runs are queued already "
                                        f"(max_queued={self.max_queued}); retry later")
            run_id = uuid.uuid4().hex[:12]
            rec = {"id": run_id, "pipeline": pipeline, "policy": policy, "state": "queued",
                   "submitted": time.time(), "started": None, "finished": None,
                   "progress": {"finished": 0, "total": len(p)}, "inputs": inputs}
            self._runs[run_id] = rec
            self._queue.append(run_id)
            while len(self._runs) > self.keep + self.max_queued:
                old = next(iter(self._runs))
                if self._runs[old]["state"] not in _FINAL:
                    break
                self._runs.pop(old)
            self._cond.notify()
            return self.view(run_id)

    def view(self, run_id: str) -> dict[str, Any]:
        """The run's state, progress and (when finished) result or error."""
        rec = self._runs.get(run_id)
        if rec is None:
            raise KeyError(f"no run {run_id!r}")
        out = {k: v for k, v in rec.items() if k != "inputs"}
        if rec["state"] == "running" and self.engine is not None:
            live = self.engine.run_progress(run_id)
            if live is not None:
                out["progress"] = {"finished": live[0], "total": live[1]}
        return out

    def list(self) -> list[dict[str, Any]]:
        """Every remembered run, newest last."""
        return [self.view(k) for k in list(self._runs)]

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancels a queued or running run (a finished one is left as it is)."""
        with self._cond:
            rec = self._runs.get(run_id)
            if rec is None:
                raise KeyError(f"no run {run_id!r}")
            if rec["state"] == "queued":
                self._queue.remove(run_id)
                rec.update(state="cancelled", finished=time.time())
            elif rec["state"] == "running":
                rec["cancel_requested"] = True
                if self.engine is not None:
                    self.engine.cancel(run_id)
        return self.view(run_id)

    def close(self) -> None:
        """Cancels what is queued, stops the running one, closes the Engine."""
        with self._cond:
            self._closed = True
            while self._queue:
                self._runs[self._queue.popleft()].update(state="cancelled", finished=time.time())
            running = [k for k, r in self._runs.items() if r["state"] == "running"]
            self._cond.notify_all()
        for k in running:
            if self.engine is not None:
                self.engine.cancel(k)
        self._thread.join(30)
        if self.engine is not None:
            self.engine.close()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                run_id = self._queue.popleft()
                rec = self._runs[run_id]
                rec.update(state="running", started=time.time())
            self._run(rec)

    def _run(self, rec: dict[str, Any]) -> None:
        from openautoglm.engine.engine import RunCancelledError

        try:
            if self.engine is None:
                self.engine = self.engine_factory()
            result = self.engine.run(self.pipelines[rec["pipeline"]], policy=rec["policy"],
                                     inputs=rec["inputs"], history=self.history,
                                     run_id=rec["id"])
            outputs = {str(k): _jsonable(v) for k, v in result.items()
                       if k not in rec["inputs"]}
            rec.update(state="succeeded", makespan=result.makespan,
                       planned_makespan=result.planned_makespan, outputs=outputs,
                       progress={"finished": len(result.times), "total": len(result.times)})
        except RunCancelledError:
            rec.update(state="cancelled")
        except Exception as exc:  # the run's own failure, reported to its owner
            rec.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            rec["finished"] = time.time()
