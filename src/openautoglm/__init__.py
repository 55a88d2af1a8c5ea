"""openautoglm: GNN-based task orchestration, learned DAG scheduling executed on Dask."""
from __future__ import annotations

__version__ = "0.1.0"

# --- core: graphs, clusters, schedules, classic schedulers ---
from openautoglm.cluster import Cluster
from openautoglm.graph import CycleError, TaskGraph, load_wfcommons, random_dag
from openautoglm.schedulers import (
    CPOPScheduler,
    CriticalPathScheduler,
    FIFOScheduler,
    HEFTScheduler,
    RandomScheduler,
    Scheduler,
    available_policies,
    get_scheduler,
    register_scheduler,
    schedule,
)
from openautoglm.simulate import (
    InvalidScheduleError,
    Placement,
    Schedule,
    list_schedule,
    lower_bound,
)
# --- pipelines ---
from openautoglm.pipeline import Pipeline, PipelineError, Task, TaskFailedError
from openautoglm.schedulers.milp import MILPScheduler
# --- learned scheduler ---
from openautoglm.features import graph_features
from openautoglm.schedulers.gnn import GNNScheduler
from openautoglm.search import HEFTSearchScheduler
from openautoglm.training import train_scheduler
# --- execution and history ---
from openautoglm.dask_graph import from_dask
from openautoglm.executor import Engine, EngineError, compute
from openautoglm.history import History, HistoryError
from openautoglm.report import RunResult
# --- GLM workloads and ops ---
from openautoglm.glm import BatchingServer, CharTokenizer, GLMConfig, GLMModel
from openautoglm.glm.tasks import glm_pipeline
from openautoglm.ops import fused_bias_gelu, fused_layernorm_gelu, register_op
# --- automation: AutoTrainer, AutoTask, models ---
from openautoglm.autotask import AutoTask, AutoTaskResult
from openautoglm.autotrain import AutoTrainer
from openautoglm.autotrain_config import AutoTrainConfig, AutoTrainConfigError
from openautoglm.evaluate import bleu, rouge, score
from openautoglm.models import (
    ChatCompletionsModel,
    LocalGLM,
    ModelError,
    ModelRouter,
    get_model,
    register_model,
)

__all__ = [
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
