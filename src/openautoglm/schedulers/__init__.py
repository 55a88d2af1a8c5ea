"""Scheduling policies behind one interface: ``schedule(graph, cluster, policy=...)``.

Every built-in policy is registered here: the classic ones and ``heft_search`` on import; the
learned one (``gnn``, in ``schedulers/gnn/``) is imported lazily on first use, so torch is not
imported for the others and a missing or broken optional module never breaks them.
"""
from __future__ import annotations

from openautoglm.schedulers.base import (
    Scheduler,
    available_policies,
    get_scheduler,
    register_lazy_scheduler,
    register_scheduler,
    schedule,
)
from openautoglm.schedulers.cpop import CPOPScheduler
from openautoglm.schedulers.critical_path import CriticalPathScheduler
from openautoglm.schedulers.fifo import FIFOScheduler
from openautoglm.schedulers.heft import HEFTScheduler
from openautoglm.schedulers.heft_search import HEFTSearchScheduler
from openautoglm.schedulers.milp import MILPScheduler
from openautoglm.schedulers.random import RandomScheduler

register_scheduler("heft", HEFTScheduler)
register_scheduler("cpop", CPOPScheduler)
register_scheduler("critical_path", CriticalPathScheduler)
register_scheduler("fifo", FIFOScheduler)
register_scheduler("random", RandomScheduler)
register_scheduler("heft_search", HEFTSearchScheduler)
register_scheduler("optimal", MILPScheduler)
register_lazy_scheduler("gnn", "openautoglm.schedulers.gnn.scheduler:GNNScheduler")  # torch: lazy

__all__ = [
    "Scheduler",
    "register_scheduler",
    "register_lazy_scheduler",
    "get_scheduler",
    "available_policies",
    "schedule",
    "HEFTScheduler",
    "HEFTSearchScheduler",
    "CPOPScheduler",
    "CriticalPathScheduler",
    "FIFOScheduler",
    "RandomScheduler",
    "MILPScheduler",
]
