"""What history teaches: a task's identity (:func:`task_identity`), per-identity fits of run
time against input and output size, and the :class:`CostEstimate` they give.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from openautoglm._typing import TaskKey

__all__ = ["CostEstimate", "node_identities", "task_identity"]


def task_identity(key: TaskKey) -> str:
    """The identity under which a task's executions are pooled.

    Args:
        key: a Dask key (string or tuple) or a pipeline task name.

    Returns:
        The key prefix, as Dask computes it.

    Example:
        >>> task_identity("inc-8f3a9c0d4b2e11ef")
        'inc'
        >>> task_identity(("sum-4ad2c", 3))
        'sum'
        >>> task_identity("clean_input")
        'clean_input'
    """
    from dask.utils import key_split

    return key_split(key)


def _safe_identity(key: TaskKey) -> str:
    try:
        return task_identity(key)
    except Exception:
        return str(key)


def node_identities(graph: Any) -> dict[TaskKey, str]:
    """The identity of every node of a task graph: the one rule the engine and history share.

    A node's ``"identity"`` attribute, else its pipeline task's name (``"task"`` attribute),
    else :func:`task_identity` of its key (the key itself when Dask cannot split it).

    Args:
        graph: a :class:`~openautoglm.core.graph.TaskGraph` or its ``networkx.DiGraph``.

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph([("inc-8f3a", "sum-4ad2")]); G.nodes["sum-4ad2"]["identity"] = "total"
        >>> node_identities(G)
        {'inc-8f3a': 'inc', 'sum-4ad2': 'total'}
    """
    G = getattr(graph, "nx", graph)
    out = {}
    for k, a in G.nodes(data=True):
        task = a.get("task")
        out[k] = a.get("identity") or (task.name if task is not None else _safe_identity(k))
    return out


class CostEstimate(NamedTuple):
    """What history predicts for one task: ``cost`` (seconds, one core, speed 1), its
    uncertainty ``std`` (``nan`` when unknown) and the number of samples ``n``."""

    cost: float
    std: float
    n: int


@dataclass
class _Model:
    """A fitted per-identity cost model: median, or a line in input size."""

    median: float
    std: float
    n: int
    slope: float = 0.0
    intercept: float = 0.0
    linear: bool = False
    output_size: float | None = None

    def predict(self, input_size: float | None) -> CostEstimate:
        if self.linear and input_size is not None:
            return CostEstimate(max(0.0, self.intercept + self.slope * input_size), self.std, self.n)
        return CostEstimate(self.median, self.std, self.n)


def _fit(costs: np.ndarray, sizes: np.ndarray, outputs: np.ndarray) -> _Model:
    med = float(np.median(costs))
    std = float(1.4826 * np.median(np.abs(costs - med))) if len(costs) > 1 else math.nan
    known = outputs[~np.isnan(outputs)]
    model = _Model(med, std, len(costs), output_size=float(np.median(known)) if len(known) else None)
    if len(costs) >= 4 and np.ptp(sizes) > 0:
        slope, intercept = np.polyfit(sizes, costs, 1)
        resid = costs - (intercept + slope * sizes)
        total = float(np.sum((costs - costs.mean()) ** 2))
        r2 = 1.0 - float(np.sum(resid**2)) / total if total > 0 else 0.0
        if slope > 0 and r2 >= 0.5:
            model.linear, model.slope, model.intercept = True, float(slope), float(intercept)
            model.std = float(np.sqrt(np.sum(resid**2) / max(1, len(costs) - 2)))
    return model
