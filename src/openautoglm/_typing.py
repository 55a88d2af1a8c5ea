"""Type aliases shared across the package."""
from __future__ import annotations

from collections.abc import Hashable

#: A task's name in a graph: any hashable (strings for pipelines, tuples for Dask keys).
TaskKey = Hashable
#: Index of a worker in a :class:`~openautoglm.core.cluster.Cluster`.
WorkerIndex = int
