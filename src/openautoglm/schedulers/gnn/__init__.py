"""The learned policy, its whole life in one folder.

``features`` (graph -> x, edge_index, edge_weight) -> ``model`` (SchedulerGCN: priority,
share, edge co-location) with its ``weights`` file (gnn.pt beside it; ``untrained_model``, the
control) -> ``decode`` (the one-shot plan) -> ``guided`` (the default, model-guided search over
``local_search``) or the full candidate set (``placement`` + ``local_search``) -> ``scheduler``
(GNNScheduler, policy ``"gnn"``); ``examples`` (the training graphs), ``targets`` (the teacher
search) and ``training`` make the weights.

``placement``, ``local_search``, ``decode`` and ``guided`` import no torch (``decode`` only
when it runs the edge head), so the names are imported on first use (PEP 562) and
``import openautoglm.schedulers.gnn.local_search`` stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GNNScheduler": "scheduler",
    "GNNPlan": "scheduler",
    "SchedulerGCN": "model",
    "graph_features": "features",
    "FEATURE_NAMES": "features",
    "GraphFeatures": "features",
    "DEFAULT_WEIGHTS": "weights",
    "load_model": "weights",
    "save_model": "weights",
    "untrained_model": "weights",
    "train_scheduler": "training",
    "make_examples": "examples",
    "cluster_pins": "placement",
    "linear_pins": "placement",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
