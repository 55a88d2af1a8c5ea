"""② The simulator: a :class:`Schedule` (placements on worker timelines), its checks and lower
bound, and the list scheduler every policy ends in (``list_schedule``, ``list_makespan``).
"""
from __future__ import annotations

from openautoglm.simulate.list_scheduler import ListEvaluator, ListResult, list_makespan, list_schedule
from openautoglm.simulate.schedule import (
    InvalidScheduleError,
    Placement,
    Schedule,
    check_schedule,
    lower_bound,
)

__all__ = ["InvalidScheduleError", "ListEvaluator", "ListResult", "Placement", "Schedule",
           "check_schedule", "list_makespan", "list_schedule", "lower_bound"]
