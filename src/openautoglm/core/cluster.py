"""Clusters: workers with a speed and a number of cores, joined by one network bandwidth.

A task of ``cost`` seconds runs ``cost / speeds[w]`` on worker ``w`` (one core); moving an edge of
``size`` between two different workers takes ``size / bandwidth``. See ``docs/architecture.md``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Cluster"]


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
        sp = np.asarray(speeds, dtype=np.float64).reshape(-1)
        if sp.size == 0:
            raise ValueError("a Cluster needs at least one worker: pass speeds=[1.0, ...]")
        if not (np.isfinite(sp).all() and (sp > 0).all()):
            raise ValueError(f"worker speeds must be positive finite numbers, got {sp.tolist()}")
        bw = float(bandwidth)
        if math.isnan(bw) or bw <= 0:
            raise ValueError(f"bandwidth must be > 0 (use math.inf for free transfers), got {bandwidth!r}")
        if np.ndim(cores) == 0:
            co = np.full(sp.size, cores)
        else:
            co = np.asarray(cores).reshape(-1)
            if co.size != sp.size:
                raise ValueError(f"cores has {co.size} entries for {sp.size} workers: "
                                 "give one per worker or a single int")
        if not all(float(c).is_integer() and c >= 1 for c in co):
            raise ValueError(f"cores must be integers >= 1, got {list(co)}")
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
        if int(n) < 1:
            raise ValueError(f"a Cluster needs at least one worker, got n={n!r}")
        return cls([speed] * int(n), bandwidth=bandwidth, cores=cores)

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
