"""The service's own Prometheus metrics (the batching and Engine families join them).

::

    openautoglm_http_requests_total{route,method,code}       every answered request
    openautoglm_http_request_duration_seconds{route,method}  its latency
    openautoglm_infer_requests_total{model,version,status}   infer calls (ok, error, shed)
    openautoglm_infer_request_duration_seconds{model,version}  infer latency, queueing included
    openautoglm_models_loaded                                versions loaded now

``route`` is the route's template (``/v2/models/{name}/infer``), never the raw path, so a
client cannot create series at will.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from openautoglm.engine.metrics import EngineMetrics
from openautoglm.glm.metrics import BatchingMetrics

__all__ = ["ServiceMetrics"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """Every metric family of one service, in its own registry.

    Args:
        history: the History the service's Engine records into (its size is exported).
    """

    def __init__(self, history: Any = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http = Counter("openautoglm_http_requests", "HTTP requests answered",
                            ("route", "method", "code"), registry=r)
        self.http_latency = Histogram("openautoglm_http_request_duration_seconds", "HTTP "
                                      "request latency", ("route", "method"), buckets=_LATENCY,
                                      registry=r)
        self.infer = Counter("openautoglm_infer_requests", "Infer requests by model version and "
                             "outcome", ("model", "version", "status"), registry=r)
        self.infer_latency = Histogram("openautoglm_infer_request_duration_seconds", "Infer "
                                       "latency, queueing included", ("model", "version"),
                                       buckets=_LATENCY, registry=r)
        self.loaded = Gauge("openautoglm_models_loaded", "Model versions loaded", registry=r)
        self.batching = BatchingMetrics(r)
        self.engine = EngineMetrics(r, history=history)
