"""The AutoTrainer's results: one row per trial, and the search plotted trial by trial.

Tests: ``tests/auto/test_autotrain.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openautoglm.auto.autotrain.config import AutoTrainConfig

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["results_table", "plot_search"]


def results_table(study: optuna.Study, config: AutoTrainConfig) -> pd.DataFrame:
    """One row per trial: ``trial``, each parameter, ``state``, the metric, ``seconds``."""
    import pandas as pd

    space = config.search_space()
    rows = []
    for t in study.get_trials(deepcopy=False):
        params = {**{k: v for k, v in t.user_attrs.items() if k in space}, **t.params}
        rows.append({"trial": t.number, **params, "state": t.state.name.lower(),
                     config.metric: t.value, "seconds": t.user_attrs.get("seconds")})
    columns = ["trial", *space, "state", config.metric, "seconds"]
    return pd.DataFrame(rows, columns=columns)


def plot_search(df: pd.DataFrame, config: AutoTrainConfig, path: Path) -> Path:
    """Plot each trial's metric (``df`` from :func:`results_table`) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    m = config.metric
    done = df[df["state"] == "complete"]
    ax.scatter(done["trial"], done[m], label="complete", color="tab:blue")
    pruned = df[df["state"] == "pruned"]
    if len(pruned):
        ax.scatter(pruned["trial"], [done[m].max() if len(done) else 0] * len(pruned), marker="x",
                   color="tab:red", label="pruned")
    if len(done):
        best = done[m].cummin() if config.direction == "minimize" else done[m].cummax()
        ax.step(done["trial"], best, where="post", color="black", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(m)
    ax.set_title(f"AutoTrainer search ({config.search.sampler}, {config.cluster.policy})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
