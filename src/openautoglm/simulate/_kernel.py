"""The inner loop of :func:`openautoglm.simulate.list_schedule`: compiled (numba) and pure Python.

Two engines for one algorithm: ``run_list_python`` (in :mod:`._reference`: the reference loop, numpy over the workers and
Python lists for the timelines) and ``_kernel``, the same steps over flat arrays so numba can
compile it; the tests compare them placement by placement:

- the ready set is a binary heap of ``(-priority, index)`` pairs (ties: lower topological index);
- each worker's timeline is a row of breakpoints ``T[w, :L[w]]`` and core usage ``U[w, :L[w]]``,
  equal neighbours merged, the last step idle.

``run_list`` returns None when numba is not importable; callers then use the Python loop.
``run_list(..., arrays_only=True)`` returns the plan's worker/start/finish arrays only
(:func:`openautoglm.simulate.list_makespan`). ``merge_clusters`` is the union-find of the
learned scheduler's placement clusters, compiled too when numba is there.
"""
from __future__ import annotations

import numpy as np

from openautoglm import _numba
from openautoglm._numba import HAVE_NUMBA

#: The list-scheduling helpers, in dependency order (compiled once per process, cached on disk).
_KERNELS = _numba.Kernels(globals(), ("_less", "_push", "_pop", "_bisect_right", "_earliest",
                                      "_insert", "_delete", "_occupy", "_kernel"))

#: Relative tolerance of the timelines (``simulate.timeline.REL_TOL``): a step that begins within
#: rounding of a task's end does not block it.
REL_TOL = 1e-9


def _less(ka, ia, kb, ib):  # pragma: no cover - compiled
    return ka < kb or (ka == kb and ia < ib)


def _push(hk, hi, size, k, i):  # pragma: no cover - compiled
    j = size
    hk[j] = k
    hi[j] = i
    while j > 0:
        p = (j - 1) // 2
        if _less(hk[j], hi[j], hk[p], hi[p]):
            hk[j], hk[p] = hk[p], hk[j]
            hi[j], hi[p] = hi[p], hi[j]
            j = p
        else:
            break
    return size + 1


def _pop(hk, hi, size):  # pragma: no cover - compiled
    top = hi[0]
    size -= 1
    hk[0] = hk[size]
    hi[0] = hi[size]
    j = 0
    while True:
        a = 2 * j + 1
        b = a + 1
        m = j
        if a < size and _less(hk[a], hi[a], hk[m], hi[m]):
            m = a
        if b < size and _less(hk[b], hi[b], hk[m], hi[m]):
            m = b
        if m == j:
            break
        hk[j], hk[m] = hk[m], hk[j]
        hi[j], hi[m] = hi[m], hi[j]
        j = m
    return top, size


def _bisect_right(a, n, x):  # pragma: no cover - compiled
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _earliest(T, U, n, t, d, k, C):  # pragma: no cover - compiled
    if d <= 0.0:
        return t
    i = _bisect_right(T, n, t + REL_TOL * max(1.0, abs(t))) - 1
    while True:
        if U[i] + k > C:
            i += 1
            t = T[i]
            continue
        e = t + d
        e -= REL_TOL * max(1.0, abs(e))
        j = i + 1
        blocked = False
        while j < n and T[j] < e:
            if U[j] + k > C:
                blocked = True
                break
            j += 1
        if not blocked:
            return t
        i = j + 1
        t = T[i]


def _insert(T, U, n, pos, t, u):  # pragma: no cover - compiled
    for m in range(n, pos, -1):
        T[m] = T[m - 1]
        U[m] = U[m - 1]
    T[pos] = t
    U[pos] = u
    return n + 1


def _delete(T, U, n, pos):  # pragma: no cover - compiled
    for m in range(pos, n - 1):
        T[m] = T[m + 1]
        U[m] = U[m + 1]
    return n - 1


def _occupy(T, U, n, t, f, k):  # pragma: no cover - compiled
    if not f > t:
        return n
    a = _bisect_right(T, n, t) - 1
    if T[a] != t:
        a += 1
        n = _insert(T, U, n, a, t, U[a - 1])
    b = a
    while b < n and T[b] < f:
        b += 1
    if b == n or T[b] != f:
        n = _insert(T, U, n, b, f, U[b - 1])
    for m in range(a, b):
        U[m] += k
    if U[b] == U[b - 1]:
        n = _delete(T, U, n, b)
    if a > 0 and U[a] == U[a - 1]:
        n = _delete(T, U, n, a)
    return n


def _kernel(prio, K, dur, C, pred_ptr, pred_idx, comm, succ_ptr, succ_idx,
            insertion):  # pragma: no cover - compiled
    n, W = dur.shape
    cap = 2 * n + 2
    # Only the first L[w] entries of a row are ever read: no need to zero the rest.
    T = np.empty((W, cap))
    U = np.empty((W, cap), dtype=np.int64)
    T[:, 0] = 0.0
    U[:, 0] = 0
    L = np.ones(W, dtype=np.int64)
    end = np.zeros(W)
    last = np.zeros(W)
    wk = np.full(n, -1, dtype=np.int64)
    st = np.zeros(n)
    fin = np.zeros(n)
    indeg = np.empty(n, dtype=np.int64)
    hk = np.empty(n)
    hi = np.empty(n, dtype=np.int64)
    size = 0
    for i in range(n):
        indeg[i] = pred_ptr[i + 1] - pred_ptr[i]
        if indeg[i] == 0:
            size = _push(hk, hi, size, -prio[i], i)
    drt = np.empty(W)
    floor = np.empty(W)
    f = np.empty(W)
    while size > 0:
        i, size = _pop(hk, hi, size)
        # drt[w] = max(finish of the parents on w, arrival of the others' data): the latest
        # finish per worker plus the two latest arrivals from distinct workers, O(parents + W).
        for w in range(W):
            drt[w] = 0.0
        b1 = 0.0
        w1 = -1
        b2 = 0.0
        for e in range(pred_ptr[i], pred_ptr[i + 1]):
            j = pred_idx[e]
            fj = fin[j]
            a = fj + comm[e]
            wj = wk[j]
            if fj > drt[wj]:
                drt[wj] = fj
            if a > b1:
                if wj != w1:
                    b2 = b1
                b1 = a
                w1 = wj
            elif wj != w1 and a > b2:
                b2 = a
        for w in range(W):
            v = b2 if w == w1 else b1
            if v > drt[w]:
                drt[w] = v
        best = np.inf
        for w in range(W):
            floor[w] = max(drt[w], end[w])
            f[w] = floor[w] + dur[i, w]
            if f[w] < best:
                best = f[w]
        for w in range(W):
            d = dur[i, w]
            if insertion:
                lo = drt[w]
                search = lo < end[w] and lo + d <= best
            else:
                lo = max(drt[w], last[w])
                search = lo < end[w] and C[w] > 1 and lo + d <= best
            if search:
                s = _earliest(T[w], U[w], L[w], lo, d, K[i, w], C[w])
                floor[w] = s
                f[w] = s + d
        bw = 0
        for w in range(1, W):
            if f[w] < f[bw]:
                bw = w
        s = floor[bw]
        fi = f[bw]
        wk[i] = bw
        st[i] = s
        fin[i] = fi
        if s > last[bw]:
            last[bw] = s
        if fi > s:
            L[bw] = _occupy(T[bw], U[bw], L[bw], s, fi, K[i, bw])
            end[bw] = T[bw, L[bw] - 1]
        for e in range(succ_ptr[i], succ_ptr[i + 1]):
            c = succ_idx[e]
            indeg[c] -= 1
            if indeg[c] == 0:
                size = _push(hk, hi, size, -prio[c], c)
    return wk, st, fin, T, U, L


def run_list(prio: np.ndarray, K: np.ndarray, dur: np.ndarray, C: np.ndarray,
             pred_ptr: np.ndarray, pred_idx: np.ndarray, comm: np.ndarray,
             succ_ptr: np.ndarray, succ_idx: np.ndarray, insertion: bool,
             arrays_only: bool = False):
    """Run the compiled list scheduler; None when numba is unavailable.

    Returns ``(worker, start, finish, T, U, L)``, or only the first three with ``arrays_only``.
    """
    if not HAVE_NUMBA:
        return None
    kernel = _KERNELS.compiled("_kernel")
    out = kernel(np.ascontiguousarray(prio, dtype=np.float64),
                 np.ascontiguousarray(K, dtype=np.int64),
                 np.ascontiguousarray(dur, dtype=np.float64),
                 np.ascontiguousarray(C, dtype=np.int64),
                 pred_ptr, pred_idx, np.ascontiguousarray(comm, dtype=np.float64),
                 succ_ptr, succ_idx, bool(insertion))
    return out[:3] if arrays_only else out
