"""Checks shared by every scheduler test in the project.

``assert_valid_schedule(schedule)`` re-derives everything from the placements alone (it does not
trust the Schedule's own timelines), like dask's ``assert_topological_sort``:

- every task is placed exactly once, on an existing worker, with 1..cores[worker] cores;
- finish = start + the cost model's run time;
- a task starts after each dependency finished, plus ``size / bandwidth`` across workers;
- no worker ever runs more cores than it has;
- the makespan is never below :func:`~openautoglm.simulate.lower_bound`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from openautoglm.simulate.checks import close_below
from openautoglm.simulate.schedule import check_schedule

if TYPE_CHECKING:
    from openautoglm.simulate.schedule import Schedule

__all__ = ["assert_valid_schedule"]

_REL_TOL = 1e-9


def assert_valid_schedule(schedule: Schedule, complete: bool = True) -> None:
    """Fail with every problem listed unless ``schedule`` is valid and not below the lower bound.

    Args:
        schedule: any :class:`~openautoglm.simulate.Schedule` (from any scheduler).
        complete: also require every task to be placed (default).

    Example:
        >>> import networkx as nx, openautoglm as oag
        >>> G = nx.DiGraph([("a", "b")]); nx.set_node_attributes(G, 1.0, "cost")
        >>> s = oag.list_schedule(oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2), [1, 0])
        >>> assert_valid_schedule(s)
    """
    from openautoglm.simulate.schedule import lower_bound

    problems = check_schedule(schedule, complete=complete)
    if complete and not problems:
        lb = lower_bound(schedule.graph, schedule.cluster)
        if close_below(schedule.makespan, lb):
            problems.append(f"makespan {schedule.makespan:.9g} is below the lower bound {lb:.9g}")
    assert not problems, "invalid schedule:\n  " + "\n  ".join(problems)
