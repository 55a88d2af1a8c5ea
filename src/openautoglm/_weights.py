"""Loading weights from files without trusting them: check shapes before allocating anything.

A checkpoint is a config (JSON) plus tensors. Building the model from the config first and then
loading the tensors lets a 288-byte ``config.json`` ask for a 131 GB embedding. Here the model
is first built on PyTorch's ``meta`` device (shapes only, no memory), its parameter shapes are
compared with the tensors' shapes read from the file's header, and only a config that matches
the weights exactly is built for real. Config numbers are bounded before even the meta build
(a billion layers would take forever to construct, memory or not).

``torch.load`` of something that is not a weights file raises an ``UnpicklingError`` whose
message suggests ``weights_only=False`` (which would run the file's code); :func:`torch_load`
turns that into our own error without the suggestion.

Torch is imported inside the functions: this module is imported by light modules.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from openautoglm._validate import InputError, short

__all__ = ["bounded_ints", "check_shapes", "safetensors_shapes", "torch_load"]


def bounded_ints(config: Any, limits: Mapping[str, int], where: str,
                 allowed: set[str] | None = None) -> dict[str, Any]:
    """Check a config mapping: known keys only, listed ints in ``[1, limit]``.

    Raises:
        InputError: naming ``where``, the key, the value and the limit.
    """
    if not isinstance(config, Mapping):
        raise InputError(f"{where}: the model config must be a mapping, got "
                         f"{type(config).__name__} {short(config)}")
    if allowed is not None:
        unknown = sorted(map(str, set(config) - allowed))
        if unknown:
            raise InputError(f"{where}: unknown config field(s) {short(unknown)}; the fields "
                             f"are {sorted(allowed)}")
    for key, limit in limits.items():
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise InputError(f"{where}: config {key} must be an int in [1, {limit}], got "
                             f"{short(value)}; the file is damaged or not written by openautoglm")
    return dict(config)


def check_shapes(build: Callable[[], Any], shapes: Mapping[str, tuple[int, ...]],
                 where: str) -> None:
    """Build the module on the meta device and compare its state's shapes with ``shapes``.

    Raises:
        InputError: a tensor missing, unexpected, or of another shape (the first one named).
    """
    import torch

    with torch.device("meta"):
        module = build()
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing or extra:
        raise InputError(f"{where}: the weights do not match the config (missing "
                         f"{short(missing)}, unexpected {short(extra)}); the config or the "
                         "weights file was changed or belongs to another model")
    for key, shape in expected.items():
        if tuple(shapes[key]) != shape:
            raise InputError(f"{where}: the config makes {key} of shape {shape} but the "
                             f"weights hold {tuple(shapes[key])}; the config does not belong "
                             "to these weights")


def safetensors_shapes(path: str | os.PathLike[str], where: str) -> dict[str, tuple[int, ...]]:
    """The tensors' shapes from a safetensors header (nothing loaded)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{where}: {str(path)!r} is not a readable safetensors file "
                         f"({short(str(exc), 200)})") from None


def torch_load(path: Path, what: str, fix: str) -> Any:
    """``torch.load(weights_only=True)`` with our own error for a file that is not weights."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        raise InputError(f"{str(path)!r} is not {what} (torch could not read it as plain "
                         f"tensors: {reason}); {fix}. Files holding code are never loaded."
                         ) from None
