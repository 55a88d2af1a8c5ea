"""The learned scheduler's weights file: :func:`save_model`/:func:`load_model`, and
``DEFAULT_WEIGHTS`` (``gnn.pt`` beside this module); :func:`untrained_model`, the control.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from openautoglm._validate import InputError, short
from openautoglm._weights import check_shapes, torch_load
from openautoglm.schedulers.gnn.decode import EDGE_FEATURE_NAMES
from openautoglm.schedulers.gnn.features import FEATURE_NAMES

if TYPE_CHECKING:
    from openautoglm.schedulers.gnn.model import SchedulerGCN

__all__ = ["DEFAULT_WEIGHTS", "load_model", "save_model", "untrained_model"]


#: The shipped weights (trained by ``openautoglm train-scheduler``).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "gnn.pt"


def untrained_model(hidden: int = 32, seed: int = 0) -> SchedulerGCN:
    """The control: a freshly initialised model whose outputs reduce to HEFT's plan.

    Its priority head's last layer is zero (priority = normalised upward rank: HEFT's order),
    its edge head's last layer is zero (probability 1/2 on every edge: nothing merged) and its
    share head outputs 1 (every core). The trunk is initialised from ``seed`` without touching
    the global torch random state.

    Example:
        >>> m = untrained_model()
        >>> m.edge_channels == len(EDGE_FEATURE_NAMES), m.training
        (True, False)
    """
    import torch

    from openautoglm.schedulers.gnn.model import SchedulerGCN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SchedulerGCN(len(FEATURE_NAMES), hidden, FEATURE_NAMES.index("rank_u"),
                             edge_channels=len(EDGE_FEATURE_NAMES))
    last = model.share_head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(40.0)  # sigmoid(40) is 1.0 in float32: full shares
    return model.eval()


def load_model(path: str | Path | None = None) -> SchedulerGCN:
    """Load a trained :class:`~openautoglm.schedulers.gnn.model.SchedulerGCN` (``weights_only=True``).

    Args:
        path: A file written by :func:`openautoglm.schedulers.gnn.weights.save_model`; ``None`` loads the
            shipped weights; ``"untrained"`` gives :func:`untrained_model` (the control).

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file was trained on other features than this version computes.
    """
    if isinstance(path, str) and path == "untrained":
        return untrained_model()
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if path is None:
        return _load_cached(str(p))
    return _load(p)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> SchedulerGCN:
    return _load(Path(path))


def _load(p: Path) -> SchedulerGCN:
    from openautoglm.schedulers.gnn.model import SchedulerGCN

    if not p.is_file():
        raise FileNotFoundError(
            f"no scheduler weights at {p}; train some with `openautoglm train-scheduler --out {p}` "
            f"or pass weights=None to use the shipped ones"
        )
    fix = "train weights with `openautoglm train-scheduler` or pass weights=None"
    blob = torch_load(p, "a scheduler weights file", fix)
    if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict):
        raise InputError(f"{str(p)!r} is not a scheduler weights file (no state_dict); {fix}")
    names = tuple(blob.get("feature_names", ()))
    if names != FEATURE_NAMES:
        raise InputError(
            f"{p} was trained on features {short(names)} but this version computes "
            f"{FEATURE_NAMES}; retrain with `openautoglm train-scheduler`"
        )
    edge_names = tuple(blob.get("edge_feature_names", ()))
    if edge_names and edge_names != EDGE_FEATURE_NAMES:
        raise InputError(
            f"{p} was trained on edge features {short(edge_names)} but this version computes "
            f"{EDGE_FEATURE_NAMES}; retrain with `openautoglm train-scheduler`"
        )
    hidden = blob.get("hidden_channels")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= 4096:
        raise InputError(f"{p}: hidden_channels must be an int in [1, 4096], got {short(hidden)}; {fix}")
    args = (len(FEATURE_NAMES), hidden, blob.get("base_feature"), float(blob.get("min_share", 0.05)))
    # Shapes checked on the meta device before any parameter is allocated.
    check_shapes(lambda: SchedulerGCN(*args, edge_channels=len(edge_names)),
                 {k: tuple(getattr(v, "shape", ())) for k, v in blob["state_dict"].items()}, str(p))
    model = SchedulerGCN(*args, edge_channels=len(edge_names))
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def save_model(model: SchedulerGCN, path: str | Path, meta: dict[str, object] | None = None) -> None:
    """Write a model's weights in the format :func:`openautoglm.schedulers.gnn.load_model` reads.

    Args:
        model: The model.
        path: Destination file (parent folders are created).
        meta: Extra plain values (ints, floats, strings) stored beside the weights.
    """
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "feature_names": list(FEATURE_NAMES),
        "edge_feature_names": list(EDGE_FEATURE_NAMES) if model.edge_channels else [],
        "hidden_channels": model.hidden_channels,
        "base_feature": model.base_feature,
        "min_share": model.min_share,
        "meta": dict(meta or {}),
    }
    torch.save(blob, p)
