"""Load any Dask graph into a :class:`~openautoglm.core.graph.TaskGraph`, so it can be planned.

Dask users hold collections (``dask.array``, ``dask.dataframe``, ``dask.bag``), ``delayed``
objects or raw task dicts (``{"x": 1, "y": (inc, "x")}``). :func:`from_dask` turns any of them
into a TaskGraph with one node per Dask key::

    x-1   x-2          node attributes:
      \\   /             "dask": the Dask task spec that computes the key (run as is)
       sum              "cost": seconds, from history, else Dask's own estimate
                        "identity": the key prefix ("sum"), how history pools executions

and one edge per dependency (``size`` from history's transfer times, else 0). The requested keys
(the collections' outputs, or the sinks of a raw dict) are stored in ``graph.nx.graph["dask_keys"]``.

Costs without history are Dask's defaults: ``distributed.scheduler.default-task-durations`` for
known prefixes, else ``distributed.scheduler.unknown-task-duration`` (500 ms): every unknown task
then weighs the same and a plan orders them by the shape of the graph alone.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from openautoglm.history.cost_model import task_identity

if TYPE_CHECKING:
    from openautoglm.core.graph import TaskGraph
    from openautoglm.history.store import History

__all__ = ["from_dask", "collections_to_dsk", "dask_default_cost"]


def dask_default_cost(identity: str) -> float:
    """Dask's own duration estimate for a key prefix, in seconds (no history).

    Example:
        >>> dask_default_cost("some-unknown-prefix")
        0.5
    """
    import dask
    from dask.utils import parse_timedelta

    known = dask.config.get("distributed.scheduler.default-task-durations", {}) or {}
    if identity in known:
        return float(parse_timedelta(known[identity]))
    return float(parse_timedelta(dask.config.get("distributed.scheduler.unknown-task-duration", "500ms")))


def collections_to_dsk(*args: Any, optimize_graph: bool = True,
                       traverse: bool = True) -> tuple[dict[Hashable, Any], list[Hashable], Callable[[list[Any]], Any]]:
    """The task dict, output keys and repacker that ``dask.compute(*args)`` would run.

    Args:
        *args: Dask collections, delayed objects, or Python structures holding them.
        optimize_graph: apply each collection's optimisations (as ``dask.compute`` does).
        traverse: look for collections inside lists, tuples, dicts (as ``dask.compute`` does).

    Returns:
        ``(dsk, keys, repack)``: ``repack(results)`` (results in ``keys`` order) gives what
        ``dask.compute(*args)`` returns.

    Raises:
        TypeError: nothing in ``args`` is a Dask collection.

    Example:
        >>> import dask
        >>> dsk, keys, repack = collections_to_dsk(dask.delayed(sum)([1, 2]))
        >>> len(keys), repack([3])
        (1, (3,))
    """
    from dask._expr import FinalizeCompute
    from dask.base import collections_to_expr, unpack_collections
    from dask.core import flatten

    collections, repack = unpack_collections(*args, traverse=traverse)
    if not collections:
        raise TypeError(
            f"No Dask collection found in {', '.join(type(a).__name__ for a in args) or 'nothing'}; "
            "pass dask.array/dataframe/bag collections or dask.delayed objects "
            "(a raw task dict goes to from_dask(dsk, keys=...))."
        )
    expr = FinalizeCompute(collections_to_expr(collections, optimize_graph)).optimize()
    keys = list(flatten(expr.__dask_keys__()))
    return dict(expr.__dask_graph__()), keys, repack


def from_dask(obj: Any, keys: list[Hashable] | None = None, *, history: History | None = None,
              optimize_graph: bool = True) -> TaskGraph:
    """Load a Dask collection, delayed object or raw task dict into a TaskGraph.

    Args:
        obj: a Dask collection or delayed object (or a list/tuple of them), a ``HighLevelGraph``,
            or a raw task dict (legacy tuples ``(func, *args)`` or ``dask._task_spec`` nodes).
        keys: for a task dict, the keys wanted (default: its sinks); ignored for collections.
        history: refine costs and edge sizes from this :class:`~openautoglm.history.History`.
        optimize_graph: apply the collections' optimisations first (as ``dask.compute`` does).

    Returns:
        The graph; node attribute ``"dask"`` holds each key's task spec, ``"identity"`` its
        prefix; ``graph.nx.graph["dask_keys"]`` the requested keys.

    Raises:
        TypeError: ``obj`` is none of the above.
        KeyError: a requested key or a dependency is not in the graph (names it).
        openautoglm.core.graph.CycleError: the task dict has a cycle.

    Example:
        >>> from operator import add
        >>> g = from_dask({"x": 1, "y": (add, "x", 10), "z": (add, "y", "x")})
        >>> g.tasks, g.dependencies("z"), g.nx.graph["dask_keys"]
        (['x', 'y', 'z'], ['x', 'y'], ['z'])
        >>> g.nx.nodes["y"]["cost"]
        0.5
    """
    from dask._task_spec import DataNode, GraphNode, convert_legacy_graph
    from dask.base import is_dask_collection

    from openautoglm.core.graph import TaskGraph

    if is_dask_collection(obj) or (
        isinstance(obj, (list, tuple)) and obj and all(is_dask_collection(o) for o in obj)
    ):
        items = obj if isinstance(obj, (list, tuple)) else (obj,)
        dsk, keys, _ = collections_to_dsk(*items, optimize_graph=optimize_graph)
    elif isinstance(obj, Mapping):
        dsk = dict(obj)
    else:
        raise TypeError(
            f"from_dask() takes a Dask collection, a delayed object or a task dict, "
            f"got {type(obj).__name__}; wrap plain functions with dask.delayed first."
        )
    if not all(isinstance(v, GraphNode) for v in dsk.values()):
        dsk = convert_legacy_graph(dsk)

    G = nx.DiGraph()
    default: dict[str, float] = {}  # one config lookup per prefix, not per key
    nodes = []
    for key, node in dsk.items():
        ident = task_identity(key)
        if isinstance(node, DataNode):
            nodes.append((key, {"dask": node, "identity": ident, "cost": 0.0,
                                "cost_source": "data"}))
            continue
        if ident not in default:
            default[ident] = dask_default_cost(ident)
        nodes.append((key, {"dask": node, "identity": ident, "cost": default[ident],
                            "cost_source": "dask-default"}))
    G.add_nodes_from(nodes)
    edges = []
    for key, node in dsk.items():
        for dep in node.dependencies:
            if dep not in dsk:
                raise KeyError(
                    f"Task {key!r} depends on {dep!r}, which is not in the graph; "
                    "pass the whole graph (e.g. collection.__dask_graph__()) or the missing data."
                )
            edges.append((dep, key))
    G.add_edges_from(edges, size=0.0)
    if keys is None:
        keys = [k for k in G.nodes if G.out_degree(k) == 0]
    missing = [k for k in keys if k not in dsk]
    if missing:
        raise KeyError(f"Requested key(s) {missing[:5]} are not in the graph of {len(dsk)} keys.")
    G.graph["dask_keys"] = list(keys)
    graph = TaskGraph.from_networkx(G)
    return history.refine(graph) if history is not None else graph
