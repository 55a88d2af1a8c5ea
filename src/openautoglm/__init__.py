"""openautoglm: GNN-based task orchestration, learned DAG scheduling executed on Dask."""
from __future__ import annotations

from openautoglm._version import __version__

from typing import TYPE_CHECKING, Any

# --- core: graphs, clusters, schedules, classic schedulers (light: no torch, no dask) ---
from openautoglm._validate import InputError
from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import CycleError, TaskGraph
from openautoglm.core.loaders import load_wfcommons, random_dag
from openautoglm.history.database import HistoryError
from openautoglm.history.store import History
from openautoglm.pipeline.checks import PipelineError
from openautoglm.pipeline import Pipeline, Task, TaskFailedError
from openautoglm.schedulers import (
    CPOPScheduler,
    CriticalPathScheduler,
    FIFOScheduler,
    HEFTScheduler,
    HEFTSearchScheduler,
    MILPScheduler,
    RandomScheduler,
    Scheduler,
    available_policies,
    get_scheduler,
    register_scheduler,
    schedule,
)
from openautoglm.simulate.list_scheduler import list_schedule
from openautoglm.simulate.schedule import InvalidScheduleError, Placement, Schedule, lower_bound

# --- heavy parts (torch, dask, the GLM, the C++ ops): imported on first use (PEP 562) ---
_LAZY: dict[str, str] = {
    "graph_features": "openautoglm.schedulers.gnn.features",
    "GNNScheduler": "openautoglm.schedulers.gnn.scheduler",
    "train_scheduler": "openautoglm.schedulers.gnn.training",
    "Engine": "openautoglm.engine.engine",
    "EngineError": "openautoglm.engine.dispatch",
    "compute": "openautoglm.engine.engine",
    "from_dask": "openautoglm.engine.from_dask",
    "RunResult": "openautoglm.engine.report",
    "GLMConfig": "openautoglm.glm",
    "GLMModel": "openautoglm.glm",
    "CharTokenizer": "openautoglm.glm",
    "BatchingServer": "openautoglm.glm",
    "glm_pipeline": "openautoglm.auto.glm_tasks",
    "fused_bias_gelu": "openautoglm.ops",
    "fused_layernorm_gelu": "openautoglm.ops",
    "register_op": "openautoglm.ops",
    "AutoTask": "openautoglm.auto.autotask",
    "AutoTaskResult": "openautoglm.auto.autotask",
    "AutoTrainer": "openautoglm.auto.autotrain.trainer",
    "AutoTrainConfig": "openautoglm.auto.autotrain.config",
    "AutoTrainConfigError": "openautoglm.auto.autotrain.config",
    "bleu": "openautoglm.auto.evaluate",
    "rouge": "openautoglm.auto.evaluate",
    "score": "openautoglm.auto.evaluate",
    "ChatCompletionsModel": "openautoglm.models.chat",
    "LocalGLM": "openautoglm.models.local",
    "ModelError": "openautoglm.models.registry",
    "ModelRouter": "openautoglm.models.router",
    "get_model": "openautoglm.models.registry",
    "register_model": "openautoglm.models.registry",
}

_SUBPACKAGES = frozenset({"auto", "cli", "core", "demo", "engine", "glm", "history", "models", "ops",
                          "pipeline", "schedulers", "simulate", "testing"})

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from openautoglm.auto.autotask import AutoTask, AutoTaskResult
    from openautoglm.auto.autotrain.config import AutoTrainConfig, AutoTrainConfigError
    from openautoglm.auto.autotrain.trainer import AutoTrainer
    from openautoglm.auto.evaluate import bleu, rouge, score
    from openautoglm.auto.glm_tasks import glm_pipeline
    from openautoglm.engine.dispatch import EngineError
    from openautoglm.engine.engine import Engine, compute
    from openautoglm.engine.from_dask import from_dask
    from openautoglm.engine.report import RunResult
    from openautoglm.glm import BatchingServer, CharTokenizer, GLMConfig, GLMModel
    from openautoglm.models.chat import ChatCompletionsModel
    from openautoglm.models.local import LocalGLM
    from openautoglm.models.registry import ModelError, get_model, register_model
    from openautoglm.models.router import ModelRouter
    from openautoglm.ops import fused_bias_gelu, fused_layernorm_gelu, register_op
    from openautoglm.schedulers.gnn.features import graph_features
    from openautoglm.schedulers.gnn.scheduler import GNNScheduler
    from openautoglm.schedulers.gnn.training import train_scheduler


def __getattr__(name: str) -> Any:
    """Import a heavy part on first use: ``oag.Engine`` imports dask, ``oag.GLMModel`` torch."""
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:  # oag.glm.load_corpus works without importing openautoglm.glm first
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'openautoglm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "InputError",
    "__version__",
    # --- core ---
    "TaskGraph",
    "CycleError",
    "load_wfcommons",
    "random_dag",
    "Cluster",
    "Schedule",
    "Placement",
    "InvalidScheduleError",
    "lower_bound",
    "list_schedule",
    "schedule",
    "Scheduler",
    "register_scheduler",
    "get_scheduler",
    "available_policies",
    "HEFTScheduler",
    "CPOPScheduler",
    "CriticalPathScheduler",
    "FIFOScheduler",
    "RandomScheduler",
    # --- pipelines ---
    "Pipeline",
    "Task",
    "PipelineError",
    "TaskFailedError",
    "MILPScheduler",
    # --- learned scheduler ---
    "GNNScheduler",
    "HEFTSearchScheduler",
    "graph_features",
    "train_scheduler",
    # --- execution and history ---
    "Engine",
    "EngineError",
    "History",
    "HistoryError",
    "RunResult",
    "compute",
    "from_dask",
    # --- GLM workloads and ops ---
    "GLMConfig",
    "GLMModel",
    "CharTokenizer",
    "BatchingServer",
    "glm_pipeline",
    "fused_bias_gelu",
    "fused_layernorm_gelu",
    "register_op",
    # --- automation ---
    "AutoTrainer",
    "AutoTrainConfig",
    "AutoTrainConfigError",
    "AutoTask",
    "AutoTaskResult",
    "bleu",
    "rouge",
    "score",
    "register_model",
    "get_model",
    "ModelRouter",
    "ModelError",
    "ChatCompletionsModel",
    "LocalGLM",
]
