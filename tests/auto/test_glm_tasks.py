"""The GLM as pipeline tasks: graph shape, cost hints, planning, and real runs (local and Dask)."""
from __future__ import annotations

import pickle

import pytest
import torch

import openautoglm as oag
from openautoglm.glm import GLMConfig, load_checkpoint
from openautoglm.auto.glm_tasks import TrainedGLM, glm_cost, glm_pipeline, glm_tasks
from openautoglm.pipeline import Pipeline


TINY = {"n_layers": 1, "hidden": 16, "heads": 2, "max_len": 32}


def tiny_pipeline(**kw):
    return glm_pipeline(config=TINY, steps=12, batch_size=4, seq_len=16, max_chars=20_000,
                        prompts=["The "], blanks=["The [MASK] statement"], max_new_tokens=6,
                        eval_every=6, **kw)


def test_graph_shape_and_cost_hints(tmp_path):
    p = tiny_pipeline(checkpoint_dir=str(tmp_path / "ck"))
    g = p.compile()
    assert g.dependencies("glm_train") == ["glm_corpus"]
    assert sorted(g.dependents("glm_train")) == ["glm_evaluate", "glm_fill_blank", "glm_generate",
                                                 "glm_save"]
    assert sorted(g.dependencies("glm_evaluate")) == ["glm_corpus", "glm_train"]
    cost = {t: g.nx.nodes[t]["cost"] for t in g.tasks}
    assert all(c > 0 for c in cost.values())
    assert cost["glm_train"] == max(cost.values())
    assert g.nx.edges["glm_train", "glm_evaluate"]["size"] > 0  # the model travels


def test_cost_grows_with_the_work():
    small = GLMConfig(vocab_size=100, n_layers=2, hidden=64)
    big = GLMConfig(vocab_size=100, n_layers=4, hidden=128)
    assert glm_cost(big, "train", steps=10, batch_size=16) > 2 * glm_cost(small, "train", steps=10,
                                                                           batch_size=16)
    ten = glm_cost(small, "train", steps=10)
    assert glm_cost(small, "train", steps=20) == pytest.approx(2 * ten)
    # The fitted line predicts the measured 2-layer/64 step (~0.03-0.06 s on this machine).
    assert 0.02 < glm_cost(small, "train", steps=1, batch_size=16, seq_len=64) < 0.2
    assert glm_cost(small, "infer", n_prompts=2) == pytest.approx(2 * glm_cost(small, "infer"))
    with pytest.raises(ValueError, match="unknown GLM task kind"):
        glm_cost(small, "serve")


def test_heft_plans_training_first_and_consumers_side_by_side():
    p = tiny_pipeline()
    plan = p.plan(policy="heft", cluster=oag.Cluster.homogeneous(3))
    train_finish = plan.placements["glm_train"].finish
    consumers = ["glm_evaluate", "glm_generate", "glm_fill_blank"]
    assert all(plan.placements[c].start >= train_finish for c in consumers)
    assert len({plan.placements[c].worker for c in consumers}) > 1


def test_bad_arguments_fail_before_anything_runs():
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        glm_tasks(blanks=["no blank here"])
    with pytest.raises(ValueError, match="exceeds max_len"):
        glm_tasks(config=TINY, seq_len=64)
    with pytest.raises(ValueError, match="multiple of heads"):
        glm_tasks(config={"hidden": 30, "heads": 4})
    with pytest.raises(ValueError, match="max_new_tokens"):
        glm_tasks(config=TINY, seq_len=16, max_new_tokens=32)


def test_pipeline_runs_locally_end_to_end(tmp_path):
    out = tiny_pipeline(checkpoint_dir=str(tmp_path / "ck")).run()
    trained = out["glm_model"]
    assert isinstance(trained, TrainedGLM) and [r["step"] for r in trained.history] == [0, 6, 12]
    metrics = out["glm_metrics"]
    assert metrics["loss"] > 0 and metrics["perplexity"] > 1
    assert set(out["glm_samples"]) == {"The "} and len(out["glm_samples"]["The "]) <= 6
    filled = out["glm_fills"]["The [MASK] statement"]
    assert filled.startswith("The ") and filled.endswith(" statement")
    model, tok, _ = load_checkpoint(out["glm_checkpoint"])
    assert tok == trained.tokenizer
    for a, b in zip(model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a, b)


def test_text_from_a_pipeline_input_and_a_prefix():
    tasks = glm_tasks(config=TINY, steps=4, batch_size=2, seq_len=16, text_key="doc", prefix="m1",
                      prompts=[], blanks=[], eval_every=2)
    p = Pipeline("p", tasks)
    assert p.inputs == ["doc"]
    out = p.run(doc=oag.glm.load_corpus(max_chars=5000))
    assert set(out) == {"doc", "m1_model", "m1_metrics"}


def test_task_functions_pickle_for_dask_workers():
    for task in tiny_pipeline().tasks.values():
        pickle.loads(pickle.dumps(task.func))


@pytest.mark.slow
def test_pipeline_runs_on_dask():
    from openautoglm.engine.engine import Engine

    with Engine(n_workers=2, processes=False, dashboard=False, progress=False) as engine:
        result = tiny_pipeline().run(engine=engine)
    assert result["glm_metrics"]["perplexity"] > 1
    assert result["glm_fills"]["The [MASK] statement"].endswith(" statement")
    rows = {row["task"]: row for row in result.times}
    assert set(rows) == {"glm_corpus", "glm_train", "glm_evaluate", "glm_generate",
                         "glm_fill_blank"}
    assert all(rows[c]["start"] >= rows["glm_train"]["finish"]
               for c in ("glm_evaluate", "glm_generate", "glm_fill_blank"))
