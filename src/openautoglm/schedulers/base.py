"""The scheduler interface and the policy registry (the cost model is in ``core/costs.py``).

A policy is a :class:`Scheduler` subclass registered under a name; ``schedule(graph, cluster,
policy=...)`` looks it up. Every built-in policy is registered in ``schedulers/__init__.py``; the
learned one by name (:func:`register_lazy_scheduler`), its module imported only when
``policy="gnn"`` is asked for.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from openautoglm._progress import SlowWork
from openautoglm._validate import InputError, check_kwargs, short
from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph
from openautoglm.simulate.schedule import Schedule

__all__ = ["schedule", "Scheduler", "register_scheduler", "register_lazy_scheduler",
           "get_scheduler", "available_policies"]

_REGISTRY: dict[str, type[Scheduler]] = {}
#: Policies whose module is imported on first use, so a broken optional module never breaks
#: others: name -> ``"module:Class"``.
_LAZY: dict[str, str] = {}


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


def register_lazy_scheduler(name: str, target: str) -> None:
    """Make ``policy=name`` import its class from ``target`` (``"module:Class"``) on first use.

    Keeps a heavy policy's imports (torch for ``gnn``) off ``import openautoglm``; a module
    that fails to import breaks only its own policy (``ImportError`` when asked for).

    Example:
        >>> register_lazy_scheduler("lazy_fifo", "openautoglm.schedulers.fifo:FIFOScheduler")
        >>> type(get_scheduler("lazy_fifo")).__name__
        'FIFOScheduler'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a policy name must be a non-empty string, got {name!r}")
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    _LAZY[name] = target


def _load_lazy(name: str) -> None:
    """Import and register the lazy policy ``name`` unless a class is registered already."""
    if name not in _REGISTRY and name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        register_scheduler(name, getattr(importlib.import_module(module), attr))


def available_policies() -> list[str]:
    """Names accepted by :func:`get_scheduler` and :func:`schedule` (lazy ones included)."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def get_scheduler(name: str, **kwargs: Any) -> Scheduler:
    """An instance of the policy registered as ``name``, built with ``kwargs``.

    Raises:
        ValueError: unknown policy (the message lists the known ones).
        ImportError: the policy's optional module failed to import.
    """
    if isinstance(name, str):
        _load_lazy(name)
    try:
        cls = _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown scheduling policy {short(name)}; choose one of "
                         f"{available_policies()}") from None
    check_kwargs(cls, kwargs, f"policy {name!r}")
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
        raise InputError(f"graph must be a TaskGraph, got {type(graph).__name__}; use "
                        "TaskGraph.from_networkx(G) or pipeline.compile()")
    if not isinstance(cluster, Cluster):
        raise InputError(f"cluster must be a Cluster, got {type(cluster).__name__}; use "
                        "Cluster.homogeneous(n) or Cluster(speeds=[...])")
    if seed is not None and _accepts_seed(policy):
        kwargs["seed"] = seed
    scheduler = get_scheduler(policy, **kwargs)
    # Quick plans print nothing; a long one says what it does after a second (SlowWork).
    with SlowWork(f"planning {len(graph):,} tasks with {policy!r} on {cluster.n_workers} workers",
                  note=_first_use_note(policy, len(graph))):
        return scheduler.schedule(graph, cluster)


def _first_use_note(policy: Any, n: int) -> str | None:
    """What a policy's first plan in a process does besides planning (said if it takes long)."""
    if policy != "gnn" or "torch" in sys.modules:
        return None
    weights = Path(__file__).resolve().parent / "gnn" / "gnn.pt"
    cache = os.environ.get("NUMBA_CACHE_DIR") or "__pycache__ beside the package's modules"
    return (f"planning {n:,} tasks with 'gnn', its first use in this process: importing torch, "
            f"loading the model's weights ({weights}) and compiling the search kernels once "
            f"(numba caches them in {cache}; set NUMBA_CACHE_DIR to move it)")


def _accepts_seed(policy: str) -> bool:
    if isinstance(policy, str):
        _load_lazy(policy)
    cls = _REGISTRY.get(policy)
    if cls is None:
        return False  # get_scheduler reports the unknown name
    params = inspect.signature(cls).parameters
    return "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


