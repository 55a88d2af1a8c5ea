"""One AutoTrainer trial's steps, as pipeline tasks: train a GLM, evaluate it, report; and
:func:`trial_cost`, the cost hint a trial gives the scheduler.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openautoglm.auto.autotrain.config import AutoTrainConfig
from openautoglm.auto.evaluate import score

__all__ = ["trial_cost"]


_METRIC_KEY = {"bleu": "bleu", "rouge-1": "rouge1", "rouge-2": "rouge2", "rouge-l": "rougeL"}


def trial_cost(params: dict[str, Any], seq_len: int, vocab: int = 100) -> float:
    """Cost hint in seconds for training one trial on one core.

    About 2.5 ms per step plus 1 ms per layer per step (Python and small kernels), plus
    2.8e-10 s per parameter per token (a tiny model's matrix products). Fitted to 35 trials
    (1-3 layers, width 16-64, batch 4-16, 32-64 tokens) on an idle core of the 2-core
    development machine: median error 16%. The plan only needs the trials' relative costs
    right; :class:`~openautoglm.history.History` records the real times.

    >>> round(trial_cost({"n_layers": 2, "hidden": 64, "steps": 100, "batch_size": 8}, 64), 2)
    1.95
    """
    layers, hidden = int(params["n_layers"]), int(params["hidden"])
    n_params = 12 * layers * hidden ** 2 + vocab * hidden
    per_step = 0.0025 + 0.001 * layers + 2.8e-10 * n_params * int(params["batch_size"]) * seq_len
    return float(int(params["steps"]) * per_step)


@dataclass
class _Trial:
    number: int
    params: dict[str, Any]
    handle: Any  # the optuna Trial


#: Optuna trials of running waves in this process, by key; a job finds its trial here when it
#: runs in this process (threads of an in-process cluster), so pruning reports reach the study.
_LIVE_TRIALS: dict[str, Any] = {}


@dataclass
class _TrialJob:
    """The three steps of one trial, picklable (Dask serialises the graph even in-process).

    It carries the configuration and the trial's parameters, not the trainer (which holds an
    engine and a study). Pruning reports go to the live trial of this process, or, on another
    process or machine, to the study's RDB storage; with neither, the trial is not pruned.
    """

    config: AutoTrainConfig
    number: int
    params: dict[str, Any]
    live_key: str
    storage_url: str | None
    study_name: str
    trial_id: int

    def _trial(self) -> Any:
        live = _LIVE_TRIALS.get(self.live_key)
        if live is not None or self.storage_url is None:
            return live
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage_url)
        return optuna.trial.Trial(study, self.trial_id)

    def prepare(self, text: str) -> dict[str, Any]:
        """Split the corpus and cut the held-out examples for text metrics."""
        from openautoglm import glm

        _, val_text = glm.split_text(text, self.config.data.val_fraction)
        return {"text": text, "val_text": val_text, "examples": self._examples(val_text)}

    def _examples(self, val: str) -> list[tuple[str, str]]:
        """Held-out (input, reference) pairs for text metrics, at fixed positions."""
        e = self.config.evaluation
        span = e.prompt_chars + e.target_chars
        if len(val) <= span:
            raise ValueError(f"validation text of {len(val)} characters is too short for "
                             f"evaluation.prompt_chars + target_chars = {span}")
        starts = np.linspace(0, len(val) - span - 1, e.examples).astype(int)
        if self.config.task == "text-generation":
            return [(val[s:s + e.prompt_chars], val[s + e.prompt_chars:s + span]) for s in starts]
        half = e.prompt_chars // 2
        return [(val[s:s + half] + "[MASK]" + val[s + half + e.target_chars:s + span],
                 val[s + half:s + half + e.target_chars]) for s in starts]

    def train(self, data: dict[str, Any], *, gang: Any = None) -> dict[str, Any]:
        """Train with pruning checks at every evaluation; errors end this trial only.

        As a gang task (``training.world_size > 1``) each rank runs this with its ``gang``; the
        training is torch DDP across them, and rank 0's result is the trial's.
        """
        from openautoglm import glm

        p, tr = self.params, self.config.training
        sign = 1.0 if self.config.direction == "minimize" else -1.0
        trial = self._trial()
        state = {"pruned": False, "steps": 0}

        def report(step: int, val_loss: float) -> bool:
            state["steps"] = step
            if not math.isfinite(val_loss):
                return False
            if step == 0 or trial is None:
                return True
            trial.report(sign * val_loss, step)
            if trial.should_prune():
                state["pruned"] = True
                return False
            return True

        import torch

        # Worker processes start with torch's default threads: hold them to the worker's share.
        if torch.get_num_threads() > self.config.cluster.threads_per_worker:
            torch.set_num_threads(self.config.cluster.threads_per_worker)
        start = time.perf_counter()
        try:
            model, tokenizer, hist = glm.train(
                {"n_layers": p["n_layers"], "hidden": p["hidden"], "heads": p["heads"],
                 "max_len": self.config.model_space.max_len, "dropout": float(p["dropout"])},
                data["text"], steps=p["steps"], batch_size=p["batch_size"], lr=float(p["lr"]),
                seed=self.config.search.seed, seq_len=tr.seq_len, callback=report,
                val_fraction=self.config.data.val_fraction, eval_every=tr.eval_every,
                world_size=1 if gang is None else gang.world_size)
        except Exception as err:  # noqa: BLE001 - one bad trial must not end the wave
            return {"error": f"{type(err).__name__}: {err}"}
        return {"model": model, "tokenizer": tokenizer, "history": hist, "data": data,
                "pruned": state["pruned"], "steps_run": state["steps"],
                "train_seconds": time.perf_counter() - start}

    def evaluate(self, trained: dict[str, Any]) -> dict[str, Any]:
        """The metric on held-out text; saves the weights of a finished trial."""
        from openautoglm import glm
        from openautoglm.glm.checkpoint import save_glm

        out = {k: trained[k] for k in ("pruned", "error", "train_seconds", "steps_run") if k in trained}
        if trained.get("error") or trained.get("pruned"):
            return out
        model, tok, data = trained["model"], trained["tokenizer"], trained["data"]
        start = time.perf_counter()
        try:
            if self.config.metric == "loss":
                value = glm.evaluate(model, tok, data["val_text"], seq_len=self.config.training.seq_len,
                                     batch_size=8, n_batches=4, seed=self.config.search.seed)["loss"]
            else:
                value, out["sample"] = self._text_metric(model, tok, data["examples"])
        except Exception as err:  # noqa: BLE001
            return {**out, "error": f"{type(err).__name__}: {err}"}
        if not math.isfinite(value):
            return {**out, "error": f"metric is {value}"}
        save_glm(Path(self.config.output_dir) / "trials" / f"trial-{self.number}.safetensors", model, tok,
                 extra={"params": self.params, "value": value})
        out.update(value=float(value), seconds=out.get("train_seconds", 0.0) + time.perf_counter() - start)
        return out

    def _text_metric(self, model: Any, tok: Any, examples: list[tuple[str, str]]) -> tuple[float, list[str]]:
        """The metric over ``examples`` and the first (output, reference) pair, for messages."""
        from openautoglm import glm

        e = self.config.evaluation
        if self.config.task == "text-generation":
            hyps = glm.generate_batch(model, tok, [x for x, _ in examples], max_new_tokens=e.target_chars)
        else:
            half = e.prompt_chars // 2
            hyps = []
            for text, _ in examples:
                filled = glm.fill_blank(model, tok, text, max_new_tokens=e.target_chars)
                right = len(text) - len(text.split("[MASK]", 1)[0]) - len("[MASK]")
                hyps.append(filled[half:len(filled) - right] if right else filled[half:])
        metric = _METRIC_KEY[self.config.metric]
        return score(hyps, [r for _, r in examples], metrics=[metric])[metric], [hyps[0], examples[0][1]]
