"""``POST /v1/plan``: a DAG from JSON (node-link or WfFormat), bounded, planned by a policy.

Node-link JSON is networkx's ``node_link_data`` shape::

    {"nodes": [{"id": "a", "cost": 2.0}, {"id": "b", "cost": 1.0, "parallel": 0.5}],
     "links": [{"source": "a", "target": "b", "size": 0.5}]}       ("edges" is accepted too)

Only numbers are read from it (``cost`` or ``costs``, ``parallel``, ``size``); ids are strings or
integers. A WfFormat 1.4/1.5 document goes through :func:`openautoglm.core.loaders.load_wfcommons`.
Every problem is a :class:`PlanError` naming the field, turned into a 4xx by the app.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from typing import Any

import networkx as nx
import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph
from openautoglm.core.loaders import load_wfcommons
from openautoglm.schedulers import available_policies, schedule
from openautoglm.simulate.schedule import lower_bound

from .schemas import ClusterSpec, PlanRequest

__all__ = ["PLAN_POLICIES", "PlanError", "build_cluster", "build_graph", "plan"]

#: Policies the service plans with by default (the exact MILP is left out: it can take hours).
PLAN_POLICIES = ("heft", "cpop", "critical_path", "fifo", "random", "gnn")


class PlanError(ValueError):
    """A plan request that cannot be planned; ``field`` names the culprit, ``status`` the HTTP code."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


def _number(value: Any, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum:
        raise PlanError(where, f"must be a finite number >= {minimum:g}, got {value!r}")
    return float(value)


def _node_link(doc: dict[str, Any], max_tasks: int, max_edges: int) -> nx.DiGraph:
    nodes = doc.get("nodes")
    links = doc.get("links", doc.get("edges", []))
    if not isinstance(nodes, list) or not nodes:
        raise PlanError("graph.nodes", "give a non-empty list of {\"id\": ..., \"cost\": ...}")
    if not isinstance(links, list):
        raise PlanError("graph.links", "give a list of {\"source\", \"target\", \"size\"}")
    if len(nodes) > max_tasks:
        raise PlanError("graph.nodes", f"{len(nodes)} tasks exceed this service's limit of "
                        f"{max_tasks}; split the DAG or plan it in-process", 413)
    if len(links) > max_edges:
        raise PlanError("graph.links", f"{len(links)} edges exceed this service's limit of "
                        f"{max_edges}", 413)
    G = nx.DiGraph()
    for i, node in enumerate(nodes):
        where = f"graph.nodes[{i}]"
        if not isinstance(node, dict) or "id" not in node:
            raise PlanError(where, "must be an object with an \"id\"")
        key = node["id"]
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise PlanError(f"{where}.id", f"must be a string or an integer, got {key!r}")
        if key in G:
            raise PlanError(f"{where}.id", f"duplicate task id {key!r}")
        attrs: dict[str, Any] = {}
        if "costs" in node:
            costs = node["costs"]
            if not isinstance(costs, list) or not costs or len(costs) > 1024:
                raise PlanError(f"{where}.costs", "must be a list of run times, one per worker")
            attrs["costs"] = [_number(c, f"{where}.costs[{j}]") for j, c in enumerate(costs)]
        else:
            attrs["cost"] = _number(node.get("cost"), f"{where}.cost")
        if "parallel" in node:
            p = _number(node["parallel"], f"{where}.parallel")
            if p > 1:
                raise PlanError(f"{where}.parallel", f"must be in [0, 1], got {p!r}")
            attrs["parallel"] = p
        G.add_node(key, **attrs)
    if not _add_links_fast(G, links):
        _add_links_checked(G, links)
    return G


def _add_links_fast(G: nx.DiGraph, links: list[Any]) -> bool:
    """Adds well-formed links in bulk; ``False`` (nothing added) if any link is not."""
    try:
        src = [link["source"] for link in links]
        dst = [link["target"] for link in links]
        raw = [link.get("size", 0.0) for link in links]
    except (TypeError, KeyError, AttributeError):
        return False
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in raw):
        return False
    sizes = np.asarray(raw, dtype=np.float64)
    if sizes.size and not (np.isfinite(sizes).all() and (sizes >= 0).all()):
        return False
    try:
        if not all(u in G for u in src) or not all(v in G for v in dst):
            return False
    except TypeError:  # an unhashable id
        return False
    G.add_edges_from((u, v, {"size": float(x)}) for u, v, x in zip(src, dst, sizes))
    return True


def _add_links_checked(G: nx.DiGraph, links: list[Any]) -> None:
    """Adds links one by one, naming the first bad one."""
    for i, link in enumerate(links):
        where = f"graph.links[{i}]"
        if not isinstance(link, dict) or "source" not in link or "target" not in link:
            raise PlanError(where, "must be an object with \"source\" and \"target\"")
        u, v = link["source"], link["target"]
        for end, key in (("source", u), ("target", v)):
            if isinstance(key, bool) or not isinstance(key, (str, int)) or key not in G:
                raise PlanError(f"{where}.{end}", f"{key!r} is not the id of a task in graph.nodes")
        G.add_edge(u, v, size=_number(link.get("size", 0.0), f"{where}.size"))


def _wfformat(doc: dict[str, Any], max_tasks: int, bandwidth: float) -> TaskGraph:
    wf = doc.get("workflow")
    if not isinstance(wf, dict):
        raise PlanError("graph.workflow", "a WfFormat document has a \"workflow\" object")
    spec = wf.get("specification") if isinstance(wf.get("specification"), dict) else wf
    tasks = spec.get("tasks", spec.get("jobs"))
    if not isinstance(tasks, list) or not tasks:
        raise PlanError("graph.workflow.tasks", "no task list found (1.5: "
                        "workflow.specification.tasks; 1.4: workflow.tasks)")
    if len(tasks) > max_tasks:
        raise PlanError("graph.workflow.tasks", f"{len(tasks)} tasks exceed this service's "
                        f"limit of {max_tasks}", 413)
    fd, path = tempfile.mkstemp(suffix=".json", prefix="openautoglm-wf-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        return load_wfcommons(path, bandwidth=bandwidth)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        message = str(exc).replace(path, "the document")
        raise PlanError("graph", f"not a valid WfFormat 1.4/1.5 document ({type(exc).__name__}: "
                        f"{message})") from None
    finally:
        os.unlink(path)


def build_graph(req: PlanRequest, max_tasks: int, max_edges: int) -> TaskGraph:
    """The TaskGraph of a plan request, within the service's bounds."""
    if req.format == "wfformat":
        return _wfformat(req.graph, max_tasks, bandwidth=1.0)
    G = _node_link(req.graph, max_tasks, max_edges)
    try:
        return TaskGraph.from_networkx(G)
    except ValueError as exc:  # CycleError included: the message lists the cycle
        raise PlanError("graph", str(exc)) from None


def build_cluster(spec: ClusterSpec) -> Cluster:
    """The Cluster of a request (``workers`` equal workers or ``speeds``)."""
    if spec.speeds is None and spec.workers is None:
        raise PlanError("cluster", "give workers (a count) or speeds (one per worker)")
    speeds = spec.speeds if spec.speeds is not None else [1.0] * spec.workers
    if spec.workers is not None and spec.speeds is not None and spec.workers != len(speeds):
        raise PlanError("cluster.workers", f"{spec.workers} workers but {len(speeds)} speeds")
    try:
        return Cluster(speeds=speeds, bandwidth=spec.bandwidth, cores=spec.cores)
    except ValueError as exc:
        raise PlanError("cluster", str(exc)) from None


def plan(req: PlanRequest, max_tasks: int, max_edges: int,
         policies: tuple[str, ...] = PLAN_POLICIES) -> tuple[dict[str, Any], float]:
    """Plans a request; returns the response body and the seconds spent in the policy."""
    if req.policy not in policies or req.policy not in available_policies():
        allowed = [p for p in policies if p in available_policies()]
        raise PlanError("policy", f"{req.policy!r} is not offered here; use one of "
                        f"{', '.join(allowed)}")
    graph = build_graph(req, max_tasks, max_edges)
    cluster = build_cluster(req.cluster)
    if graph.costs is not None and graph.costs.shape[1] != cluster.n_workers:
        raise PlanError("graph.nodes", f"costs lists have {graph.costs.shape[1]} entries but "
                        f"the cluster has {cluster.n_workers} workers")
    started = time.perf_counter()
    try:
        sched = schedule(graph, cluster, policy=req.policy, seed=req.seed)
    except ValueError as exc:
        raise PlanError("graph", str(exc)) from None
    seconds = time.perf_counter() - started
    body: dict[str, Any] = {"policy": req.policy, "tasks": len(graph),
                            "workers": cluster.n_workers, "makespan": sched.makespan,
                            "lower_bound": lower_bound(graph, cluster),
                            "planning_seconds": seconds}
    if req.placements:
        body["placements"] = [
            {"task": k, "worker": int(p.worker), "start": p.start, "finish": p.finish,
             "cores": int(sched.cores.get(k, 1))}
            for k, p in sched.placements.items()]
    return body, seconds
