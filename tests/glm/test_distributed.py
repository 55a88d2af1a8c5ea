"""Data-parallel GLM training (``train(..., world_size=k)``): the same loss curve as one process.

The ranks are real processes (torch.multiprocessing spawn, gloo on 127.0.0.1); the gang-task
version on Dask worker processes is tests/engine/test_engine_gang.py.
"""
from __future__ import annotations

import pytest
import torch.distributed as dist

from openautoglm.glm import load_corpus, train

TEXT = load_corpus(max_chars=20_000)
TINY = {"n_layers": 1, "hidden": 32, "heads": 2, "max_len": 32}
ARGS = {"steps": 50, "batch_size": 8, "seq_len": 32, "eval_every": 10, "seed": 3}


@pytest.mark.timeout(300)
def test_two_ranks_follow_the_one_process_loss_curve():
    """2 ranks x 4 windows vs 1 process x 8 windows, same seed: every recorded train and
    validation loss within 1e-4 after 50 steps (dropout 0, the default: see glm.distributed)."""
    model_1, _, one = train(TINY, TEXT, **ARGS)
    model_2, _, two = train(TINY, TEXT, world_size=2, **ARGS)
    assert [r["step"] for r in one] == [r["step"] for r in two] == [0, 10, 20, 30, 40, 50]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (a, b)
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-4, (a, b)
    assert one[-1]["val_loss"] < one[0]["val_loss"] - 0.5  # it did learn: the curves mean something
    for p, q in zip(model_1.parameters(), model_2.parameters()):
        assert (p - q).abs().max() < 1e-3
    assert not dist.is_initialized()  # the launcher left no process group behind


@pytest.mark.timeout(300)
def test_callback_runs_on_rank_zero_and_stops_every_rank():
    seen = []

    def callback(step, val_loss):
        seen.append(step)
        return step < 10

    _, _, history = train(TINY, TEXT, steps=100, batch_size=4, seq_len=16, eval_every=5,
                          callback=callback, world_size=2)
    assert seen == [0, 5, 10] and history[-1]["step"] == 10


def test_bad_world_size_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        train(TINY, TEXT, steps=1, world_size=0)
    with pytest.raises(ValueError, match="batch_size=6 does not split over world_size=4"):
        train(TINY, TEXT, steps=1, batch_size=6, world_size=4)
