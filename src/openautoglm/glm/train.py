"""Training and evaluation of the small GLM on a text corpus.

``train`` builds a :class:`CharTokenizer` from the text, splits it into a training head and a
validation tail, and runs AdamW on random windows with GLM's blank-infilling objective
(:func:`~openautoglm.glm.data.make_batch`). Every ``eval_every`` steps it records the mean
training loss since the last record and the loss on fixed validation batches, and calls
``callback(step, val_loss)``, which may return ``False`` to stop (Optuna pruning).
"""
from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .data import make_batch, sample_windows, split_text
from .distributed import Ranks, check_world_size, launch
from .model import GLMConfig, GLMModel, check_inputs, glm_loss
from .tokenizer import CharTokenizer

_INIT_LOCK = threading.Lock()

#: ``callback(step, val_loss)``; returning ``False`` stops training.
Callback = Callable[[int, float], "bool | None"]


def _resolve_config(config: GLMConfig | Mapping[str, Any], tokenizer: CharTokenizer) -> GLMConfig:
    if isinstance(config, Mapping):
        config = GLMConfig(**{"vocab_size": tokenizer.vocab_size, **config})
    if not isinstance(config, GLMConfig):
        raise TypeError(f"config must be a GLMConfig or a dict of its fields, got {type(config)}")
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"GLMConfig.vocab_size={config.vocab_size} is smaller than the tokenizer's "
            f"{tokenizer.vocab_size}: use vocab_size=tokenizer.vocab_size, or pass the config "
            "as a dict without vocab_size"
        )
    return config


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def _batches_loss(model: GLMModel, batches: list[dict[str, torch.Tensor]]) -> float:
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0.0
    for b in batches:
        logits = model(b["input_ids"], b["position_ids"], b["attention_mask"])
        n = float(b["loss_mask"].sum())
        total += float(glm_loss(logits, b["targets"], b["loss_mask"])) * n
        tokens += n
    model.train(was_training)
    return total / max(tokens, 1.0)


def _eval_batches(
    model: GLMModel,
    tokenizer: CharTokenizer,
    text: str,
    seq_len: int,
    batch_size: int,
    n_batches: int,
    seed: int,
    **mask_kw: float,
) -> list[dict[str, torch.Tensor]]:
    ids = tokenizer.encode(text)
    seq_len = min(seq_len, len(ids))
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        windows = sample_windows(ids, batch_size, seq_len, rng)
        batch = make_batch(windows, tokenizer, rng, **mask_kw)
        check_inputs(model.config, batch)
        batches.append(batch)
    return batches


def evaluate(
    model: GLMModel,
    tokenizer: CharTokenizer,
    text: str,
    seq_len: int | None = None,
    batch_size: int = 16,
    n_batches: int = 4,
    seed: int = 0,
    mask_ratio: float = 0.15,
    poisson_lambda: float = 3.0,
    generation_ratio: float = 0.0,
) -> dict[str, float]:
    """Blank-infilling loss and perplexity on ``n_batches`` seeded random windows of ``text``.

    The same arguments give the same windows and spans, so two models compare fairly.

    Args:
        model: a trained :class:`GLMModel`.
        tokenizer: its tokenizer.
        text: evaluation text (at least 2 characters).
        seq_len: window length (default: ``min(model.config.max_len, 64)``).
        batch_size: windows per batch.
        n_batches: batches to average over.
        seed: fixes the windows and spans.
        mask_ratio: fraction of tokens blanked out.
        poisson_lambda: mean span length.
        generation_ratio: fraction of windows with the suffix (generation) objective.

    Returns:
        ``{"loss": mean cross-entropy per Part B token (nats), "perplexity": exp(loss),
        "tokens": number of scored tokens}``.
    """
    if len(text) < 2:
        raise ValueError("evaluate needs a text of at least 2 characters")
    seq_len = min(model.config.max_len, 64) if seq_len is None else seq_len
    if seq_len > model.config.max_len:
        raise ValueError(f"seq_len={seq_len} exceeds GLMConfig.max_len={model.config.max_len}")
    batches = _eval_batches(
        model, tokenizer, text, seq_len, batch_size, n_batches, seed,
        mask_ratio=mask_ratio, poisson_lambda=poisson_lambda, generation_ratio=generation_ratio,
    )
    loss = _batches_loss(model, batches)
    tokens = float(sum(float(b["loss_mask"].sum()) for b in batches))
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": tokens}


def _check_train_args(
    steps: int, batch_size: int, lr: float, seq_len: int, eval_every: int
) -> None:
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"train: {name} must be a positive int, got {value!r}")
    if not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"train: seq_len must be an int >= 2, got {seq_len!r}")
    if not lr > 0:
        raise ValueError(f"train: lr must be positive, got {lr!r}")


def train(
    config: GLMConfig | Mapping[str, Any],
    text: str,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    seq_len: int = 64,
    callback: Callback | None = None,
    *,
    tokenizer: CharTokenizer | None = None,
    val_fraction: float = 0.1,
    eval_every: int = 25,
    eval_batches: int = 4,
    mask_ratio: float = 0.15,
    poisson_lambda: float = 3.0,
    generation_ratio: float = 0.25,
    weight_decay: float = 0.01,
    warmup: int | None = None,
    grad_clip: float = 1.0,
    world_size: int = 1,
) -> tuple[GLMModel, CharTokenizer, list[dict[str, Any]]]:
    """Trains a GLM on ``text`` with autoregressive blank infilling.

    Args:
        config: a :class:`GLMConfig`, or a dict of its fields (``vocab_size`` then defaults to
            the tokenizer's).
        text: the corpus, e.g. ``load_corpus(max_chars=200_000)``.
        steps: optimizer steps.
        batch_size: windows per step (the global batch: with ``world_size=k`` each rank
            computes ``batch_size / k`` of them).
        lr: peak AdamW learning rate (linear warm-up, cosine decay to 10%).
        seed: fixes initialisation, windows and spans.
        seq_len: window length in characters (at most ``config.max_len``).
        callback: ``callback(step, val_loss)`` after each evaluation; ``False`` stops training.
            With several ranks it runs on rank 0, whose answer every rank follows.
        tokenizer: reuse a tokenizer (default: built from ``text``).
        val_fraction: tail of ``text`` held out for validation.
        eval_every: steps between evaluations (also evaluated at step 0 and at the end).
        eval_batches: validation batches of ``batch_size`` windows.
        mask_ratio: fraction of tokens blanked out.
        poisson_lambda: mean span length.
        generation_ratio: fraction of windows with the suffix objective (teaches ``generate``).
        weight_decay: AdamW weight decay.
        warmup: warm-up steps (default: 5% of ``steps``).
        grad_clip: gradient-norm clip.
        world_size: data-parallel ranks (torch DDP; see :mod:`openautoglm.glm.distributed`).
            Inside a torch.distributed process group of that size (a gang task's ``gang``),
            this call is one rank of it; otherwise it starts ``world_size - 1`` more local
            processes (gloo on 127.0.0.1) and returns rank 0's result. Same seed and global
            batch: the same loss curve as ``world_size=1`` (dropout aside).

    Returns:
        ``(model, tokenizer, history)``; the model is in eval mode. ``history`` holds one dict
        per evaluation: ``step``, ``train_loss`` (mean since the previous record; at step 0 the
        loss of the first training batch before any update), ``val_loss`` and ``elapsed`` (s).

    Raises:
        ValueError: for bad arguments, or a text too short for ``seq_len``.
    """
    _check_train_args(steps, batch_size, lr, seq_len, eval_every)
    check_world_size(world_size, batch_size)
    if world_size > 1 and not dist.is_initialized():
        kwargs = {k: v for k, v in locals().items() if k in _TRAIN_ARGS and k != "world_size"}
        return launch(train, world_size, kwargs)
    ranks = Ranks(world_size, batch_size)
    tokenizer, config, train_ids, val_text = _prepare(config, text, tokenizer, seq_len,
                                                      val_fraction)
    model = _init_model(config, seed, ranks.rank)
    mask_kw = {"mask_ratio": mask_ratio, "poisson_lambda": poisson_lambda,
               "generation_ratio": generation_ratio}
    val = _eval_batches(model, tokenizer, val_text, seq_len, batch_size, eval_batches, seed + 1,
                        **mask_kw)
    next_batch = _sampler(train_ids, tokenizer, batch_size, seq_len, seed, mask_kw)
    loop = _Loop(model, ranks, _optimizer(model, lr, weight_decay, steps, warmup), grad_clip)
    history = loop.run(next_batch, val, steps, eval_every, callback if ranks.rank == 0 else None)
    model.eval()
    return model, tokenizer, history


def _prepare(config: GLMConfig | Mapping[str, Any], text: str, tokenizer: CharTokenizer | None,
             seq_len: int, val_fraction: float
             ) -> tuple[CharTokenizer, GLMConfig, np.ndarray, str]:
    """The tokenizer, the config, the training ids and the validation text; or a ValueError."""
    tokenizer = CharTokenizer.from_text(text) if tokenizer is None else tokenizer
    config = _resolve_config(config, tokenizer)
    if seq_len > config.max_len:
        raise ValueError(f"seq_len={seq_len} exceeds GLMConfig.max_len={config.max_len}")
    train_text, val_text = split_text(text, val_fraction)
    train_ids = np.asarray(tokenizer.encode(train_text))
    if len(train_ids) < seq_len or len(val_text) < 2:
        raise ValueError(
            f"text of {len(text)} characters is too short for seq_len={seq_len}: "
            "use more text or a smaller seq_len"
        )
    return tokenizer, config, train_ids, val_text


def _sampler(train_ids: np.ndarray, tokenizer: CharTokenizer, batch_size: int, seq_len: int,
             seed: int, mask_kw: dict[str, float]) -> Callable[[], dict[str, torch.Tensor]]:
    """Seeded global training batches: every rank draws the same sequence."""
    rng = np.random.default_rng(seed)

    def next_batch() -> dict[str, torch.Tensor]:
        windows = sample_windows(train_ids, batch_size, seq_len, rng)
        return make_batch(windows, tokenizer, rng, **mask_kw)

    return next_batch


def _init_model(config: GLMConfig, seed: int, rank: int) -> GLMModel:
    with _INIT_LOCK:
        # torch's generator is global: hold it while seeding and initialising, so trainings
        # running in threads (Dask workers) still get the initialisation their seed names.
        torch.manual_seed(seed)
        model = GLMModel(config)
        if rank:  # dropout masks differ per rank anyway: keep them reproducible
            torch.manual_seed(seed * 1009 + rank)
    return model


_TRAIN_ARGS = frozenset(inspect.signature(train).parameters)


def _optimizer(model: GLMModel, lr: float, weight_decay: float, steps: int,
               warmup: int | None) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (no decay on biases and norms) and its warm-up + cosine schedule."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98),
    )
    warmup = max(1, steps // 20) if warmup is None else max(1, warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, steps, warmup)
    )
    return optimizer, scheduler


class _Loop:
    """The optimisation loop of :func:`train`, on one rank or several."""

    def __init__(self, model: GLMModel, ranks: Ranks,
                 optim: tuple[torch.optim.Optimizer, Any], grad_clip: float) -> None:
        self.model, self.ranks = model, ranks
        self.net = ranks.wrap(model)
        self.optimizer, self.scheduler = optim
        self.grad_clip = grad_clip

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One update on the global ``batch``; returns its loss (mean per Part B token)."""
        part = self.ranks.part(batch)
        logits = self.net(part["input_ids"], part["position_ids"], part["attention_mask"])
        flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               part["targets"].clamp(min=0).reshape(-1), reduction="none")
        # Divided by the GLOBAL token count: the ranks' parts add up to the one-process loss
        # (and DDP's average over ranks is undone by the factor world_size).
        tokens = batch["loss_mask"].sum().to(flat.dtype).clamp(min=1.0)
        loss = (flat * part["loss_mask"].reshape(-1).to(flat.dtype)).sum() / tokens
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self.ranks.world_size if self.ranks.world_size > 1 else loss).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return self.ranks.total(loss)

    def run(self, next_batch: Callable[[], dict[str, torch.Tensor]],
            val: list[dict[str, torch.Tensor]], steps: int, eval_every: int,
            callback: Callback | None) -> list[dict[str, Any]]:
        model = self.model
        start = time.perf_counter()
        batch = next_batch()
        history = [{"step": 0, "train_loss": _batches_loss(model, [batch]),
                    "val_loss": _batches_loss(model, val), "elapsed": 0.0}]
        stop = self.ranks.agree(callback is not None and callback(0, history[0]["val_loss"]) is False)
        model.train()
        losses: list[float] = []
        step = 0
        while not stop and step < steps:
            losses.append(self.step(batch))
            step += 1
            if step % eval_every == 0 or step == steps:
                record = {"step": step, "train_loss": float(np.mean(losses)),
                          "val_loss": _batches_loss(model, val),
                          "elapsed": time.perf_counter() - start}
                history.append(record)
                losses = []
                stop = self.ranks.agree(
                    callback is not None and callback(step, record["val_loss"]) is False)
            if step < steps:
                batch = next_batch()
        return history
