"""The Gantt chart of a plan: one row per worker, one lane per core, a bar per task.

``Schedule.gantt`` hands this module its bars in start order; nothing here knows a Schedule.
Task names are written in their bars when they fit, abbreviated with "…" when they nearly do,
and left out otherwise (never smeared over neighbours). Tests: ``tests/simulate/test_simulate.py`` (the Gantt tests).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

from openautoglm.simulate.timeline import tol

__all__ = ["Bar", "draw_gantt"]


class Bar(NamedTuple):
    """One task on the chart: its name, interval, worker(s) (a gang: every member) and cores."""

    key: Hashable
    start: float
    finish: float
    workers: tuple[int, ...]
    cores: int


def draw_gantt(cores: Sequence[int], bars: Sequence[Bar], makespan: float, path: str | None = None,
               ax: Any = None, labels: bool | None = None) -> Any:
    """Draw ``bars`` (in start order) on workers with ``cores[w]`` cores each.

    Args:
        cores: cores per worker.
        bars: the tasks, by start.
        makespan: the plan's makespan (the x range and the title).
        path: save the figure there (png, svg, pdf) when given.
        ax: a matplotlib Axes to draw into; a new figure otherwise.
        labels: write task names in bars (default: when there are at most 60 tasks).

    Returns:
        The matplotlib Axes.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    W = len(cores)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1 + 0.6 * W))
    labels = len(bars) <= 60 if labels is None else labels
    cmap = plt.get_cmap("tab20")
    ax.set_xlim(0, max(makespan, 1e-9) * 1.01)
    ax.set_ylim(-0.1, W)
    fit = _LabelFit(ax) if labels else None
    lanes_free: list[list[float]] = [[0.0] * int(c) for c in cores]
    for n_, (key, s, f, workers, k) in enumerate(bars):
        for w in workers:  # a gang: each member
            C = int(cores[w])
            free = lanes_free[w]
            lanes = sorted(range(C), key=lambda L: (free[L] > s + tol(s), L))[:k]
            for L in lanes:
                free[L] = f
                ax.broken_barh([(s, f - s)], (w + L / C, 0.9 / C),
                               facecolors=cmap(n_ % 20), edgecolor="black", linewidth=0.3)
            text = fit.label(str(key), f - s, 0.9 / C) if fit is not None else None
            if text:  # a label that does not fit its bar is abbreviated or left out, never smeared
                ax.text(s + (f - s) / 2, w + (min(lanes) + 0.45) / C, text,
                        ha="center", va="center", fontsize=fit.fontsize, clip_on=True)
    ax.set_yticks([w + 0.45 for w in range(W)])
    ax.set_yticklabels([f"worker {w}" for w in range(W)])
    ax.set_xlabel("time (s)")
    ax.set_title(f"makespan {makespan:.4g} s")
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
    return ax


class _LabelFit:
    """Fits task names into Gantt bars: the full name, an abbreviation ending in "…", or none.

    Widths come from the Axes' size in pixels at the figure's dpi, with a conservative
    0.62 em per character (7-pt DejaVu Sans averages about 0.55 em).
    """

    fontsize = 7.0

    def __init__(self, ax: Any) -> None:
        bbox = ax.get_window_extent()
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        self.px_per_x = bbox.width / max(x1 - x0, 1e-12)
        self.px_per_y = bbox.height / max(y1 - y0, 1e-12)
        dpi = ax.figure.dpi
        self.char_px = self.fontsize * 0.62 * dpi / 72
        self.line_px = self.fontsize * 1.2 * dpi / 72

    def label(self, name: str, width: float, height: float) -> str | None:
        """The text to write in a bar ``width`` seconds wide and ``height`` lanes high."""
        if height * self.px_per_y < self.line_px:
            return None
        room = int((width * self.px_per_x - 2) / self.char_px)
        if len(name) <= room:
            return name
        return name[: room - 1] + "…" if room >= 4 else None
