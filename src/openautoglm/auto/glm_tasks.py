"""The GLM's training, evaluation and inference as :class:`~openautoglm.pipeline.Task`\\ s.

:func:`glm_pipeline` builds this DAG (keys on the edges; ``prefix`` defaults to ``"glm"``)::

    glm_corpus --glm_text--> glm_train --glm_model--+--> glm_evaluate   (reads glm_text too)
                                                    +--> glm_generate
                                                    +--> glm_fill_blank
                                                    +--> glm_save       (with checkpoint_dir)

Every task carries a cost hint in seconds (:func:`glm_cost`), so schedulers plan the slow
training before the quick inference tasks and run the three consumers side by side. The hints
come from a line fitted to one-thread step times on a 2-core machine: a fixed overhead per
forward pass plus a per-token term that grows with the layers, the width and the sequence.
:class:`~openautoglm.history.History` refines them from real runs.

Every task function is a module-level function bound with :func:`functools.partial`, so Dask
can pickle it to a worker process; the model travels between tasks as a :class:`TrainedGLM`.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openautoglm.glm.checkpoint import save_checkpoint
from openautoglm.glm.data import load_corpus, split_text
from openautoglm.glm.infer import fill_blank, generate_batch
from openautoglm.glm.model import GLMConfig, GLMModel
from openautoglm.glm.tokenizer import CharTokenizer
from openautoglm.glm.train import evaluate, train
from openautoglm.pipeline import Pipeline, Task

__all__ = ["glm_pipeline"]

#: Seconds of fixed overhead per training step, per batched forward pass, per decoded token.
STEP_OVERHEAD_S = 0.03
FORWARD_OVERHEAD_S = 0.01
DECODE_OVERHEAD_S = 5e-4
#: Seconds per unit of :func:`_work_per_token` in a training step (forward+backward, 1 thread).
TRAIN_S_PER_WORK = 1.5e-10
#: Bytes per second assumed when turning a model's size into an edge ``size`` (transfer seconds).
TRANSFER_BYTES_PER_S = 1e8

DEFAULT_PROMPTS = ("The return statement", "A class definition")
DEFAULT_BLANKS = ("The [MASK] statement is used to leave a function.",)


@dataclass
class TrainedGLM:
    """A trained model with its tokenizer and training history (the ``glm_model`` key)."""

    model: GLMModel
    tokenizer: CharTokenizer
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def config(self) -> GLMConfig:
        """The model's :class:`GLMConfig`."""
        return self.model.config


def _work_per_token(config: GLMConfig, length: int) -> float:
    """Multiply-adds per token of a forward pass, up to a constant (weights + attention + head)."""
    h = config.hidden
    return config.n_layers * (12 * h * h + 2 * length * h) + config.vocab_size * h


def glm_cost(
    config: GLMConfig | Mapping[str, Any],
    kind: str,
    *,
    steps: int = 1,
    batch_size: int = 1,
    seq_len: int = 64,
    n_batches: int = 1,
    n_prompts: int = 1,
    max_new_tokens: int = 32,
) -> float:
    """Estimated seconds for a GLM task on a speed-1 worker (one core).

    Args:
        config: the model's config (a dict without ``vocab_size`` assumes 110 characters).
        kind: ``"train"`` (``steps`` of ``batch_size`` x ``seq_len``), ``"evaluate"``
            (``n_batches`` forward passes) or ``"infer"`` (``n_prompts`` decoded one at a time
            for up to ``max_new_tokens`` each).

    Returns:
        Seconds (a planning hint, not a promise).

    Raises:
        ValueError: for an unknown ``kind``.

    Example:
        >>> cfg = GLMConfig(vocab_size=108, n_layers=2, hidden=64)
        >>> train_s = glm_cost(cfg, "train", steps=275, batch_size=16)
        >>> train_s > glm_cost(cfg, "evaluate", n_batches=4) > glm_cost(cfg, "infer")
        True
    """
    if isinstance(config, Mapping):
        config = GLMConfig(**{"vocab_size": 110, **config})
    length = int(seq_len * 1.3)  # Part B adds a [sop] per span: about 30% more positions
    work = _work_per_token(config, length)
    forward = TRAIN_S_PER_WORK / 3 * work  # seconds per token of a forward pass
    if kind == "train":
        return steps * (STEP_OVERHEAD_S + TRAIN_S_PER_WORK * batch_size * length * work)
    if kind == "evaluate":
        return n_batches * (FORWARD_OVERHEAD_S + forward * batch_size * length)
    if kind == "infer":
        # The prompt once, then one token per step over the key/value cache.
        prefill = FORWARD_OVERHEAD_S + forward * length
        return n_prompts * (prefill + max_new_tokens * (DECODE_OVERHEAD_S + forward))
    raise ValueError(f"unknown GLM task kind {kind!r}; use 'train', 'evaluate' or 'infer'")


def _model_bytes(config: GLMConfig) -> int:
    h = config.hidden
    embeddings = (config.vocab_size + 2 * config.max_len + 1) * h
    return 4 * (embeddings + config.n_layers * (12 * h * h + 13 * h))


# --- task functions (module level, so Dask can pickle them)

def corpus_task(name: str = "pydoc", max_chars: int | None = 200_000) -> str:
    """Loads the corpus (a task with no inputs)."""
    return load_corpus(name, max_chars)


def train_task(text: str, config: dict[str, Any], train_kw: dict[str, Any]) -> TrainedGLM:
    """Trains a GLM on ``text``; ``train_kw`` are :func:`~openautoglm.glm.train` arguments."""
    model, tokenizer, history = train(config, text, **train_kw)
    return TrainedGLM(model, tokenizer, history)


def evaluate_task(trained: TrainedGLM, text: str, val_fraction: float, seq_len: int,
                  seed: int) -> dict[str, float]:
    """Loss and perplexity on the validation tail of ``text`` (the part training held out)."""
    _, val = split_text(text, val_fraction)
    return evaluate(trained.model, trained.tokenizer, val, seq_len=min(seq_len, len(val)),
                    seed=seed)


def generate_task(trained: TrainedGLM, prompts: Sequence[str],
                  max_new_tokens: int) -> dict[str, str]:
    """Greedy continuations, ``{prompt: continuation}``."""
    outs = generate_batch(trained.model, trained.tokenizer, list(prompts), max_new_tokens)
    return dict(zip(prompts, outs))


def fill_blank_task(trained: TrainedGLM, texts: Sequence[str],
                    max_new_tokens: int) -> dict[str, str]:
    """Each text with its blanks filled, ``{text: filled}``."""
    return {t: fill_blank(trained.model, trained.tokenizer, t, max_new_tokens) for t in texts}


def save_task(trained: TrainedGLM, path: str) -> str:
    """Writes a weights-only checkpoint to ``path`` and returns the path."""
    save_checkpoint(path, trained.model, trained.tokenizer, extra={"history": trained.history})
    return str(path)


def glm_tasks(
    config: GLMConfig | Mapping[str, Any] | None = None,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    seq_len: int = 64,
    *,
    corpus: str = "pydoc",
    max_chars: int | None = 200_000,
    text_key: str | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    blanks: Sequence[str] = DEFAULT_BLANKS,
    max_new_tokens: int | None = None,
    checkpoint_dir: str | None = None,
    prefix: str = "glm",
    val_fraction: float = 0.1,
    **train_kw: Any,
) -> list[Task]:
    """The GLM's tasks: corpus -> train -> (evaluate, generate, fill blanks[, save]).

    Args:
        config: a :class:`GLMConfig` or a dict of its fields without ``vocab_size`` (default:
            2 layers, hidden 64, 4 heads, ``max_len`` 128).
        steps, batch_size, lr, seed, seq_len: training arguments (see
            :func:`~openautoglm.glm.train`).
        corpus, max_chars: the corpus the first task loads.
        text_key: read the text from this pipeline input key instead of a corpus task.
        prompts: prompts for the generate task (none: no such task).
        blanks: texts with ``[MASK]`` for the fill-blank task (none: no such task).
        max_new_tokens: decoding budget per prompt or blank (default: 32, at most
            ``max_len - 1``).
        checkpoint_dir: add a task that saves the model there.
        prefix: prefix of task names and keys, so two GLM pipelines can share a graph.
        val_fraction: held-out tail of the text (evaluated by the evaluate task).
        **train_kw: more :func:`~openautoglm.glm.train` keyword arguments (e.g. ``eval_every``).

    Returns:
        The tasks, in dependency order.

    Raises:
        ValueError: for bad arguments (checked before any task runs), e.g. a blank text
            without ``[MASK]``.

    Example:
        >>> [t.name for t in glm_tasks(steps=10, prompts=["Hi"], blanks=[])]
        ['glm_corpus', 'glm_train', 'glm_evaluate', 'glm_generate']
    """
    cfg_dict, shape, max_new_tokens = _checked(config, seq_len, max_new_tokens, prompts, blanks)
    text = text_key or f"{prefix}_text"
    model_key = f"{prefix}_model"
    train_kw = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                "seq_len": seq_len, "val_fraction": val_fraction, **train_kw}
    model_size = _model_bytes(shape) / TRANSFER_BYTES_PER_S
    tasks: list[Task] = []
    if text_key is None:
        tasks.append(Task(f"{prefix}_corpus", functools.partial(corpus_task, corpus, max_chars),
                          output_key=text, cost=0.05,
                          output_size=(max_chars or 465_000) / TRANSFER_BYTES_PER_S))
    tasks.append(Task(
        f"{prefix}_train", functools.partial(train_task, config=cfg_dict, train_kw=train_kw),
        input_key=text, output_key=model_key, output_size=model_size,
        cost=glm_cost(shape, "train", steps=steps, batch_size=batch_size, seq_len=seq_len),
    ))
    tasks.append(Task(
        f"{prefix}_evaluate",
        functools.partial(evaluate_task, val_fraction=val_fraction, seq_len=seq_len, seed=seed),
        input_keys=[model_key, text], output_key=f"{prefix}_metrics",
        cost=glm_cost(shape, "evaluate", n_batches=4, batch_size=16, seq_len=seq_len),
    ))
    tasks += _inference_tasks(prefix, model_key, shape, prompts, blanks, max_new_tokens, seq_len)
    if checkpoint_dir is not None:
        tasks.append(Task(f"{prefix}_save", functools.partial(save_task, path=str(checkpoint_dir)),
                          input_key=model_key, output_key=f"{prefix}_checkpoint", cost=0.05))
    return tasks


def _checked(config: GLMConfig | Mapping[str, Any] | None, seq_len: int,
             max_new_tokens: int | None, prompts: Sequence[str], blanks: Sequence[str]
             ) -> tuple[dict[str, Any], GLMConfig, int]:
    """:func:`glm_tasks`' arguments checked: ``(config as a dict, its GLMConfig, max_new_tokens)``."""
    config = {"n_layers": 2, "hidden": 64, "heads": 4, "max_len": 128} if config is None else config
    cfg_dict = config.to_dict() if isinstance(config, GLMConfig) else dict(config)
    shape = GLMConfig(**{"vocab_size": 110, **cfg_dict})  # validates the fields now
    if seq_len > shape.max_len:
        raise ValueError(f"seq_len={seq_len} exceeds max_len={shape.max_len}")
    if max_new_tokens is None:
        max_new_tokens = min(32, shape.max_len - 1)
    if not 1 <= max_new_tokens < shape.max_len:
        raise ValueError(
            f"max_new_tokens must be in [1, {shape.max_len - 1}], got {max_new_tokens}"
        )
    for text in blanks:
        if "[MASK]" not in text:
            raise ValueError(
                f"blank text {text!r} has no [MASK]; write e.g. 'The [MASK] statement'"
            )
    if isinstance(prompts, str) or isinstance(blanks, str):
        raise ValueError("prompts and blanks are lists of strings, not one string")
    return cfg_dict, shape, max_new_tokens


def _inference_tasks(prefix: str, model_key: str, shape: GLMConfig, prompts: Sequence[str],
                     blanks: Sequence[str], max_new_tokens: int, seq_len: int) -> list[Task]:
    """The generate and fill-blank tasks of :func:`glm_tasks` (none for an empty list)."""
    tasks: list[Task] = []
    if prompts:
        tasks.append(Task(
            f"{prefix}_generate",
            functools.partial(generate_task, prompts=tuple(prompts), max_new_tokens=max_new_tokens),
            input_key=model_key, output_key=f"{prefix}_samples",
            cost=glm_cost(shape, "infer", n_prompts=len(prompts), max_new_tokens=max_new_tokens,
                          seq_len=seq_len),
        ))
    if blanks:
        tasks.append(Task(
            f"{prefix}_fill_blank",
            functools.partial(fill_blank_task, texts=tuple(blanks), max_new_tokens=max_new_tokens),
            input_key=model_key, output_key=f"{prefix}_fills",
            cost=glm_cost(shape, "infer", n_prompts=len(blanks), max_new_tokens=max_new_tokens,
                          seq_len=seq_len),
        ))
    return tasks


def glm_pipeline(name: str = "glm", **kwargs: Any) -> Pipeline:
    """A :class:`~openautoglm.pipeline.Pipeline` of :func:`glm_tasks` (same arguments).

    Example:
        >>> p = glm_pipeline(steps=10)
        >>> g = p.compile()
        >>> g.dependents("glm_train")
        ['glm_evaluate', 'glm_generate', 'glm_fill_blank']
    """
    return Pipeline(name, glm_tasks(**kwargs))
