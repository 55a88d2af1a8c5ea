"""Compiled rank sweeps over the predecessor CSR (numba, with the same loop in Python).

``ranks("up", ...)`` is the upward rank (bottom level), ``ranks("down", ...)`` the downward rank
(top level); :mod:`openautoglm.core.costs` turns a graph and cluster into their arguments.
"""
from __future__ import annotations

import numpy as np

from openautoglm import _numba

__all__ = ["ranks"]

_KERNELS = _numba.Kernels(globals(), ("_upward", "_downward"))


def _upward(w, ptr, idx, cb):  # pragma: no cover - compiled
    n = len(w)
    best = np.zeros(n)
    rank = np.empty(n)
    for i in range(n - 1, -1, -1):
        r = w[i] + best[i]
        rank[i] = r
        for e in range(ptr[i], ptr[i + 1]):
            j = idx[e]
            v = r + cb[e]
            if v > best[j]:
                best[j] = v
    return rank


def _downward(w, ptr, idx, cb):  # pragma: no cover - compiled
    n = len(w)
    rank = np.zeros(n)
    for i in range(n):
        r = 0.0
        for e in range(ptr[i], ptr[i + 1]):
            j = idx[e]
            v = rank[j] + w[j] + cb[e]
            if v > r:
                r = v
        rank[i] = r
    return rank


def ranks(direction: str, w: np.ndarray, ptr: np.ndarray, idx: np.ndarray, cb: np.ndarray
          ) -> np.ndarray:
    """Upward/downward rank over the pred CSR: compiled when numba is there, else the same loop."""
    name = "_upward" if direction == "up" else "_downward"
    if not _numba.worth_compiling(len(w)):
        # Uncompiled, the loop reads Python lists faster than numpy scalars.
        return np.asarray(_KERNELS.python(name)(list(map(float, w)), ptr.tolist(), idx.tolist(),
                                                list(map(float, cb))), dtype=np.float64)
    return _KERNELS.compiled(name)(np.ascontiguousarray(w, dtype=np.float64), ptr, idx,
                                   np.ascontiguousarray(cb, dtype=np.float64))
