"""A worker's timeline: the cores in use as a step function of time.

Breakpoints ``T`` (ascending, ``T[0] == 0``) and usage ``U`` (cores busy from ``T[m]`` until
``T[m + 1]``; the last step runs to infinity and is idle). Adjacent equal steps are merged, so
a busy single-core worker is one step and each idle gap is one more::

    T:  0        2        5     7
    U:  1 ------ 2 ------ 0 --- 1 ---- 0...      (cores busy)

Overlaps and gaps within :data:`REL_TOL` (relative) are rounding, not conflicts: the search
for a start (here and in the compiled kernel) and the validity checks use the same one.
:class:`~openautoglm.simulate.schedule.Schedule` keeps one timeline per worker; tests:
``tests/simulate/test_simulate.py``, ``tests/schedulers/test_schedulers.py``.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

from openautoglm.simulate._kernel import REL_TOL

__all__ = ["REL_TOL", "tol", "overload", "earliest_start", "occupy"]


def tol(t: float) -> float:
    """The rounding allowed around time ``t``."""
    return REL_TOL * max(1.0, abs(t))


def overload(T: list[float], U: list[int], t: float, d: float, k: int, C: int
             ) -> tuple[float, int] | None:
    """First (time, usage) in ``[t, t + d)`` where ``k`` more of ``C`` cores do not fit, else None."""
    if d <= 0:
        return None
    lo, hi = t + tol(t), t + d - tol(t + d)
    m = max(bisect_right(T, lo) - 1, 0)
    while m < len(T) and T[m] < hi:
        if U[m] + k > C:
            return (max(T[m], t), U[m])
        m += 1
    return None


def earliest_start(T: list[float], U: list[int], t: float, d: float, k: int, C: int) -> float:
    """Earliest ``s >= t`` with ``k`` of ``C`` cores free during ``[s, s + d)``."""
    if d <= 0:
        return t
    n = len(T)
    i = bisect_right(T, t + tol(t)) - 1  # a step ending within rounding after t is over
    while True:
        if U[i] + k > C:
            # The last step is idle, so a blocked step always has a successor.
            i += 1
            t = T[i]
            continue
        e = t + d
        e -= tol(e)  # a step that begins within rounding of the end does not block
        j = i + 1
        while j < n and T[j] < e:
            if U[j] + k > C:
                break
            j += 1
        else:
            return t
        i = j + 1
        t = T[i]


def occupy(T: list[float], U: list[int], t: float, f: float, k: int) -> None:
    """Add ``k`` busy cores during ``[t, f)`` (``f > t``), in place."""
    a = bisect_right(T, t) - 1
    if T[a] != t:
        a += 1
        T.insert(a, t)
        U.insert(a, U[a - 1])
    b = bisect_left(T, f, a)
    if b == len(T) or T[b] != f:
        T.insert(b, f)
        U.insert(b, U[b - 1])
    for m in range(a, b):
        U[m] += k
    # Merge equal neighbours so busy stretches stay one step.
    if U[b] == U[b - 1]:
        del T[b], U[b]
    if a > 0 and U[a] == U[a - 1]:
        del T[a], U[a]
