"""The AutoTrainer: its config schema (``config``), one trial's steps (``jobs``), the Optuna
study (``study``), the search that runs trials as pipelines (``trainer``) and its results
table and plot (``results``).
"""
from __future__ import annotations

from openautoglm.auto.autotrain.config import AutoTrainConfig, AutoTrainConfigError, load_config
from openautoglm.auto.autotrain.jobs import trial_cost
from openautoglm.auto.autotrain.trainer import AutoTrainer

__all__ = ["AutoTrainConfig", "AutoTrainConfigError", "AutoTrainer", "load_config", "trial_cost"]
