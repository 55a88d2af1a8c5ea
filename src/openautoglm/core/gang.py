"""The cost model of gang tasks: a task that runs on ``k`` workers at once.

A node with ``gang=k`` (k >= 2) holds k workers together for its whole run (distributed
training: one rank per worker). Its run time at speed 1 on those k workers comes from

- ``gang_costs={k: seconds, ...}``: measured per-k times; or
- Amdahl's law with a communication term, from its single-worker ``cost``:
  ``cost * ((1 - gang_parallel) + gang_parallel / k) + gang_comm * (k - 1)``
  (``gang_parallel`` defaults to 1, ``gang_comm`` to 0 seconds per extra rank).

:meth:`openautoglm.core.graph.TaskGraph.from_networkx` stores that time in ``graph.cost`` and k
in ``graph.gang``; the simulator (:mod:`openautoglm.simulate.gang`) does the rest.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["gang_cost", "check_gang_size"]


def check_gang_size(task: Any, k: Any) -> int:
    """``k`` as an int >= 1, or a ValueError naming the task."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"task {task!r}: gang={k!r} must be an integer >= 1 (the workers it "
                         "holds at once)")
    return int(k)


def gang_cost(task: Any, attrs: Mapping[str, Any], k: int) -> float:
    """Run time at speed 1 of ``task`` on ``k`` workers, from its node attributes.

    Raises:
        ValueError: names the task, the attribute and the fix.

    Example:
        >>> gang_cost("train", {"cost": 8.0, "gang_parallel": 0.75, "gang_comm": 0.5}, 4)
        5.0
        >>> gang_cost("train", {"gang_costs": {2: 5.0, 4: 3.0}}, 4)
        3.0
    """
    if attrs.get("costs") is not None:
        raise ValueError(f"task {task!r}: a gang task (gang={k}) cannot carry per-worker 'costs'; "
                         "give 'cost' (+ gang_parallel, gang_comm) or 'gang_costs' instead")
    if attrs.get("gang_costs") is not None:
        table = attrs["gang_costs"]
        if not isinstance(table, Mapping) or k not in table:
            raise ValueError(f"task {task!r}: gang_costs={table!r} has no entry for its gang={k}; "
                             f"give {{{k}: seconds}}")
        value = float(table[k])
    else:
        if "cost" not in attrs:
            raise ValueError(f"task {task!r} has neither 'cost' nor 'gang_costs': add one of them")
        q = float(attrs.get("gang_parallel", 1.0))
        comm = float(attrs.get("gang_comm", 0.0))
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"task {task!r}: gang_parallel={q!r} must lie in [0, 1]")
        if not (math.isfinite(comm) and comm >= 0):
            raise ValueError(f"task {task!r}: gang_comm={comm!r} must be finite seconds >= 0")
        value = float(attrs["cost"]) * ((1.0 - q) + q / k) + comm * (k - 1)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"task {task!r}: its run time on {k} workers is {value!r}; costs must "
                         "be finite, non-negative seconds")
    return value
