"""Clusters: workers with a speed and a number of cores, joined by one network bandwidth.

A task of ``cost`` seconds runs ``cost / speeds[w]`` on worker ``w`` (one core); moving an edge of
``size`` between two different workers takes ``size / bandwidth``. See ``docs/architecture.md``.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from openautoglm._validate import InputError, check_number, short

__all__ = ["Cluster"]

#: Most workers (and cores per worker) a Cluster accepts: far above any real cluster, far below
#: what would exhaust memory.
MAX_WORKERS = 1_000_000


class Cluster:
    """A set of workers: speeds, cores per worker, and one bandwidth between any two of them.

    Args:
        speeds: one positive speed per worker (a speed-2 worker runs a task in half the time).
        bandwidth: transfer speed between different workers (> 0, may be ``inf``);
            on the same worker data moves for free.
        cores: cores per worker, an int for all of them or one int per worker (>= 1).

    Raises:
        ValueError: no workers, a speed that is not positive and finite, a bandwidth <= 0,
            or a core count < 1.

    Example:
        >>> c = Cluster(speeds=[1, 1, 2, 2], bandwidth=10.0, cores=[1, 1, 4, 4])
        >>> c.n_workers, c.speeds.tolist(), c.cores.tolist(), c.bandwidth
        (4, [1.0, 1.0, 2.0, 2.0], [1, 1, 4, 4], 10.0)
    """

    def __init__(self, speeds: Sequence[float] | np.ndarray, bandwidth: float = 1.0,
                 cores: int | Sequence[int] | np.ndarray = 1) -> None:
        sp = np.asarray(_numbers(speeds, "speeds", "e.g. Cluster(speeds=[1.0, 2.0])"),
                        dtype=np.float64)
        if sp.size == 0:
            raise InputError("a Cluster needs at least one worker: pass speeds=[1.0, ...]")
        if not (np.isfinite(sp).all() and (sp > 0).all()):
            raise InputError(f"worker speeds must be positive finite numbers, got {short(sp.tolist())}")
        bw = check_number(bandwidth, "bandwidth", finite=False,
                          fix="use a number > 0 (math.inf for free transfers)")
        if bw <= 0:
            raise InputError(f"bandwidth must be > 0 (use math.inf for free transfers), got {short(bandwidth)}")
        if isinstance(cores, numbers.Number) or np.ndim(cores) == 0:
            co = np.full(sp.size, check_number(cores, "cores", integer=True, minimum=1,
                                               maximum=MAX_WORKERS))
        else:
            co = np.asarray([check_number(c, f"cores[{i}]", integer=True, minimum=1,
                                          maximum=MAX_WORKERS)
                             for i, c in enumerate(_numbers(cores, "cores", "one int per worker"))])
            if co.size != sp.size:
                raise InputError(f"cores has {co.size} entries for {sp.size} workers: "
                                 "give one per worker or a single int")
        self.speeds: np.ndarray = sp
        self.cores: np.ndarray = co.astype(np.int64)
        self.bandwidth: float = bw
        self.speeds.flags.writeable = False
        self.cores.flags.writeable = False

    @classmethod
    def homogeneous(cls, n: int, speed: float = 1.0, bandwidth: float = 1.0, cores: int = 1) -> Cluster:
        """``n`` identical workers.

        Example:
            >>> Cluster.homogeneous(3, speed=2.0).speeds.tolist()
            [2.0, 2.0, 2.0]
        """
        n = check_number(n, "Cluster.homogeneous n (workers)", integer=True, minimum=None,
                         maximum=MAX_WORKERS)
        if n < 1:
            raise InputError(f"a Cluster needs at least one worker, got n={n}")
        return cls([check_number(speed, "speed", minimum=None)] * n, bandwidth=bandwidth,
                   cores=cores)

    @property
    def n_workers(self) -> int:
        """Number of workers."""
        return int(self.speeds.size)

    def __len__(self) -> int:
        return self.n_workers

    def __repr__(self) -> str:
        return (f"Cluster(speeds={self.speeds.tolist()}, bandwidth={self.bandwidth}, "
                f"cores={self.cores.tolist()})")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Cluster) and self.bandwidth == other.bandwidth
                and np.array_equal(self.speeds, other.speeds) and np.array_equal(self.cores, other.cores))

    __hash__ = None  # type: ignore[assignment]


def _numbers(values: object, field: str, example: str) -> list[float]:
    """A flat sequence of real numbers (no string read digit by digit, no nesting, no bools)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or not (np.issubdtype(values.dtype, np.number)
                                    and not np.issubdtype(values.dtype, np.complexfloating)):
            raise InputError(f"{field} must be a 1-d array of numbers, got shape {values.shape} "
                             f"dtype {values.dtype}; {example}")
        values = values.tolist()
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise InputError(f"{field} must be a list of numbers, one per worker, got "
                         f"{type(values).__name__} {short(values)}; {example}")
    if len(values) > MAX_WORKERS:
        raise InputError(f"{field} lists {len(values)} workers, over the {MAX_WORKERS} limit")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise InputError(f"{field}[{i}] must be a number, got {type(v).__name__} {short(v)}; "
                             f"{example}")
    return list(values)
