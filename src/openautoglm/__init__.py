"""openautoglm: GNN-based task orchestration, learned DAG scheduling executed on Dask."""
from __future__ import annotations

__version__ = "0.1.0"

# --- core: graphs, clusters, schedules, classic schedulers ---
# --- pipelines ---
# --- learned scheduler ---
# --- execution and history ---
# --- GLM workloads and ops ---
# --- automation: AutoTrainer, AutoTask, models ---

__all__ = [
    "__version__",
    # --- core ---
    # --- pipelines ---
    # --- learned scheduler ---
    # --- execution and history ---
    # --- GLM workloads and ops ---
    # --- automation ---
]
