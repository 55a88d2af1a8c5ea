"""Shared fixtures: the HEFT paper's example graph, real traces, small graph shapes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import settings

import openautoglm as oag

# Property tests: the same examples on every run by default, so a CI result is reproducible
# (and a red run is never a roll of the dice); HYPOTHESIS_PROFILE=explore draws fresh examples
# each run, to hunt for new counterexamples locally (add --hypothesis-seed=N to replay one).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from workflow_traces import WORKFLOWS, smallest_traces  # noqa: F401 (re-exported for fixtures)

#: Topcuoglu et al. 2002, Fig. 2: run time of each task on processors P1, P2, P3.
HEFT_PAPER_COSTS = {
    1: (14, 16, 9), 2: (13, 19, 18), 3: (11, 13, 19), 4: (13, 8, 17), 5: (12, 13, 10),
    6: (13, 16, 9), 7: (7, 15, 11), 8: (5, 11, 14), 9: (18, 12, 20), 10: (21, 7, 16),
}
#: The published mean communication costs of its edges.
HEFT_PAPER_EDGES = {
    (1, 2): 18, (1, 3): 12, (1, 4): 9, (1, 5): 11, (1, 6): 14, (2, 8): 19, (2, 9): 16,
    (3, 7): 23, (4, 8): 27, (4, 9): 23, (5, 9): 13, (6, 8): 15, (7, 10): 17, (8, 10): 11,
    (9, 10): 13,
}


def heft_paper_graph() -> oag.TaskGraph:
    """The 10-task DAG of the HEFT paper, with ``costs`` per processor and bandwidth 1."""
    G = nx.DiGraph()
    for t, costs in HEFT_PAPER_COSTS.items():
        G.add_node(t, costs=list(costs))
    for (u, v), size in HEFT_PAPER_EDGES.items():
        G.add_edge(u, v, size=size)
    return oag.TaskGraph.from_networkx(G)


@pytest.fixture
def heft_paper() -> tuple[oag.TaskGraph, oag.Cluster]:
    """(graph, 3-processor cluster) of Topcuoglu et al. 2002, Fig. 2."""
    return heft_paper_graph(), oag.Cluster.homogeneous(3, bandwidth=1.0)


@pytest.fixture
def workflows_dir() -> Path:
    """``../shared/workflows`` (the real WfFormat traces); skips when absent."""
    if not (WORKFLOWS / "pegasus").is_dir():
        pytest.skip(f"real WfFormat traces not found at {WORKFLOWS.resolve()} "
                    "(they live in ../shared/workflows beside the repository)")
    return WORKFLOWS.resolve()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """torch on one thread for the whole session (the machine is shared; BRIEF.md).

    Test modules are imported before any fixture runs, so every module that imports torch at
    the top has done so by now; torch is not imported for sessions that never use it. A test
    about threads sets its own count and restores 1.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    yield


#: Two key alphabets for the same shapes: task names must never change a plan.
ALPHABETS = {
    "ints": lambda k: k,
    "reversed tuples": lambda k: ("task", -k),  # sorts the other way round, not strings
}


@pytest.fixture(params=sorted(ALPHABETS))
def alphabet(request):
    """A renaming of small-int task keys; a test using it runs once per key alphabet."""
    return ALPHABETS[request.param]
