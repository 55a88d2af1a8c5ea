"""The scheduler interface, the policy registry, and the rank functions the classic policies share.

Cast of characters (Topcuoglu et al. 2002):

- ``w̄_i``: mean run time of task i over the workers; ``c̄_ij``: mean transfer time of edge i -> j
  between two different workers (``size / bandwidth``).
- ``rank_u`` (upward rank, bottom level): ``w̄_i + max_j (c̄_ij + rank_u(j))`` over children j.
- ``rank_d`` (downward rank, top level): ``max_j (rank_d(j) + w̄_j + c̄_ji)`` over parents j.

A policy is a :class:`Scheduler` subclass registered under a name; ``schedule(graph, cluster,
policy=...)`` looks it up. The learned policy registers itself from ``openautoglm.schedulers.gnn``,
which is imported only when ``policy="gnn"`` is asked for.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar

import numpy as np

from openautoglm import _list_kernel
from openautoglm.cluster import Cluster
from openautoglm.graph import TaskGraph
from openautoglm.simulate import Schedule

__all__ = ["Scheduler", "register_scheduler", "get_scheduler", "available_policies", "schedule",
           "upward_rank", "downward_rank", "mean_costs"]

_REGISTRY: dict[str, type[Scheduler]] = {}
#: Policies whose module is imported on first use, so a broken optional module never breaks others.
_LAZY: dict[str, str] = {"gnn": "openautoglm.schedulers.gnn"}


class Scheduler:
    """A scheduling policy: ``schedule(graph, cluster) -> Schedule``.

    Subclasses set ``name`` and implement :meth:`schedule`; the result must be a complete, valid
    :class:`~openautoglm.simulate.Schedule` (``openautoglm.testing.assert_valid_schedule``).
    """

    name: ClassVar[str] = "base"

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def register_scheduler(name: str, cls: type[Scheduler]) -> None:
    """Make ``cls`` available as ``policy=name`` (re-registering a name replaces it).

    Example:
        >>> from openautoglm.schedulers import FIFOScheduler
        >>> register_scheduler("my_fifo", FIFOScheduler)
        >>> type(get_scheduler("my_fifo")).__name__
        'FIFOScheduler'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a policy name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise TypeError(f"{cls!r} is not a Scheduler subclass")
    _REGISTRY[name] = cls


def available_policies() -> list[str]:
    """Names accepted by :func:`get_scheduler` and :func:`schedule` (lazy ones included)."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def get_scheduler(name: str, **kwargs: Any) -> Scheduler:
    """An instance of the policy registered as ``name``, built with ``kwargs``.

    Raises:
        ValueError: unknown policy (the message lists the known ones).
        ImportError: the policy's optional module failed to import.
    """
    if name not in _REGISTRY and name in _LAZY:
        importlib.import_module(_LAZY[name])
    try:
        cls = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheduling policy {name!r}; choose one of "
                         f"{available_policies()}") from None
    return cls(**kwargs)


def schedule(graph: TaskGraph, cluster: Cluster, policy: str = "heft", seed: int | None = None,
             **kwargs: Any) -> Schedule:
    """Plan ``graph`` on ``cluster`` with the named policy.

    Args:
        graph: the tasks.
        cluster: the workers.
        policy: ``"heft"``, ``"cpop"``, ``"critical_path"``, ``"fifo"``, ``"random"``, ``"gnn"``
            or any registered name.
        seed: passed to policies that take one (``random``, ``gnn``); ignored by the others.
        **kwargs: passed to the policy's constructor.

    Returns:
        A complete, valid Schedule.

    Example:
        >>> import networkx as nx, openautoglm as oag
        >>> G = nx.DiGraph([("a", "b"), ("a", "c")]); nx.set_node_attributes(G, 1.0, "cost")
        >>> nx.set_edge_attributes(G, 0.5, "size")
        >>> oag.schedule(oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2)).makespan
        2.5
    """
    if not isinstance(graph, TaskGraph):
        raise TypeError(f"graph must be a TaskGraph, got {type(graph).__name__}; use "
                        "TaskGraph.from_networkx(G) or pipeline.compile()")
    if not isinstance(cluster, Cluster):
        raise TypeError(f"cluster must be a Cluster, got {type(cluster).__name__}; use "
                        "Cluster.homogeneous(n) or Cluster(speeds=[...])")
    if seed is not None and _accepts_seed(policy):
        kwargs["seed"] = seed
    return get_scheduler(policy, **kwargs).schedule(graph, cluster)


def _accepts_seed(policy: str) -> bool:
    if policy not in _REGISTRY and policy in _LAZY:
        importlib.import_module(_LAZY[policy])
    cls = _REGISTRY.get(policy)
    if cls is None:
        return False  # get_scheduler reports the unknown name
    params = inspect.signature(cls).parameters
    return "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def mean_costs(graph: TaskGraph, cluster: Cluster) -> tuple[np.ndarray, np.ndarray]:
    """``(w̄, c̄)``: mean one-core run time per task and mean transfer time per edge (pred CSR order).

    ``c̄`` is ``size / bandwidth`` (the transfer between two different workers, as in the HEFT
    paper); 0 on a single-worker cluster, where nothing ever moves.
    """
    wbar = graph.exec_time(cluster).mean(axis=1)
    if cluster.n_workers == 1:
        return wbar, np.zeros_like(graph.pred_size)
    return wbar, graph.pred_size / cluster.bandwidth


def upward_rank(graph: TaskGraph, wbar: np.ndarray, cbar_pred: np.ndarray | None = None
                ) -> np.ndarray:
    """Bottom levels: ``rank_u(i) = wbar[i] + max over children j of (c̄_ij + rank_u(j))``.

    Args:
        graph: the tasks.
        wbar: (n,) node weights.
        cbar_pred: (m,) edge weights aligned with ``graph.pred_idx`` (None: no communication).

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph(); G.add_edge("a", "b", size=2); nx.set_node_attributes(G, 1.0, "cost")
        >>> g = TaskGraph.from_networkx(G)
        >>> upward_rank(g, g.cost, g.pred_size).tolist()
        [4.0, 1.0]
    """
    cb_arr = cbar_pred if cbar_pred is not None else np.zeros(len(graph.pred_idx))
    return _list_kernel.ranks("up", wbar, graph.pred_ptr, graph.pred_idx, cb_arr)


def downward_rank(graph: TaskGraph, wbar: np.ndarray, cbar_pred: np.ndarray | None = None
                  ) -> np.ndarray:
    """Top levels: ``rank_d(i) = max over parents j of (rank_d(j) + wbar[j] + c̄_ji)`` (0 at entries).

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph(); G.add_edge("a", "b", size=2); nx.set_node_attributes(G, 1.0, "cost")
        >>> g = TaskGraph.from_networkx(G)
        >>> downward_rank(g, g.cost, g.pred_size).tolist()
        [0.0, 3.0]
    """
    cb_arr = cbar_pred if cbar_pred is not None else np.zeros(len(graph.pred_idx))
    return _list_kernel.ranks("down", wbar, graph.pred_ptr, graph.pred_idx, cb_arr)
