"""⑦ Automation built on the engine: evaluation metrics (``evaluate``), :class:`AutoTask`,
the GLM pipeline's tasks (``glm_tasks``) and the AutoTrainer (``autotrain``).
"""
from __future__ import annotations
