"""⑥ Running a plan on Dask: :class:`Engine` (``engine``), the annotated Dask graph
(``dispatch``), scheduler/worker plugins (``plugins``), Dask's records turned into run tables and
history rows (``record``), the :class:`RunResult` view (``report``), ``from_dask``, and what
happens when workers, tasks or the scheduler fail (``faults``, ``failures``); gang tasks, k
ranks joined by torch.distributed (``gang``).
"""
from __future__ import annotations

from openautoglm.engine.dispatch import EngineError
from openautoglm.engine.engine import Engine, compute
from openautoglm.engine.faults import (RunTimeoutError, SchedulerLostError, TaskTimeoutError,
                                       WorkerKilledError, WorkerLostError)
from openautoglm.engine.gang import GangContext, GangError
from openautoglm.engine.from_dask import from_dask
from openautoglm.engine.report import RunResult

__all__ = ["Engine", "EngineError", "GangContext", "GangError", "RunResult", "RunTimeoutError", "SchedulerLostError",
           "TaskTimeoutError", "WorkerKilledError", "WorkerLostError", "compute", "from_dask"]
