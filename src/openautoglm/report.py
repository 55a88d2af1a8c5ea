"""What a run did: :class:`RunResult`, its per-task table, and the run report (PNG + HTML).

The engine's scheduler plugin gives, per task, the worker and compute start/stop Dask measured.
:func:`collect_run` joins them with the plan into one row per task::

    task  worker  start  finish  duration  planned_worker  planned_start  planned_finish  status

(times in seconds from the run's first task start), stores the run in the history, and raises
:class:`~openautoglm.pipeline.TaskFailedError` with the partial outputs if a task failed.
:meth:`RunResult.report` draws the realised Gantt chart under the planned one and writes an
HTML page with the chart, the makespans and the error of the plan's estimates.
"""
from __future__ import annotations

import base64
import html
import io
import math
import time
import traceback
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .executor import Engine
    from .graph import TaskGraph
    from .history import History
    from .simulate import Schedule

__all__ = ["RunResult", "collect_run", "estimate_error"]


class RunResult(dict):
    """The outputs of a run (a dict: for a pipeline, every key, inputs included) plus its record.

    Attributes:
        run_id: the id under which history stores the run.
        graph: the (refined) graph that was planned.
        schedule: the plan.
        workers: Dask worker addresses, in the plan's worker order.
        times: one dict per task (see the module docstring), by realised start.
        makespan: realised makespan in seconds (first start to last finish).
        planned_makespan: the plan's makespan.
        wall_time: seconds from submission to the last result.
        failures: failed attempts (retried or final): task, worker, exception, traceback.
    """

    run_id: str
    graph: TaskGraph
    schedule: Schedule
    workers: list[str]
    times: list[dict[str, Any]]
    makespan: float
    planned_makespan: float
    wall_time: float
    failures: list[dict[str, Any]]

    @property
    def outputs(self) -> dict[Hashable, Any]:
        """The outputs as a plain dict."""
        return dict(self)

    def to_dataframe(self) -> pd.DataFrame:
        """The per-task table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.times)

    def estimate_error(self) -> dict[str, float]:
        """How far the plan's estimates were from reality (see :func:`estimate_error`)."""
        return estimate_error(self.times, self.planned_makespan, self.makespan)

    def report(self, path: str | Path) -> dict[str, Path]:
        """Write the run report: ``<path>.png`` (Gantt: planned above realised) and ``<path>.html``.

        Args:
            path: file path with or without suffix; the folder is created.

        Returns:
            ``{"png": ..., "html": ...}``.
        """
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".png", ".html", ".htm") else base
        base.parent.mkdir(parents=True, exist_ok=True)
        png, page = base.with_suffix(".png"), base.with_suffix(".html")
        fig = gantt(self.times, len(self.workers))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        png.write_bytes(buf.getvalue())
        page.write_text(_html(self, base64.b64encode(buf.getvalue()).decode()), encoding="utf-8")
        return {"png": png, "html": page}

    def __repr__(self) -> str:
        return (f"RunResult({len(self)} outputs, {len(self.times)} tasks, makespan="
                f"{self.makespan:.3g} s, planned {self.planned_makespan:.3g} s)")


def estimate_error(times: list[dict[str, Any]], planned_makespan: float,
                   makespan: float) -> dict[str, float]:
    """Errors of a plan's estimates against what ran.

    Returns:
        ``makespan_error`` (realised / planned - 1), ``duration_mape`` (mean absolute
        percentage error of the per-task durations), ``duration_bias`` (median of realised /
        planned per task; > 1 means tasks ran longer than planned), ``placement_match``
        (fraction of tasks on their planned worker).

    Example:
        >>> rows = [{"duration": 2.0, "planned_duration": 1.0, "worker": 0, "planned_worker": 0,
        ...          "status": "ok"}]
        >>> estimate_error(rows, planned_makespan=1.0, makespan=2.0)["makespan_error"]
        1.0
    """
    ok = [t for t in times if t["status"] == "ok" and t.get("planned_duration")]
    real = np.array([t["duration"] for t in ok], dtype=float)
    plan = np.array([t["planned_duration"] for t in ok], dtype=float)
    return {
        "makespan_error": makespan / planned_makespan - 1 if planned_makespan > 0 else math.nan,
        "duration_mape": float(np.mean(np.abs(real - plan) / plan)) if len(ok) else math.nan,
        "duration_bias": float(np.median(real / plan)) if len(ok) else math.nan,
        "placement_match": float(np.mean([t["worker"] == t["planned_worker"] for t in ok]))
        if ok else math.nan,
    }


def gantt(times: list[dict[str, Any]], n_workers: int) -> Any:
    """A matplotlib figure: the planned Gantt chart above the realised one, same time axis."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(10, 1.2 + 0.9 * n_workers))
    cmap = plt.get_cmap("tab20")
    ids = {ident: i for i, ident in enumerate(dict.fromkeys(t["identity"] for t in times))}
    for ax, (w, s, f), title in (
        (axes[0], ("planned_worker", "planned_start", "planned_finish"), "planned"),
        (axes[1], ("worker", "start", "finish"), "realised"),
    ):
        for t in times:
            if t[w] is None or t[s] is None or t[w] < 0:
                continue
            color = "red" if t["status"] != "ok" else cmap(ids[t["identity"]] % 20)
            ax.barh(t[w], t[f] - t[s], left=t[s], height=0.8, color=color, edgecolor="black",
                    linewidth=0.3)
            if len(times) <= 40:
                ax.text(t[s] + (t[f] - t[s]) / 2, t[w], str(t["task"]), ha="center",
                        va="center", fontsize=6, clip_on=True)
        ax.set_yticks(range(n_workers))
        ax.set_ylabel("worker")
        ax.set_title(title, fontsize=9, loc="left")
        ax.invert_yaxis()
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    return fig


def _html(result: RunResult, png_b64: str) -> str:
    err = result.estimate_error()
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(t[c]))}</td>" for c in _COLUMNS) + "</tr>"
        for t in result.times
    )
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    summary = "".join(f"<li>{html.escape(k)}: {_fmt(v)}</li>" for k, v in {
        "run": result.run_id, "tasks": len(result.times), "workers": len(result.workers),
        "realised makespan (s)": result.makespan, "planned makespan (s)": result.planned_makespan,
        "wall time (s)": result.wall_time, **err}.items())
    fails = "".join(f"<h3>{html.escape(str(f['task']))} on {html.escape(str(f['worker']))}</h3>"
                    f"<pre>{html.escape(str(f.get('traceback') or f.get('error')))}</pre>"
                    for f in result.failures)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>openautoglm run "
            f"{result.run_id}</title><style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;"
            f"border-bottom:1px solid #ddd;text-align:right}}</style></head><body>"
            f"<h1>Run {result.run_id}</h1><ul>{summary}</ul>"
            f"<img alt='planned and realised Gantt charts' src='data:image/png;base64,{png_b64}'>"
            f"<h2>Tasks</h2><table><tr>{head}</tr>{rows}</table>"
            f"{'<h2>Failures</h2>' + fails if fails else ''}</body></html>")


_COLUMNS = ["task", "identity", "status", "worker", "start", "finish", "duration",
            "planned_worker", "planned_start", "planned_finish", "planned_duration", "cores"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


# -- turning Dask's records into a result ----------------------------------------------------
def collect_run(engine: Engine, graph: TaskGraph, plan: Schedule, workers: list[dict[str, Any]],
                futures: dict[Hashable, Any], failed: bool, inputs: dict[str, Any],
                out: dict[Hashable, str], dkey: dict[Hashable, Hashable], run_id: str,
                started: float, history: History | None, name: str, policy: str) -> RunResult:
    """Gather outputs and records of a finished (or failed) run; store it; raise on failure."""
    from .executor import _identities, pop_failures, pop_records
    from .pipeline import TaskFailedError

    client = engine.client
    if failed:
        # Stop the run: nothing more starts; what finished is kept.
        client.cancel([f for f in futures.values() if not f.done()])
    finished = {k: f for k, f in futures.items() if f.status == "finished"}
    values = client.gather(list(finished.values())) if finished else []
    wall = time.time() - started
    records = client.run_on_scheduler(pop_records, run_id=run_id)
    attempts = [a for per in client.run(pop_failures, run_id=run_id).values() for a in per]
    node_of = {v: k for k, v in dkey.items()}
    addr = [w["address"] for w in workers]
    windex = {a: i for i, a in enumerate(addr)}
    ident = _identities(graph)
    times, executions, transfers = _tables(graph, plan, records, node_of, windex, ident, addr)
    failures = []
    for a in attempts:
        k = node_of.get(a["key"], a["key"])
        failures.append({"task": k, "worker": a["worker"], "error": a["exception_text"],
                         "traceback": a["traceback_text"]})
        executions.append(_failed_execution(a, k, ident.get(k, str(k)), times))
    starts = [t["start"] for t in times if t["start"] is not None]
    makespan = max(t["finish"] for t in times if t["finish"] is not None) if starts else 0.0

    result = RunResult()
    if out:  # a pipeline: every key by its name, the inputs included
        result.update(inputs)
        result.update({out[k]: v for k, v in zip(finished, values)})
    else:
        result.update(zip(finished, values))
    result.run_id, result.graph, result.schedule, result.workers = run_id, graph, plan, addr
    result.times, result.makespan, result.planned_makespan = times, makespan, float(plan.makespan)
    result.wall_time, result.failures = wall, failures
    if history is not None:
        history.record_run(executions, transfers, run_id=run_id, pipeline=name, policy=policy,
                           n_workers=len(addr), started=started, finished=time.time(),
                           planned_makespan=result.planned_makespan, realised_makespan=makespan,
                           status="error" if failed else "ok")
    if failed:
        raise _failure(result, records, futures, node_of, attempts, graph, TaskFailedError)
    return result


def _tables(graph: TaskGraph, plan: Schedule, records: list[dict[str, Any]],
            node_of: dict[Hashable, Hashable], windex: dict[str, int], ident: dict[Hashable, str],
            addr: list[str]) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    from .history import Execution, Transfer

    by_node = {node_of[r["key"]]: r for r in records if r["key"] in node_of}
    compute = {}
    for k, r in by_node.items():
        cs = [s for s in r["startstops"] if s.get("action") == "compute"]
        compute[k] = (cs[-1]["start"], cs[-1]["stop"]) if cs else (None, None)
    t0 = min((s for s, _ in compute.values() if s is not None), default=0.0)
    times, executions, transfers = [], [], []
    speeds = plan.cluster.speeds
    for k in graph.tasks:
        p = plan.placements.get(k)
        r = by_node.get(k)
        start, stop = compute.get(k, (None, None))
        w = windex.get(r["worker"], -1) if r else None
        cores = int(plan.cores.get(k, 1))
        par = float(graph.nx.nodes[k].get("parallel", 0.0) or 0.0)
        row = {
            "task": k, "identity": ident[k], "status": r["status"] if r else "cancelled",
            "worker": w, "start": None if start is None else start - t0,
            "finish": None if stop is None else stop - t0,
            "duration": None if start is None else stop - start,
            "planned_worker": p.worker if p else None, "planned_start": p.start if p else None,
            "planned_finish": p.finish if p else None,
            "planned_duration": (p.finish - p.start) if p else None, "cores": cores,
            "nbytes": r["nbytes"] if r else 0,
        }
        times.append(row)
        if r is None or r["status"] != "ok":
            continue
        deps = {node_of.get(d, d): n for d, n in r["deps"]}
        moved = {d: n for d, n in deps.items() if d in by_node and by_node[d]["worker"] != r["worker"]}
        speed = float(speeds[w]) if w is not None and 0 <= w < len(speeds) else 1.0
        executions.append(Execution(
            task=str(k), identity=ident[k], status="ok", worker=r["worker"], start=start, end=stop,
            duration=row["duration"], cost=row["duration"] * speed / ((1 - par) + par / cores),
            cores=cores, input_size=int(sum(deps.values())), output_size=int(r["nbytes"]),
            bytes_moved=int(sum(moved.values())), planned_start=row["planned_start"],
            planned_finish=row["planned_finish"]))
        transfers.extend(_transfers(k, r, moved, by_node, ident))
    times.sort(key=lambda t: (t["start"] is None, t["start"] or 0.0))
    return times, executions, transfers


def _transfers(k: Hashable, r: dict[str, Any], moved: dict[Hashable, int],
               by_node: dict[Hashable, dict[str, Any]], ident: dict[Hashable, str]) -> list[Any]:
    """One Transfer per moved dependency; a gather's time is shared by bytes among its keys."""
    from .history import Transfer

    spent: dict[str, float] = defaultdict(float)
    for s in r["startstops"]:
        if s.get("action") == "transfer":
            spent[s.get("source")] += s["stop"] - s["start"]
    per_source: dict[str, list[Hashable]] = defaultdict(list)
    for d in moved:
        per_source[by_node[d]["worker"]].append(d)
    rows = []
    for src, deps in per_source.items():
        total = sum(moved[d] for d in deps) or 1
        for d in deps:
            share = spent.get(src, 0.0) * (moved[d] / total if total else 1 / len(deps))
            rows.append(Transfer(str(d), str(k), ident[d], ident[k], int(moved[d]), share,
                                 src, r["worker"]))
    return rows


def _failed_execution(a: dict[str, Any], k: Hashable, identity: str, times: list[dict[str, Any]]) -> Any:
    from .history import Execution

    dur = a["stop"] - a["start"] if a["start"] is not None and a["stop"] is not None else None
    return Execution(task=str(k), identity=identity, status="error", worker=a["worker"],
                     start=a["start"], end=a["stop"], duration=dur,
                     error=f"{a['exception_text']}\n{a['traceback_text'] or ''}")


def _failure(result: RunResult, records: list[dict[str, Any]], futures: dict[Hashable, Any],
             node_of: dict[Hashable, Hashable], attempts: list[dict[str, Any]], graph: TaskGraph,
             error_cls: type) -> BaseException:
    """The TaskFailedError for the task that failed first (not its erred dependents)."""
    erred = [r for r in records if r["status"] == "error"]
    key = erred[0]["key"] if erred else next(k for k, f in futures.items() if f.status == "error")
    task = node_of.get(key, key)
    cause: BaseException | None = None
    tb_text = erred[0].get("traceback_text") if erred else None
    for f in futures.values():
        if f.status == "error":
            cause = f.exception()
            tb = f.traceback()
            if tb is not None:
                tb_text = "".join(traceback.format_tb(tb))
            break
    if cause is None:
        cause = RuntimeError(erred[0].get("exception_text") if erred else "unknown error")
    n_attempts = sum(1 for a in attempts if node_of.get(a["key"], a["key"]) == task) or 1
    label = graph.nx.nodes[task]["task"].name if "task" in graph.nx.nodes.get(task, {}) else str(task)
    err = error_cls(label, n_attempts, cause, result.outputs)
    err.result = result
    err.traceback = tb_text
    err.__cause__ = cause
    return err
