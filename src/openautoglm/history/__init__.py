"""⑤ What really happened: the SQLite store of runs (``store``, its ``rows``) and the cost model fitted on it
(``cost_model``: task identities, per-identity fits, :class:`CostEstimate`).
"""
from __future__ import annotations

from openautoglm.history.cost_model import CostEstimate, task_identity
from openautoglm.history.rows import Execution, Transfer
from openautoglm.history.store import History, HistoryError, default_history_path

__all__ = ["CostEstimate", "Execution", "History", "HistoryError", "Transfer",
           "default_history_path", "task_identity"]
