"""The small GLM: blank-infilling data (the paper's Figure 2), model, training, inference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openautoglm.glm import (
    CharTokenizer,
    GLMConfig,
    GLMModel,
    attention_mask_from_sep,
    blank_infilling,
    evaluate,
    fill_blank,
    generate,
    generate_batch,
    load_checkpoint,
    load_corpus,
    make_batch,
    sample_spans,
    save_checkpoint,
    train,
)


TEXT = load_corpus(max_chars=40_000)


@pytest.fixture(scope="module")
def trained():
    """A tiny GLM trained for a few seconds; shared by the inference tests."""
    model, tok, history = train(
        {"n_layers": 1, "hidden": 32, "heads": 2, "max_len": 48}, TEXT, steps=60,
        batch_size=8, lr=3e-3, seed=0, seq_len=32, eval_every=20,
    )
    return model, tok, history


# --- Figure 2 of Du et al. (2022): x1..x6, spans {x3} and {x5, x6}, Part B order [x5 x6], [x3]

X = [11, 12, 13, 14, 15, 16]  # x1..x6
TOK = CharTokenizer("abcdefghijklmnop")
M, S, E = TOK.mask, TOK.sop, TOK.eop


def figure2():
    return blank_infilling(X, [(2, 3), (4, 6)], TOK, order=[1, 0])


def test_figure2_inputs_and_targets():
    ex = figure2()
    # Part A = x1 x2 [M] x4 [M]; Part B = [S] x5 x6 [S] x3
    assert ex["input_ids"] == [11, 12, M, 14, M, S, 15, 16, S, 13]
    assert ex["targets"] == [-100] * 5 + [15, 16, E, 13, E]
    assert ex["loss_mask"] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert ex["sep"] == 5


def test_figure2_positions():
    """Paper (1-indexed): positions 1 2 3 4 5 5 5 5 3 3, block positions 0 0 0 0 0 1 2 3 1 2."""
    pos, block = figure2()["position_ids"]
    assert [p + 1 for p in pos] == [1, 2, 3, 4, 5, 5, 5, 5, 3, 3]
    assert block == [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]


def test_figure2_attention_mask():
    """Part A attends Part A only; Part B attends Part A and Part B causally (Figure 2(d))."""
    mask = attention_mask_from_sep(torch.tensor([5]), 10)[0].int().tolist()
    expected = [
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # x1
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # x2
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # [M]
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # x4
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # [M]
        [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],  # [S]
        [1, 1, 1, 1, 1, 1, 1, 0, 0, 0],  # x5
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],  # x6
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 0],  # [S]
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # x3
    ]
    assert mask == expected


def test_blank_infilling_rejects_bad_spans_and_order():
    with pytest.raises(ValueError, match="permutation"):
        blank_infilling(X, [(2, 3)], TOK, order=[1])
    with pytest.raises(ValueError, match="sorted"):
        blank_infilling(X, [(4, 6), (2, 3)], TOK)


# --- span sampling

@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), seed=st.integers(0, 2**31), ratio=st.floats(0.05, 0.5))
def test_spans_cover_the_budget_without_touching(n, seed, ratio):
    spans = sample_spans(n, seed, mask_ratio=ratio)
    budget = min(max(1, round(ratio * n)), n - 1)
    assert sum(e - s for s, e in spans) == budget
    assert all(0 <= s < e <= n for s, e in spans)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))  # a kept token between


def test_span_lengths_follow_poisson_3():
    lengths = [e - s for seed in range(300) for s, e in sample_spans(1000, seed)]
    # Poisson(3) clipped below at 1 (and the last span of each window cut to the budget).
    assert 2.7 < np.mean(lengths) < 3.4


def test_sample_spans_errors():
    with pytest.raises(ValueError, match="at least 2"):
        sample_spans(1)
    with pytest.raises(ValueError, match="mask_ratio"):
        sample_spans(10, mask_ratio=1.5)


# --- batches

def test_make_batch_shapes_padding_and_determinism():
    tok = CharTokenizer.from_text(TEXT)
    windows = [tok.encode(TEXT[i : i + 40]) for i in (0, 100, 200)] + [tok.encode("short text")]
    a = make_batch(windows, tok, rng=3)
    b = make_batch(windows, tok, rng=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    bsz, length = a["input_ids"].shape
    assert bsz == 4 and a["position_ids"].shape == (4, 2, length)
    assert a["attention_mask"].shape == (4, length, length)
    assert a["attention_mask"].dtype == torch.bool
    for i, w in enumerate(windows):
        n_spans = int((a["input_ids"][i] == tok.sop).sum())
        # Part A: n - span tokens + one [MASK] per span; Part B: span tokens + one [sop] each.
        real = len(w) + 2 * n_spans
        assert int((a["input_ids"][i] != tok.pad).sum()) == real
        # Loss on Part B only: one target per span token plus one [eop] per span.
        assert int(a["loss_mask"][i].sum()) == real - int(a["sep"][i])
        assert int((a["targets"][i] == tok.eop).sum()) == n_spans
        assert (a["targets"][i][a["loss_mask"][i] == 0] == -100).all()


def test_make_batch_accepts_a_torch_generator():
    tok = CharTokenizer.from_text(TEXT)
    windows = [tok.encode(TEXT[:40])] * 2
    a = make_batch(windows, tok, torch.Generator().manual_seed(7))
    b = make_batch(windows, tok, torch.Generator().manual_seed(7))
    assert torch.equal(a["input_ids"], b["input_ids"])
    with pytest.raises(TypeError, match="rng must be"):
        make_batch(windows, tok, rng="seed")


def test_generation_objective_masks_one_suffix():
    tok = CharTokenizer.from_text(TEXT)
    w = tok.encode(TEXT[:40])
    batch = make_batch([w] * 8, tok, rng=0, generation_ratio=1.0)
    for i in range(8):
        assert int((batch["input_ids"][i] == tok.sop).sum()) == 1
        sep = int(batch["sep"][i])
        assert batch["input_ids"][i, sep - 1] == tok.mask  # the blank is the last Part A token
        assert 40 - (sep - 1) >= 20  # the suffix is at least half the window


# --- tokenizer

def test_tokenizer_round_trip_and_errors(tmp_path):
    tok = CharTokenizer.from_text("hello world")
    assert tok.decode(tok.encode("hello world")) == "hello world"
    assert tok.encode("hé")[-1] == tok.unk
    assert tok.decode(tok.encode("a [MASK] b")) == " [MASK] "  # unknown a, b dropped
    tok.save(tmp_path / "tok.json")
    assert CharTokenizer.load(tmp_path / "tok.json") == tok
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="CharTokenizer description"):
        CharTokenizer.from_dict({"chars": "abc"})


# --- model

def test_config_errors():
    with pytest.raises(ValueError, match="multiple of heads"):
        GLMConfig(vocab_size=10, hidden=30, heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        GLMConfig(vocab_size=0)


def test_attention_respects_parts():
    """Part A never sees Part B; a Part B token never sees later Part B tokens or padding."""
    torch.manual_seed(0)
    model = GLMModel(GLMConfig(vocab_size=20, hidden=16, heads=2, max_len=16)).eval()
    ex = figure2()
    ids = torch.tensor([ex["input_ids"]])
    pos = torch.tensor([ex["position_ids"]])
    out = model(ids, pos, attention_mask_from_sep(torch.tensor([5]), 10))
    changed = ids.clone()
    changed[0, 7] = 19  # x6 in Part B
    out2 = model(changed, pos, attention_mask_from_sep(torch.tensor([5]), 10))
    assert torch.allclose(out[0, :7], out2[0, :7], atol=1e-6)  # Part A and [S] x5 unchanged
    assert not torch.allclose(out[0, 7:], out2[0, 7:])
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    ppos = torch.cat([pos, torch.zeros(1, 2, 3, dtype=torch.long)], 2)
    out3 = model(padded, ppos, attention_mask_from_sep(torch.tensor([5]), 13))
    assert torch.allclose(out[0], out3[0, :10], atol=1e-5)


def test_model_has_linear_then_tanh_gelu():
    """The fusion pass looks for nn.Linear(bias) followed by GELU(approximate="tanh")."""
    model = GLMModel(GLMConfig(vocab_size=10, hidden=8, heads=2))
    mlp = model.blocks[0].mlp
    assert isinstance(mlp.fc_1, torch.nn.Linear) and mlp.fc_1.bias is not None
    assert isinstance(mlp.act, torch.nn.GELU) and mlp.act.approximate == "tanh"
    traced = torch.fx.symbolic_trace(mlp)
    targets = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert targets[:2] == ["fc_1", "act"]
    # Output tied to the word embeddings: no separate output matrix.
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))
    assert not any(k.startswith("lm_head") for k in model.state_dict())


# --- training

def test_training_loss_decreases(trained):
    _, _, history = trained
    assert [r["step"] for r in history] == [0, 20, 40, 60]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.8
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.8
    assert all(math.isfinite(r["val_loss"]) for r in history)


def test_callback_can_stop_training():
    seen = []

    def callback(step, val_loss):
        seen.append(step)
        return step < 10

    _, _, history = train({"n_layers": 1, "hidden": 16, "heads": 2, "max_len": 32}, TEXT,
                          steps=100, batch_size=4, seq_len=16, eval_every=5, callback=callback)
    assert seen == [0, 5, 10] and history[-1]["step"] == 10


def test_train_rejects_bad_arguments_before_running():
    with pytest.raises(ValueError, match="exceeds GLMConfig.max_len"):
        train({"max_len": 16}, TEXT, steps=1, seq_len=32)
    with pytest.raises(ValueError, match="too short"):
        train({"max_len": 64}, "abc" * 10, steps=1, seq_len=64)
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        train(GLMConfig(vocab_size=6), TEXT, steps=1)
    with pytest.raises(ValueError, match="steps"):
        train({}, TEXT, steps=0)


@pytest.mark.slow
def test_tiny_config_learns_in_275_steps():
    """2 layers, hidden 64, 4 heads, one thread: the loss clearly falls in 275 steps (the issue's
    "under a minute" is a speed goal: timed by the ops benchmark's GLM step, not here)."""
    _, _, history = train({"n_layers": 2, "hidden": 64, "heads": 4, "max_len": 128},
                          load_corpus(max_chars=200_000), steps=275, batch_size=16, seq_len=64,
                          eval_every=275)
    assert history[0]["val_loss"] > 4.0 and history[-1]["val_loss"] < 3.2


def test_evaluate_is_deterministic(trained):
    model, tok, _ = trained
    a = evaluate(model, tok, TEXT[-5000:], seq_len=32, seed=1)
    b = evaluate(model, tok, TEXT[-5000:], seq_len=32, seed=1)
    assert a == b
    assert a["perplexity"] == pytest.approx(math.exp(a["loss"]))
    assert 1.0 < a["perplexity"] < model.config.vocab_size


# --- inference and checkpoints

def test_fill_blank_keeps_the_context(trained):
    model, tok, _ = trained
    out = fill_blank(model, tok, "The [MASK] statement and [MASK].", max_new_tokens=5)
    assert out.startswith("The ") and " statement and " in out and out.endswith(".")
    assert "[MASK]" not in out
    assert len(out) <= len("The  statement and .") + 10
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_blank(model, tok, "nothing to fill")


def test_batched_generation_equals_one_at_a_time(trained):
    model, tok, _ = trained
    prompts = ["The return statement", "A", "class Foo:\n    def"]
    batched = generate_batch(model, tok, prompts, max_new_tokens=8)
    assert batched == [generate(model, tok, p, max_new_tokens=8) for p in prompts]
    assert all(len(s) <= 8 for s in batched)
    sampled = generate(model, tok, "The", 8, temperature=1.0, seed=3)
    assert sampled == generate(model, tok, "The", 8, temperature=1.0, seed=3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tok, "x", max_new_tokens=model.config.max_len)


def test_cached_decoding_matches_the_full_recomputation(trained):
    """Decoding over cached keys/values gives what re-running the whole sequence gives."""
    model, tok, _ = trained
    prompts = ["The return statement", "A", "class Foo:\n    def", "x = [1, 2"]
    assert generate_batch(model, tok, prompts, 12) == \
        generate_batch(model, tok, prompts, 12, use_cache=False)
    text = "The [MASK] statement, the [MASK] and [MASK]."
    assert fill_blank(model, tok, text, 6) == fill_blank(model, tok, text, 6, use_cache=False)
    assert generate(model, tok, "The", 10, temperature=1.0, seed=5) == \
        generate(model, tok, "The", 10, temperature=1.0, seed=5, use_cache=False)


def test_forward_cached_equals_forward(trained):
    """Feeding a sequence in two parts over the cache gives the logits of one full pass."""
    model, tok, _ = trained
    batch = make_batch([tok.encode(TEXT[:30])], tok, rng=1)
    ids, pos, mask = batch["input_ids"], batch["position_ids"], batch["attention_mask"]
    sep = int(batch["sep"][0])
    with torch.no_grad():
        full = model(ids, pos, mask)
        head, past = model.forward_cached(ids[:, :sep], pos[:, :, :sep], mask[:, :sep, :sep])
        tail, _ = model.forward_cached(ids[:, sep:], pos[:, :, sep:], mask[:, sep:, :], past)
    assert torch.allclose(torch.cat([head, tail], 1), full, atol=1e-5)


def test_checkpoint_round_trip(trained, tmp_path):
    model, tok, _ = trained
    save_checkpoint(tmp_path / "ck", model, tok)
    model2, tok2, config2 = load_checkpoint(tmp_path / "ck")
    assert config2 == model.config and tok2 == tok
    batch = make_batch([tok.encode(TEXT[:32])] * 2, tok, rng=0)
    args = (batch["input_ids"], batch["position_ids"], batch["attention_mask"])
    with torch.no_grad():
        assert torch.equal(model(*args), model2(*args))
    assert generate(model2, tok2, "The ", 10) == generate(model, tok, "The ", 10)
    with pytest.raises(FileNotFoundError, match="save_checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_checkpoint_metadata_is_plain_json(trained, tmp_path):
    import json

    from openautoglm.glm.checkpoint import checkpoint_extra

    model, tok, history = trained
    save_checkpoint(tmp_path / "ck", model, tok, extra={"history": history})
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["config"] == model.config.to_dict() and meta["tokenizer"]["chars"] == tok.chars
    assert checkpoint_extra(tmp_path / "ck")["history"] == history
    with pytest.raises(ValueError, match="does not describe the model"):
        save_checkpoint(tmp_path / "bad", model, tok, GLMConfig(vocab_size=3))
    meta["format"] = "something/else"
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="expected 'openautoglm.glm/1'"):
        load_checkpoint(tmp_path / "ck")


def test_whole_model_traces_with_fx_and_export():
    """Shape-free forward: fx.symbolic_trace and torch.export capture the whole model."""
    torch.manual_seed(0)
    tok = CharTokenizer.from_text(TEXT)
    model = GLMModel(GLMConfig(vocab_size=tok.vocab_size, hidden=16, heads=2, max_len=32)).eval()
    batch = make_batch([tok.encode(TEXT[:24])] * 2, tok, rng=0)
    args = (batch["input_ids"], batch["position_ids"], batch["attention_mask"])
    assert torch.allclose(torch.fx.symbolic_trace(model)(*args), model(*args), atol=1e-6)
    assert torch.allclose(torch.export.export(model, args).module()(*args), model(*args), atol=1e-6)


def test_fusion_pass_applies_to_the_glm():
    """The fusion pass finds one Linear(bias)->GELU(tanh) per block; outputs and grads unchanged."""
    fusion = pytest.importorskip("openautoglm.ops.fusion")
    from openautoglm import ops

    try:
        ops.load()
    except Exception as exc:  # the compiled extension is not built here
        pytest.skip(f"openautoglm ops unavailable: {exc}")
    torch.manual_seed(0)
    tok = CharTokenizer.from_text(TEXT)
    model = GLMModel(GLMConfig(vocab_size=tok.vocab_size, n_layers=2, hidden=32, heads=4,
                               max_len=48))
    fused = fusion.fuse(model)
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 0, "bias_gelu": 2}
    batch = make_batch([tok.encode(TEXT[i : i + 32]) for i in (0, 50)], tok, rng=0)
    args = (batch["input_ids"], batch["position_ids"], batch["attention_mask"])
    from openautoglm.glm import glm_loss

    losses = []
    for m in (model, fused):
        model.zero_grad()
        loss = glm_loss(m(*args), batch["targets"], batch["loss_mask"])
        loss.backward()
        losses.append((loss.item(), model.blocks[0].mlp.fc_1.weight.grad.clone()))
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-5)
    assert torch.allclose(losses[0][1], losses[1][1], atol=1e-5)


def test_training_in_threads_is_reproducible():
    """Two trainings with one seed, run at the same time in threads, give the same weights.

    torch's generator is global: without the initialisation lock one thread's seeding could
    land between the other's seeding and its initialisation.
    """
    from concurrent.futures import ThreadPoolExecutor

    from openautoglm.glm import load_corpus, train

    text = load_corpus(max_chars=6000)
    cfg = {"n_layers": 1, "hidden": 16, "heads": 2, "max_len": 32}

    def run(seed):
        model, _, _ = train(cfg, text, steps=2, batch_size=2, lr=1e-3, seed=seed, seq_len=32)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    with ThreadPoolExecutor(4) as pool:
        a, b, c, d = pool.map(run, [7, 8, 7, 8])
    assert torch.equal(a, c) and torch.equal(b, d)
    assert not torch.equal(a, b)


def test_text_outside_the_alphabet_warns_with_the_unk_share(trained):
    """A Chinese prompt (the seed documents' own examples) became all [UNK] without a word."""
    import warnings

    from openautoglm.glm import UnknownCharactersWarning

    model, tok, _ = trained
    with pytest.warns(UnknownCharactersWarning, match=r"100% of the prompt's characters .* \[UNK\] \('你', '好'"):
        generate(model, tok, "你好你好", max_new_tokens=2)
    with pytest.warns(UnknownCharactersWarning, match=r"50% of the text's characters"):
        fill_blank(model, tok, "ab你好[MASK]", max_new_tokens=2)
    assert tok.unknown("ab你好") == (0.5, ["你", "好"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # text the model can read: no warning
        generate(model, tok, "The return statement", max_new_tokens=2)
        fill_blank(model, tok, "The [MASK] statement", max_new_tokens=2)


def test_torch_threads_knob(monkeypatch):
    from openautoglm.glm import torch_threads, using_threads

    monkeypatch.delenv("OPENAUTOGLM_TORCH_THREADS", raising=False)
    assert torch_threads() == 1
    monkeypatch.setenv("OPENAUTOGLM_TORCH_THREADS", "2")
    assert torch_threads() == 2 and torch_threads(3) == 3
    monkeypatch.setenv("OPENAUTOGLM_TORCH_THREADS", "many")
    with pytest.raises(ValueError, match="OPENAUTOGLM_TORCH_THREADS='many' is not a whole number"):
        torch_threads()
    with pytest.raises(ValueError, match="at least 1"):
        torch_threads(0)
    torch.set_num_threads(2)
    try:
        with using_threads(1):
            assert torch.get_num_threads() == 1
            with using_threads(1):
                pass
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2  # the caller's own setting comes back
    finally:
        torch.set_num_threads(1)
