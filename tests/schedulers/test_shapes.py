"""Every classic policy on every named shape (tests/graphs.py), under two key alphabets: the
plan is valid, and renaming the tasks renames the plan and changes nothing else."""
from __future__ import annotations

import networkx as nx
import pytest

import openautoglm as oag
from graphs import SHAPES
from openautoglm.testing import assert_valid_schedule

POLICIES = ["heft", "cpop", "critical_path", "fifo", "random", "heft_search"]
CLUSTER = oag.Cluster(speeds=[1.0, 2.0], bandwidth=1.0)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("policy", POLICIES)
def test_policy_on_shape_ignores_task_names(shape, policy, alphabet):
    G = SHAPES[shape]()
    plain = oag.schedule(oag.TaskGraph.from_networkx(G), CLUSTER, policy, seed=0)
    renamed = oag.schedule(oag.TaskGraph.from_networkx(nx.relabel_nodes(G, alphabet)), CLUSTER,
                           policy, seed=0)
    assert_valid_schedule(renamed)
    assert renamed.placements == {alphabet(k): p for k, p in plain.placements.items()}


def test_long_chain_starts_first_under_heft():
    s = oag.schedule(oag.TaskGraph.from_networkx(SHAPES["long_and_short"]()), CLUSTER, "heft")
    assert s.placements[0].start == 0.0 and s.placements[0].worker == 1  # the faster worker
