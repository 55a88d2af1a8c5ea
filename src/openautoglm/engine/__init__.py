"""⑥ Running a plan on Dask: :class:`Engine` (``engine``), the annotated Dask graph
(``dispatch``), scheduler/worker plugins (``plugins``), Dask's records turned into run tables and
history rows (``record``), the :class:`RunResult` view (``report``) and ``from_dask``.
"""
from __future__ import annotations

from openautoglm.engine.dispatch import EngineError
from openautoglm.engine.engine import Engine, compute
from openautoglm.engine.from_dask import from_dask
from openautoglm.engine.report import RunResult

__all__ = ["Engine", "EngineError", "RunResult", "compute", "from_dask"]
