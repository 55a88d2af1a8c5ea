"""Weights-only checkpoints: a safetensors file of tensors and a JSON file of metadata.

``save_checkpoint("run/glm", ...)`` writes ``run/glm/model.safetensors`` and
``run/glm/config.json`` (the :class:`GLMConfig`, the tokenizer's vocabulary and a format
version). Loading never unpickles anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .model import GLMConfig, GLMModel
from .tokenizer import CharTokenizer

FORMAT = "openautoglm.glm/1"
WEIGHTS = "model.safetensors"
META = "config.json"


def save_checkpoint(
    path: str | os.PathLike[str],
    model: GLMModel,
    tokenizer: CharTokenizer,
    config: GLMConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Saves the model's weights and the metadata needed to rebuild it into directory ``path``.

    Args:
        path: a directory (created if missing).
        model: the model.
        tokenizer: its tokenizer.
        config: the model's config (default: ``model.config``); must match it.
        extra: JSON-able metadata kept alongside (e.g. training history).

    Returns:
        The directory.

    Raises:
        ValueError: if ``config`` differs from ``model.config``.
    """
    config = model.config if config is None else config
    if config != model.config:
        raise ValueError(f"config {config} does not describe the model ({model.config})")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS))
    meta = {"format": FORMAT, "config": config.to_dict(), "tokenizer": tokenizer.to_dict(),
            "extra": extra or {}}
    (out / META).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return out


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[GLMModel, CharTokenizer, GLMConfig]:
    """Loads a checkpoint written by :func:`save_checkpoint`; the model is in eval mode.

    Raises:
        FileNotFoundError: if ``path`` does not hold both files.
        ValueError: if the metadata is of another format.
    """
    src = Path(path)
    for name in (WEIGHTS, META):
        if not (src / name).is_file():
            raise FileNotFoundError(
                f"{src / name} not found: pass the directory given to save_checkpoint"
            )
    meta = json.loads((src / META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{src / META} has format {meta.get('format')!r}, expected {FORMAT!r}")
    config = GLMConfig(**meta["config"])
    tokenizer = CharTokenizer.from_dict(meta["tokenizer"])
    model = GLMModel(config)
    model.load_state_dict(load_file(str(src / WEIGHTS)))
    model.eval()
    return model, tokenizer, config


def checkpoint_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``extra`` metadata stored by :func:`save_checkpoint`."""
    return json.loads((Path(path) / META).read_text(encoding="utf-8")).get("extra", {})
