"""Weights-only checkpoints: a safetensors file of tensors and a JSON file of metadata.

``save_glm``/``load_glm`` write and read one file (``.pt``/``.safetensors``) or a checkpoint
directory, never a pickle of objects.

``save_checkpoint("run/glm", ...)`` writes ``run/glm/model.safetensors`` and
``run/glm/config.json`` (the :class:`GLMConfig`, the tokenizer's vocabulary and a format
version). Loading never unpickles anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from openautoglm._validate import InputError, load_json, read_text, short
from openautoglm._weights import bounded_ints, check_shapes, safetensors_shapes, torch_load

from .model import GLMConfig, GLMModel
from .tokenizer import CharTokenizer

FORMAT = "openautoglm.glm/1"
WEIGHTS = "model.safetensors"
META = "config.json"
#: Largest value of each config field accepted from a file (far above any model trained here).
CONFIG_LIMITS = {"vocab_size": 2**20, "n_layers": 256, "hidden": 2**15, "heads": 1024,
                 "max_len": 2**20}
#: Largest config.json read (bytes).
MAX_META_BYTES = 16 * 2**20


def checked_config(config: Any, shapes: dict[str, tuple[int, ...]], where: str) -> GLMConfig:
    """A :class:`GLMConfig` from untrusted metadata, checked against the weights' shapes.

    Nothing is allocated before the config's numbers are bounded and the model it describes,
    built on the meta device, has exactly the shapes stored in the weights.

    Raises:
        InputError: naming the field or the first tensor that does not match.
    """
    fields = bounded_ints(config, CONFIG_LIMITS, where, allowed=set(GLMConfig.__dataclass_fields__))
    try:
        cfg = GLMConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: invalid model config ({str(exc)[:300]})") from None
    check_shapes(lambda: GLMModel(cfg), shapes, where)
    return cfg


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
    meta = load_json(read_text(src / META, "checkpoint config", limit=MAX_META_BYTES),
                     str(src / META))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{src / META} has format {str(found)[:80]!r}, expected {FORMAT!r}")
    config = checked_config(meta.get("config"), safetensors_shapes(src / WEIGHTS, str(src)),
                            str(src / META))
    try:
        tokenizer = CharTokenizer.from_dict(meta["tokenizer"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{src / META}: invalid tokenizer ({str(exc)[:200]})") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise InputError(f"{src / META}: the tokenizer has {tokenizer.vocab_size} tokens but "
                         f"the config says vocab_size={config.vocab_size}")
    model = GLMModel(config)
    model.load_state_dict(load_file(str(src / WEIGHTS)))
    model.eval()
    return model, tokenizer, config


def checkpoint_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``extra`` metadata stored by :func:`save_checkpoint`."""
    return json.loads((Path(path) / META).read_text(encoding="utf-8")).get("extra", {})


_EXPORT_FORMAT = "openautoglm.glm.export/1"


def save_glm(path: str | Path, model: Any, tokenizer: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write a GLM as weights plus config, never as a pickle of objects.

    ``.safetensors``: tensors, with config and tokenizer as JSON metadata. ``.pt``/``.pth``:
    ``torch.save`` of a dict holding only tensors, strings and numbers, which loads with
    ``torch.load(weights_only=True)``. Any other path: a checkpoint directory
    (``openautoglm.glm.save_checkpoint``).

    Raises:
        ValueError: a ``.pkl``/``.pickle`` path (pickles of objects are refused).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        raise ValueError(f"{path}: refusing to write a pickle (loading one can run arbitrary code); "
                         "use a .pt (tensors only), .safetensors or a directory path instead")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": _EXPORT_FORMAT, "config": model.config.to_dict(),
            "tokenizer": tokenizer.to_dict(), "extra": extra or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".safetensors":
        save_file(state, str(path), metadata={"openautoglm": json.dumps(meta)})
    elif suffix in (".pt", ".pth"):
        torch.save({"meta": json.dumps(meta), "state_dict": state}, path)
    else:
        save_checkpoint(path, model, tokenizer, extra=extra)
    return path


def load_glm(path: str | Path) -> tuple[Any, Any, Any]:
    """Load what :func:`save_glm` wrote; never unpickles objects.

    Returns:
        ``(model, tokenizer, config)``, the model in eval mode.

    Raises:
        ValueError: a pickle path, or a file that is not an openautoglm export.
        FileNotFoundError: nothing at ``path``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        raise ValueError(f"{path}: pickled models are not loaded; export weights as .pt/.safetensors")
    if path.is_dir():
        return load_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}")
    state: Any = None
    if suffix == ".safetensors":
        shapes = safetensors_shapes(path, str(path))  # the header only: nothing loaded yet
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("openautoglm")
    elif suffix in (".pt", ".pth"):
        blob = torch_load(path, "an openautoglm GLM export",
                          "export one with openautoglm.models.save_glm")
        raw = blob.get("meta") if isinstance(blob, dict) else None
        state = blob.get("state_dict") if isinstance(blob, dict) else None
        if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
            raise InputError(f"{path} is not an openautoglm GLM export (no state_dict of tensors)")
        shapes = {k: tuple(v.shape) for k, v in state.items()}
    else:
        raise InputError(f"{path}: unknown model file type; use .pt, .safetensors or a checkpoint directory")
    meta = load_json(raw, f"{path} metadata") if isinstance(raw, str) and raw else {}
    if not isinstance(meta, dict) or meta.get("format") != _EXPORT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(f"{path} is not an openautoglm GLM export (format {short(found)})")
    config = checked_config(meta.get("config"), shapes, str(path))
    if state is None:
        state = load_file(str(path))
    model = GLMModel(config)
    model.load_state_dict(state)
    model.eval()
    return model, CharTokenizer.from_dict(meta["tokenizer"]), config
