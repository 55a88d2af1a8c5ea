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
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.schedule import Schedule

__all__ = ["RunResult", "estimate_error"]


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
        decision: for ``compute``: the mode the run used and why
            (:class:`openautoglm.engine.modes.Decision`); ``None`` for ``run``.
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
    decision: Any = None

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
        """Write the run report: ``<path>.png`` (Gantt: planned above realised), ``<path>.html``
        and ``report.md`` beside them (metrics table, estimate error, slowest tasks).

        Args:
            path: file path with or without suffix; the folder is created.

        Returns:
            ``{"png": ..., "html": ..., "md": ...}``.
        """
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".png", ".html", ".htm", ".md") else base
        base.parent.mkdir(parents=True, exist_ok=True)
        png, page = base.with_suffix(".png"), base.with_suffix(".html")
        fig = gantt(self.times, len(self.workers))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        png.write_bytes(buf.getvalue())
        page.write_text(_html(self, base64.b64encode(buf.getvalue()).decode()), encoding="utf-8")
        md = base.parent / "report.md"
        md.write_text(markdown(self, gantt_file=png.name), encoding="utf-8")
        return {"png": png, "html": page, "md": md}

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


def markdown(result: RunResult, slowest: int = 10, gantt_file: str | None = None) -> str:
    """The run as Markdown: a metrics table, the plan's estimate error, the slowest tasks."""
    err = result.estimate_error()
    status: dict[str, int] = defaultdict(int)
    for t in result.times:
        status[t["status"] or "not run"] += 1
    metrics = {
        "run": result.run_id, "tasks": len(result.times),
        "tasks by status": ", ".join(f"{k} {v}" for k, v in sorted(status.items())),
        "workers": len(result.workers), "planned makespan (s)": result.planned_makespan,
        "realised makespan (s)": result.makespan, "wall time (s)": result.wall_time,
        "failed attempts": len(result.failures)}
    lines = [f"# Run {result.run_id}", ""]
    if gantt_file:
        lines += [f"![planned above realised]({gantt_file})", ""]
    lines += ["## Metrics", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    lines += ["", "## Estimate error of the plan", "", "| measure | value | meaning |",
              "|---|---:|---|",
              f"| makespan error | {_fmt(err['makespan_error'])} | realised / planned - 1 |",
              f"| task duration MAPE | {_fmt(err['duration_mape'])} | mean of |realised - "
              "planned| / planned |",
              f"| task duration bias | {_fmt(err['duration_bias'])} | median realised / planned "
              "(> 1: slower than planned) |",
              f"| placement match | {_fmt(err['placement_match'])} | tasks on their planned "
              "worker |", ""]
    ran = sorted((t for t in result.times if t["duration"] is not None),
                 key=lambda t: -t["duration"])[:slowest]
    lines += [f"## Slowest tasks ({len(ran)} of {len(result.times)})", "",
              "| task | status | worker | duration (s) | planned worker | planned duration (s) "
              "| realised / planned |", "|---|---|---:|---:|---:|---:|---:|"]
    for t in ran:
        ratio = t["duration"] / t["planned_duration"] if t.get("planned_duration") else None
        lines.append(f"| {_md(t['task'])} | {t['status']} | {_fmt(t['worker'])} | "
                     f"{_fmt(t['duration'])} | {_fmt(t['planned_worker'])} | "
                     f"{_fmt(t.get('planned_duration'))} | {_fmt(ratio)} |")
    if result.failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {_md(f['task'])} on {f['worker']}: {_md(f['error'])}" for f in result.failures]
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    """A value safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


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
        "wall time (s)": result.wall_time, **err,
        **({"mode": str(result.decision)} if result.decision is not None else {})}.items())
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


