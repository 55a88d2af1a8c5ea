"""openautoglm: GNN-based task orchestration, learned DAG scheduling executed on Dask."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
