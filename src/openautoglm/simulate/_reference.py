"""The reference list-scheduling loop (pure Python + numpy over workers), used without numba.

It fills a :class:`~openautoglm.simulate.schedule.Schedule` step by step through the Schedule's
own placement methods; :mod:`openautoglm.simulate._kernel` is the same algorithm over flat arrays
(the tests compare them placement by placement). Kept apart from ``_kernel`` so that the kernel
knows arrays only and ``schedule`` -> ``_kernel`` stays one way.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator

import numpy as np

from openautoglm.core.graph import TaskGraph
from openautoglm.simulate.schedule import Schedule


def priority_order(g: TaskGraph, prio: np.ndarray) -> Iterator[int]:
    """Task indices in list-scheduling order: of the tasks whose dependencies all came before,
    the highest ``prio`` first (ties: the lower index). The order does not depend on where the
    tasks are placed, so a loop may place each one as it comes."""
    sptr, sidx = g.succ_ptr.tolist(), g.succ_idx.tolist()
    indeg = np.diff(g.pred_ptr).tolist()
    neg = (-prio).tolist()
    ready = [(neg[i], i) for i in range(len(indeg)) if indeg[i] == 0]
    heapq.heapify(ready)
    while ready:
        _, i = heapq.heappop(ready)
        yield i
        for c in sidx[sptr[i]:sptr[i + 1]]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(ready, (neg[c], c))


def data_ready_times(sched: Schedule, i: int, wrange: np.ndarray) -> np.ndarray:
    """When task ``i``'s inputs are all on each worker (``wrange = np.arange(W)``): every
    dependency finished, plus its transfer where it ran elsewhere. Dependencies must be placed."""
    ptr, idx, comm = sched.graph.pred_ptr, sched.graph.pred_idx, sched._comm
    wk, fin = sched._worker, sched._finish
    ps, pe = ptr[i], ptr[i + 1]
    if pe == ps:
        return np.zeros(len(wrange))
    if pe - ps == 1:
        j = idx[ps]
        drt = np.full(len(wrange), fin[j] + comm[ps])
        drt[wk[j]] = fin[j]
        return drt
    par = idx[ps:pe]
    F = fin[par]
    return np.where(wk[par][:, None] == wrange[None, :], F[:, None],
                    (F + comm[ps:pe])[:, None]).max(axis=0)


def run_list_python(sched: Schedule, prio: np.ndarray, K: np.ndarray, dur: np.ndarray,
                    insertion: bool) -> None:
    """The reference loop (pure Python + numpy over workers), used when numba is missing."""
    g = sched.graph
    W = dur.shape[1]
    C = sched.cluster.cores
    Cl = C.tolist()
    end, last = sched._end, sched._last_start
    wrange = np.arange(W)
    for i in priority_order(g, prio):
        drt = data_ready_times(sched, i, wrange)
        d = dur[i]
        floor = np.maximum(drt, end)          # appending after the last busy step always fits
        f = floor + d
        best = f.min()
        if insertion:
            cand = np.flatnonzero((drt < end) & (drt + d <= best))
            lo = drt
        else:
            lo = np.maximum(drt, last)
            cand = np.flatnonzero((lo < end) & (C > 1) & (lo + d <= best))
        if len(cand):
            ki = K[i]
            for w in cand.tolist():
                s = sched._earliest_start(w, float(lo[w]), float(d[w]), int(ki[w]), Cl[w])
                floor[w] = s
                f[w] = s + d[w]
        w = int(f.argmin())
        sched._place(i, w, float(floor[w]), int(K[i, w]), float(f[w]))
