"""⑤ What really happened: the SQLite store of runs (``store``, its ``rows``, its file: ``database``) and the cost model fitted on it
(``cost_model``: task identities, per-identity fits, :class:`CostEstimate`).
"""
from __future__ import annotations

from openautoglm.history.cost_model import CostEstimate, task_identity
from openautoglm.history.rows import Execution, Transfer
from openautoglm.history.database import HistoryError, default_history_path
from openautoglm.history.store import History

__all__ = ["CostEstimate", "Execution", "History", "HistoryError", "Transfer",
           "default_history_path", "task_identity"]
