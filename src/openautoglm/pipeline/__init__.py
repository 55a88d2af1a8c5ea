"""④ Authoring: :class:`Task` (``task``) and :class:`Pipeline` (keys -> TaskGraph), their argument checks
(``checks``) and the YAML form (``yaml``).
"""
from __future__ import annotations

from openautoglm.pipeline.checks import PipelineError
from openautoglm.pipeline.pipeline import Pipeline
from openautoglm.pipeline.task import Task, TaskFailedError

__all__ = ["Pipeline", "PipelineError", "Task", "TaskFailedError"]
