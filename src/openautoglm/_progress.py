"""Progress for work that may take long: large plans, a policy's first use in a process.

Work wrapped in :class:`SlowWork` says nothing when it ends within :data:`DELAY` seconds. Past
that, a note on stderr says what is being done (and where anything is cached), followed by a
rich progress bar: a fraction where the work reports one (:func:`report`, e.g. the ``gnn``
search's list-scheduling calls against its budget), else a pulsing bar with the elapsed time.

``OPENAUTOGLM_PROGRESS=1`` shows it always (logs, notebooks), ``0`` never; unset, it shows
where stderr is a terminal. When it is off, :class:`SlowWork` costs one environment look-up.

Example:
    >>> from openautoglm._progress import SlowWork, report
    >>> with SlowWork("counting to three", enabled=False):
    ...     for i in range(3):
    ...         report(i + 1, 3)
"""
from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from typing import Any

__all__ = ["DELAY", "ENV_PROGRESS", "SlowWork", "enabled", "report"]

#: Environment variable: ``1`` always show progress, ``0`` never; unset: when stderr is a terminal.
ENV_PROGRESS = "OPENAUTOGLM_PROGRESS"

#: Seconds of silence before the note and the bar appear (quick work never prints).
DELAY = 1.0

_current: contextvars.ContextVar[SlowWork | None] = contextvars.ContextVar(
    "openautoglm_progress", default=None)


def enabled() -> bool:
    """Whether progress is shown: ``$OPENAUTOGLM_PROGRESS`` if set, else stderr is a terminal."""
    value = os.environ.get(ENV_PROGRESS, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def report(completed: float, total: float | None = None) -> None:
    """Tell the innermost :class:`SlowWork` of this thread how far it is (no-op outside one)."""
    work = _current.get()
    if work is not None:
        work.update(completed, total)


class SlowWork:
    """A context manager around work that may take long: silent when quick, then a note and a bar.

    Args:
        description: what is being done, e.g. ``"planning 4,000 tasks with 'gnn' on 16 workers"``.
        note: a longer first line said when the bar appears (what happens, where it caches).
        total: the amount of work, where known (else :func:`report` may give it later).
        enabled: show progress at all (default :func:`enabled`).
    """

    def __init__(self, description: str, note: str | None = None, total: float | None = None,
                 enabled: bool | None = None) -> None:
        self.description, self.note, self.total = description, note, total
        self.completed = 0.0
        self.enabled = globals()["enabled"]() if enabled is None else enabled
        self.shown = False
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self._progress: Any = None
        self._task: Any = None
        self._token: contextvars.Token | None = None
        self._t0 = 0.0

    def __enter__(self) -> SlowWork:
        self._t0 = time.perf_counter()
        self._token = _current.set(self)
        if self.enabled:
            self._timer = threading.Timer(DELAY, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def update(self, completed: float, total: float | None = None) -> None:
        """Record progress (shown on the bar once it is up)."""
        with self._lock:
            self.completed = completed
            if total is not None:
                self.total = total
            if self._progress is not None:
                self._progress.update(self._task, completed=completed, total=self.total)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn)

        with self._lock:
            if self._done:
                return
            console = Console(stderr=True, highlight=False)
            console.print(f"openautoglm: {self.note or self.description} ...")
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                                      console=console, transient=True)
            self._task = self._progress.add_task(self.description, total=self.total,
                                                 completed=self.completed)
            self._progress.start()
            self.shown = True

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._done = True
            if self._progress is not None:
                self._progress.stop()
                seconds = time.perf_counter() - self._t0
                self._progress.console.print(
                    f"openautoglm: {self.description}: "
                    f"{'failed' if exc and exc[0] is not None else 'done'} in {seconds:.1f} s")
        if self._token is not None:
            _current.reset(self._token)
