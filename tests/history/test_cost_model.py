"""Task identity is defined once (history/cost_model.node_identities): the engine's records and
history's refine pool executions under the same names."""
from __future__ import annotations

import networkx as nx

import openautoglm as oag
from openautoglm.history.cost_model import node_identities, task_identity
from openautoglm.history.store import Execution, History


def _pipeline() -> oag.Pipeline:
    p = oag.Pipeline("ident")
    p.add_task(oag.Task("clean", func=str.strip, input_key="raw", output_key="text"))
    p.add_task(oag.Task("count", func=len, input_key="text", output_key="n"))
    return p


def test_a_pipeline_task_is_known_by_its_name():
    g = _pipeline().compile()
    assert node_identities(g) == {k: g.nx.nodes[k]["task"].name for k in g.tasks}
    assert node_identities(g) == node_identities(g.nx)


def test_attribute_then_task_then_dask_prefix():
    G = nx.DiGraph([("inc-8f3a9c", ("sum-4ad2c", 3)), ("inc-8f3a9c", "x")])
    G.nodes["x"]["identity"] = "chosen"
    assert node_identities(G) == {"inc-8f3a9c": "inc", ("sum-4ad2c", 3): "sum", "x": "chosen"}
    assert node_identities(G)["inc-8f3a9c"] == task_identity("inc-8f3a9c")


def test_refine_pools_by_the_same_identities_as_the_engine_records():
    """What the engine records under node_identities is what refine reads back, unasked."""
    g = _pipeline().compile()
    ident = node_identities(g)
    with History(":memory:") as h:
        h.record_run([Execution(f"{k}-run1", ident[k], duration=7.0, cost=7.0) for k in g.tasks])
        refined = h.refine(g)
    assert [refined.nx.nodes[k]["cost"] for k in refined.tasks] == [7.0] * len(g)
    assert all(refined.nx.nodes[k]["cost_source"] == "history" for k in refined.tasks)
