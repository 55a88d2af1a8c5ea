"""How many CPU threads torch uses for the GLM's inference and training: one knob.

torch's default (one thread per core) makes this package's small models slower, not faster:
their matrix products are too small to split, and on a busy machine the threads wait for each
other. Measured on a 2-core machine: a warm ``AutoTask`` on ``glm-small`` took 1.29 s with the
default and 119 ms with one thread (median; ``benchmarks/results/first_use.md`` has the current
numbers). So GLM work runs with :func:`torch_threads` threads, by default 1:

- ``OPENAUTOGLM_TORCH_THREADS=4`` (environment) sets it for the whole process;
- ``LocalGLM(..., threads=4)`` sets it for one model.

The setting applies only while a GLM computes (:func:`using_threads` restores the caller's
value afterwards), so a user's own torch code keeps its own setting.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

ENV_TORCH_THREADS = "OPENAUTOGLM_TORCH_THREADS"
DEFAULT_THREADS = 1
_LOCK = threading.RLock()
_STATE = {"depth": 0, "before": 0}


def torch_threads(threads: int | None = None) -> int:
    """The thread count GLM work uses: ``threads`` if given, else ``$OPENAUTOGLM_TORCH_THREADS``,
    else 1.

    Raises:
        ValueError: a count below 1, or an environment value that is not a positive integer.

    >>> torch_threads(3)
    3
    """
    if threads is None:
        raw = os.environ.get(ENV_TORCH_THREADS, "").strip()
        if not raw:
            return DEFAULT_THREADS
        try:
            threads = int(raw)
        except ValueError:
            raise ValueError(f"{ENV_TORCH_THREADS}={raw!r} is not a whole number; set it to the "
                             "number of CPU threads torch may use for GLM work, e.g. 1") from None
        what = f"{ENV_TORCH_THREADS}={raw!r}"
    else:
        what = f"threads={threads!r}"
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{what}: torch needs at least 1 thread")
    return threads


@contextlib.contextmanager
def using_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with :func:`torch_threads` threads, then restore the previous count.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with using_threads(1) as n:
    ...     torch.get_num_threads() == n == 1
    True
    >>> torch.get_num_threads() == before
    True
    """
    import torch

    n = torch_threads(threads)
    # torch's thread count is global to the process: the first block to enter saves the
    # caller's value and the last to leave restores it (GLM calls from several Dask threads).
    with _LOCK:
        if _STATE["depth"] == 0:
            _STATE["before"] = torch.get_num_threads()
        _STATE["depth"] += 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    try:
        yield n
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0 and torch.get_num_threads() != _STATE["before"]:
                torch.set_num_threads(_STATE["before"])
