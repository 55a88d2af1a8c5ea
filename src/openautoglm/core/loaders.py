"""Graphs from outside: WfFormat 1.4/1.5 traces (:func:`load_wfcommons`) and DAGGEN random
DAGs (:func:`random_dag`).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from openautoglm._validate import InputError, check_number, load_json, read_text, short
from openautoglm.core.graph import TaskGraph, _check_cost

__all__ = ["TraceWarning", "load_wfcommons", "random_dag"]


# ====================================================================== loaders
def load_wfcommons(path: str | Path, bandwidth: float = 1.0) -> TaskGraph:
    """Load a WfCommons WfFormat trace (schema 1.4 or 1.5) as a TaskGraph.

    Task ``cost`` is the measured runtime (seconds). An edge ``parent -> child`` gets
    ``size`` = bytes of the files ``parent`` writes and ``child`` reads, divided by
    ``bandwidth`` (bytes/s), so sizes are seconds at cluster bandwidth 1.
    Use :meth:`TaskGraph.with_ccr` to rescale to a chosen CCR afterwards.

    Args:
        path: the JSON file.
        bandwidth: bytes per second used to turn bytes into seconds (> 0).

    Returns:
        The TaskGraph; nodes also carry ``name`` and ``category`` when the trace has them.

    Raises:
        FileNotFoundError: no such file.
        InputError: (a ``ValueError``) a directory, a binary file, not WfFormat JSON, nesting
            too deep, duplicate task ids, a runtime or size that is not a number >= 0, an
            unsupported ``schemaVersion``, a task without runtime,
            or a non-positive bandwidth.

    Example:
        >>> import json, tempfile, os
        >>> doc = {"schemaVersion": "1.5", "workflow": {
        ...   "specification": {"tasks": [
        ...      {"id": "a", "parents": [], "children": ["b"], "inputFiles": [], "outputFiles": ["f"]},
        ...      {"id": "b", "parents": ["a"], "children": [], "inputFiles": ["f"], "outputFiles": []}],
        ...    "files": [{"id": "f", "sizeInBytes": 2000}]},
        ...   "execution": {"tasks": [{"id": "a", "runtimeInSeconds": 3.0},
        ...                           {"id": "b", "runtimeInSeconds": 1.0}]}}}
        >>> p = os.path.join(tempfile.mkdtemp(), "w.json")
        >>> _ = open(p, "w").write(json.dumps(doc))
        >>> g = load_wfcommons(p, bandwidth=1000.0)
        >>> g.tasks, g.cost.tolist(), g.edge_size.tolist()
        (['a', 'b'], [3.0, 1.0], [2.0])
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no WfFormat trace at {str(path)!r}; check the path "
                                "(real traces live in ../shared/workflows/pegasus/*/)")
    bandwidth = check_number(bandwidth, "bandwidth (bytes/s)", minimum=0.0,
                             fix="pass a positive number of bytes per second")
    if not bandwidth > 0:
        raise InputError(f"bandwidth must be positive bytes/s, got {short(bandwidth)}")
    doc = load_json(read_text(path, "WfFormat trace"), f"WfFormat trace {str(path)!r}")
    if not isinstance(doc, dict) or not isinstance(doc.get("workflow"), dict):
        raise InputError(f"{path} has no 'workflow' object: not a WfFormat trace")
    version = str(doc.get("schemaVersion", ""))
    wf = doc["workflow"]
    if version.startswith("1.5") or (not version and "specification" in wf):
        nodes, edges = _wf15(wf, path)
    elif version in ("1.4", "1.3", "1.2") or (not version and "tasks" in wf):
        nodes, edges = _wf14(wf, path)
    else:
        raise InputError(f"{path}: WfFormat schemaVersion {short(version)} is not supported; "
                         "supported versions are 1.4 and 1.5 (also 1.2, 1.3 traces in the 1.4 layout)")
    import networkx as nx  # imported on use: `import openautoglm` stays light

    G = nx.DiGraph()
    for key, attrs in nodes:
        G.add_node(key, **attrs)
    for u, v, nbytes in edges:
        G.add_edge(u, v, size=nbytes / bandwidth)
    return TaskGraph.from_networkx(G)


class TraceWarning(UserWarning):
    """A WfFormat trace loaded with a gap (e.g. files without sizes: their edges move 0 bytes)."""


def _records(value: Any, where: str, path: Path) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise InputError(f"{path}: {where} must be a list of objects, got {short(value)}")
    return value


def _names(value: Any, where: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise InputError(f"{path}: {where} must be a list of names, got {short(value)}")
    return value


def _unique(tasks: list[dict[str, Any]], key: str, path: Path) -> list[Any]:
    ids, seen = [], set()
    for t in tasks:
        if key not in t or not isinstance(t[key], (str, int)) or isinstance(t[key], bool):
            raise InputError(f"{path}: every task needs a string {key!r}, got {short(t)}")
        if t[key] in seen:
            raise InputError(f"{path}: task {key} {short(t[key])} appears twice; ids must be "
                             "unique (two tasks would be merged and an edge lost)")
        seen.add(t[key])
        ids.append(t[key])
    return ids


def _edges_from_files(tasks: list[dict[str, Any]], key: str, outputs: dict[str, set[str]],
                      inputs: dict[str, set[str]], sizes: dict[str, float], parents_of: Any,
                      path: Path) -> list[tuple[str, str, float]]:
    edges = []
    ids = {t[key] for t in tasks}
    unsized: set[str] = set()
    for t in tasks:
        child = t[key]
        for parent in parents_of(t):
            if parent not in ids:
                raise InputError(f"{path}: task {short(child)} names unknown parent {short(parent)}")
            shared = outputs.get(parent, set()) & inputs.get(child, set())
            unsized |= {f for f in shared if f not in sizes}
            edges.append((parent, child, float(sum(sizes.get(f, 0.0) for f in shared))))
    if unsized:
        warnings.warn(f"{path}: {len(unsized)} file(s) passed between tasks have no size in the "
                      f"trace (e.g. {short(sorted(map(str, unsized))[0])}); their transfers count "
                      "as 0 bytes", TraceWarning, stacklevel=4)
    return edges


def _size(f: dict[str, Any], names: tuple[str, ...], path: Path) -> float | None:
    for name in names:
        if name in f and f[name] is not None:
            return _check_cost(f[name], f"{path}: file {short(f.get('id', f.get('name')))}: {name}")
    return None


def _wf15(wf: dict[str, Any], path: Path) -> tuple[list, list]:
    try:
        spec, execution = wf["specification"], wf["execution"]
        tasks = spec["tasks"]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: WfFormat 1.5 trace lacks workflow.{short(exc.args[0])}") from None
    tasks = _records(tasks, "workflow.specification.tasks", path)
    _unique(tasks, "id", path)
    sizes = {}
    for f in _records(spec.get("files", []), "workflow.specification.files", path):
        size = _size(f, ("sizeInBytes",), path)
        if size is not None:
            sizes[f.get("id")] = size
    runtime = {t.get("id"): t.get("runtimeInSeconds")
               for t in _records(execution.get("tasks", []), "workflow.execution.tasks", path)}
    nodes = []
    for t in tasks:
        rt = runtime.get(t["id"])
        if rt is None:
            raise InputError(f"{path}: task {short(t['id'])} has no runtimeInSeconds in "
                             "workflow.execution.tasks; only executed traces can be loaded")
        name = str(t.get("name", t["id"]))
        nodes.append((t["id"], {"cost": _check_cost(rt, f"{path}: task {short(t['id'])}: "
                                                        "runtimeInSeconds"),
                                "name": name, "category": t.get("category", name.split("_ID")[0])}))
    outputs = {t["id"]: set(_names(t.get("outputFiles", []), "outputFiles", path)) for t in tasks}
    inputs = {t["id"]: set(_names(t.get("inputFiles", []), "inputFiles", path)) for t in tasks}
    edges = _edges_from_files(tasks, "id", outputs, inputs, sizes,
                              lambda t: _names(t.get("parents", []), "parents", path), path)
    return nodes, edges


def _wf14(wf: dict[str, Any], path: Path) -> tuple[list, list]:
    tasks = wf.get("tasks")
    if tasks is None:
        jobs = wf.get("jobs")  # 1.2/1.3 traces call them jobs
        if jobs is None:
            raise InputError(f"{path}: WfFormat 1.4 trace lacks workflow.tasks")
        tasks = jobs
    tasks = _records(tasks, "workflow.tasks", path)
    # In 1.4 ``name`` is the unique reference (parents list names); ``id`` is optional.
    key = "name" if all("name" in t for t in tasks) else "id"
    _unique(tasks, key, path)
    by_name = {t["name"]: t[key] for t in tasks if "name" in t}
    nodes, outputs, inputs, sizes = [], {}, {}, {}
    for t in tasks:
        rt = t.get("runtimeInSeconds", t.get("runtime"))
        if rt is None:
            raise InputError(f"{path}: task {short(t[key])} has no runtimeInSeconds/runtime; "
                             "only executed traces can be loaded")
        name = str(t.get("name", t[key]))
        nodes.append((t[key], {"cost": _check_cost(rt, f"{path}: task {short(t[key])}: runtime"),
                               "name": name, "category": t.get("category", name.split("_ID")[0])}))
        outputs[t[key]], inputs[t[key]] = set(), set()
        for f in _records(t.get("files", []), f"task {short(t[key])}: files", path):
            fname = f.get("name", f.get("id"))
            size = _size(f, ("sizeInBytes", "size"), path)
            if size is not None:
                sizes[fname] = size
            (outputs if f.get("link") == "output" else inputs)[t[key]].add(fname)
    # Parents may be listed by name or by id.
    edges = _edges_from_files(
        tasks, key, outputs, inputs, sizes,
        lambda t: [by_name.get(p, p) for p in _names(t.get("parents", []), "parents", path)], path)
    return nodes, edges


def random_dag(n: int, fat: float = 0.5, density: float = 0.5, regularity: float = 0.5,
               jump: int = 1, ccr: float = 1.0, seed: int | None = 0,
               cost_range: tuple[float, float] = (1.0, 100.0),
               cost_dist: str = "uniform") -> TaskGraph:
    """A random layered DAG in the style of DAGGEN (Suter's generator).

    Levels hold about ``n ** fat`` tasks each (``fat`` near 0: a chain; near 1: one wide level);
    ``regularity`` near 1 makes level widths equal, near 0 lets them vary by up to 100%. Each task
    below the first level gets ``1 + Binomial(width_prev - 1, density)`` parents from the
    ``jump`` levels above it, at least one from the level just above. Edge sizes are drawn like
    costs, then scaled so the graph's CCR equals ``ccr``.

    Args:
        n: number of tasks (>= 1).
        fat: width exponent in [0, 1].
        density: edge probability in [0, 1].
        regularity: in [0, 1].
        jump: edges may skip up to ``jump - 1`` levels (>= 1).
        ccr: target communication-to-computation ratio (>= 0).
        seed: random seed; the same seed gives the same graph.
        cost_range: (low, high) task cost in seconds.
        cost_dist: ``"uniform"`` or ``"lognormal"`` (median at the geometric mean of the range,
            clipped to it).

    Returns:
        A TaskGraph with integer task names ``0..n-1`` in level order.

    Example:
        >>> g = random_dag(20, fat=0.5, density=0.4, ccr=1.0, seed=3)
        >>> len(g), round(g.ccr, 6)
        (20, 1.0)
        >>> bool((random_dag(20, fat=0.5, density=0.4, seed=3).cost == g.cost).all())
        True
    """
    lo, hi = _check_dag_args(n, fat, density, regularity, jump, cost_range, cost_dist)
    rng = np.random.default_rng(seed)
    levels = _levels(n, float(fat), float(regularity), rng)
    costs = _draw(rng, n, lo, hi, cost_dist)
    import networkx as nx

    G = nx.DiGraph()
    for i in range(n):
        G.add_node(i, cost=float(costs[i]))
    _connect(G, levels, int(jump), float(density), rng)
    sizes = _draw(rng, G.number_of_edges(), lo, hi, cost_dist)
    for (u, v), s in zip(G.edges(), sizes):
        G.edges[u, v]["size"] = float(s)
    g = TaskGraph.from_networkx(G)
    return g.with_ccr(ccr) if G.number_of_edges() else g


def _check_dag_args(n: int, fat: float, density: float, regularity: float, jump: int,
                    cost_range: tuple[float, float], cost_dist: str) -> tuple[float, float]:
    """:func:`random_dag`'s arguments checked; returns the cost range as floats."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    for name, v in (("fat", fat), ("density", density), ("regularity", regularity)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {v!r}")
    if int(jump) < 1:
        raise ValueError(f"jump must be >= 1, got {jump!r}")
    lo, hi = map(float, cost_range)
    if not 0 <= lo <= hi:
        raise ValueError(f"cost_range must be (low, high) with 0 <= low <= high, got {cost_range!r}")
    if cost_dist not in ("uniform", "lognormal"):
        raise ValueError(f"cost_dist must be 'uniform' or 'lognormal', got {cost_dist!r}")
    return lo, hi


def _levels(n: int, fat: float, regularity: float, rng: np.random.Generator) -> list[list[int]]:
    """Task indices by level: about ``n ** fat`` per level, widths varied by ``regularity``."""
    width = max(1.0, float(n) ** fat)
    levels: list[list[int]] = []
    placed = 0
    while placed < n:
        w = width * rng.uniform(regularity, 2.0 - regularity)
        w = int(min(max(1, round(w)), n - placed))
        levels.append(list(range(placed, placed + w)))
        placed += w
    return levels


def _draw(rng: np.random.Generator, k: int, lo: float, hi: float, cost_dist: str) -> np.ndarray:
    """``k`` costs (or sizes) in ``[lo, hi]``: uniform, or log-normal around the geometric mean."""
    if cost_dist == "uniform":
        return rng.uniform(lo, hi, k)
    mu = math.log(math.sqrt(max(lo, 1e-9) * max(hi, 1e-9)))
    return np.clip(rng.lognormal(mu, 0.75, k), lo, hi)


def _connect(G: Any, levels: list[list[int]], jump: int, density: float,
             rng: np.random.Generator) -> None:
    """Give each task below the first level its parents (DAGGEN's rule, see :func:`random_dag`)."""
    for li in range(1, len(levels)):
        prev = levels[li - 1]
        pool = [t for lj in range(max(0, li - jump), li - 1) for t in levels[lj]]
        for t in levels[li]:
            k = 1 + int(rng.binomial(len(prev) - 1, density)) if len(prev) > 1 else 1
            first = prev[int(rng.integers(len(prev)))]
            parents = {first}
            candidates = [p for p in prev + pool if p != first]
            extra = min(k - 1, len(candidates))
            if extra > 0:
                parents.update(candidates[j] for j in rng.choice(len(candidates), extra, replace=False))
            for p in sorted(parents):
                G.add_edge(p, t)
