"""Prometheus metrics of a :class:`~openautoglm.glm.serving.BatchingServer`.

One :class:`BatchingMetrics` per registry holds the metric families; ``.observer(**labels)``
gives the :class:`~openautoglm.glm.serving.BatchObserver` a server reports to::

    openautoglm_batch_size{model,version}            histogram of requests per call of fn
    openautoglm_queue_depth{model,version}           gauge: requests waiting now
    openautoglm_requests_shed_total{model,version}   counter: refused, the queue was full

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from openautoglm.glm import BatchingServer
    >>> metrics = BatchingMetrics(CollectorRegistry())
    >>> with BatchingServer(lambda xs: xs, observer=metrics.observer(model="echo",
    ...                                                               version="1")) as s:
    ...     s("hi")
    'hi'
    >>> b'openautoglm_batch_size_count{model="echo",version="1"} 1.0' in generate_latest(
    ...     metrics.registry)
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BATCH_BUCKETS", "BatchingMetrics"]

#: Batch-size histogram buckets (requests per batch).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LABELS = ("model", "version")


class BatchingMetrics:
    """The batching metric families, registered once in ``registry``.

    Args:
        registry: where to register (default: prometheus_client's global ``REGISTRY``).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.batch_size = Histogram("openautoglm_batch_size", "Requests per batch given to the "
                                    "model", LABELS, buckets=BATCH_BUCKETS, registry=registry)
        self.queue_depth = Gauge("openautoglm_queue_depth", "Requests waiting in the batching "
                                 "queue", LABELS, registry=registry)
        self.shed = Counter("openautoglm_requests_shed", "Requests refused because the batching "
                            "queue was full", LABELS, registry=registry)

    def observer(self, **labels: str) -> _Observer:
        """A BatchObserver writing to the series of ``labels`` (``model=``, ``version=``)."""
        return _Observer(self.batch_size.labels(**labels), self.queue_depth.labels(**labels),
                         self.shed.labels(**labels))

    def remove(self, **labels: str) -> None:
        """Drops the series of an unloaded model version."""
        values = [labels[k] for k in LABELS]
        for family in (self.batch_size, self.queue_depth, self.shed):
            try:
                family.remove(*values)
            except KeyError:
                pass


@dataclass
class _Observer:
    _batch: Any
    _depth: Any
    _shed: Any

    def batch(self, size: int) -> None:
        self._batch.observe(size)

    def queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def shed(self) -> None:
        self._shed.inc()
