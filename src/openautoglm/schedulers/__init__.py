"""Scheduling policies behind one interface: ``schedule(graph, cluster, policy=...)``.

The classic policies are imported here; the learned one (``gnn``) is imported lazily on first
use, so a missing or broken optional module never breaks these.
"""
from __future__ import annotations

from openautoglm.schedulers.base import (
    Scheduler,
    available_policies,
    downward_rank,
    get_scheduler,
    mean_costs,
    register_scheduler,
    schedule,
    upward_rank,
)
from openautoglm.schedulers.cpop import CPOPScheduler
from openautoglm.schedulers.critical_path import CriticalPathScheduler
from openautoglm.schedulers.fifo import FIFOScheduler
from openautoglm.schedulers.heft import HEFTScheduler
from openautoglm.schedulers.random import RandomScheduler

register_scheduler("heft", HEFTScheduler)
register_scheduler("cpop", CPOPScheduler)
register_scheduler("critical_path", CriticalPathScheduler)
register_scheduler("fifo", FIFOScheduler)
register_scheduler("random", RandomScheduler)

__all__ = [
    "Scheduler",
    "register_scheduler",
    "get_scheduler",
    "available_policies",
    "schedule",
    "upward_rank",
    "downward_rank",
    "mean_costs",
    "HEFTScheduler",
    "CPOPScheduler",
    "CriticalPathScheduler",
    "FIFOScheduler",
    "RandomScheduler",
]
