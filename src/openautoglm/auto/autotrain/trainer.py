"""AutoTrainer: Bayesian hyper-parameter search over GLM training, executed as planned task graphs.

A search runs in *waves*. Each wave asks Optuna (TPE sampler) for a batch of trials and turns
them into one pipeline, three tasks per trial::

    corpus --> prepare-3 --> train-3 --> evaluate-3
          \\--> prepare-4 --> train-4 --> evaluate-4     (trials of very different cost)

``train-N`` carries a cost hint from the model size x steps, so the engine's scheduler (HEFT,
GNN, ...) packs long and short trials onto the workers; ``cluster.policy: dask`` submits the
same tasks to Dask with no plan, ``sequential`` runs the trials one after another here.

A wave holds ``search.parallel`` trials, by default ``max(n_startup_trials, 2 x worker
threads)``: TPE draws its first ``n_startup_trials`` independently at random, so the first wave
asks for all of them at once without changing the search, and later waves are batches that TPE
keeps apart with its constant liar (running trials count as bad results). The bigger the wave,
the more the plan has to balance: longest trials first, spread over the workers.
Training reports the validation loss to Optuna every ``training.eval_every`` steps and stops
when the pruner (median) says the trial is hopeless. With an engine, per-task times go to the
:class:`~openautoglm.history.History` (``output_dir/history.sqlite``).

The study lives in Optuna storage (``search.storage``, SQLite; ``study.py``): a search that is
killed and started again keeps every finished trial, re-runs the trials that were cut off, and
runs only what is left of ``search.trials``. The results table and plot are ``results.py``. Each finished trial's weights are kept in
``output_dir/trials/`` so :meth:`AutoTrainer.export` works after a resume.

Tests: tests/auto/test_autotrain.py (the resume test kills a real search process).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openautoglm.auto.autotrain.config import AutoTrainConfig, load_config
from openautoglm.auto.autotrain.jobs import _LIVE_TRIALS, _Trial, _TrialJob, trial_cost
from openautoglm.auto.autotrain.results import plot_search, results_table
from openautoglm.auto.autotrain.study import (
    ask,
    finished,
    open_study,
    requeue_interrupted,
    tell,
    warn_if_all_zero,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from openautoglm.pipeline import Pipeline

__all__ = ["AutoTrainer"]


class AutoTrainer:
    """Bayesian search over GLM shapes and training settings (see the module docstring).

    Args:
        config_path: a YAML file in the :mod:`openautoglm.auto.autotrain.config` schema.
        config: instead of a file, a dict or an ``AutoTrainConfig``.
        engine: an :class:`~openautoglm.engine.engine.Engine` to run on (default: one built from
            the ``cluster`` section for the length of each :meth:`search`).

    Raises:
        AutoTrainConfigError: an invalid configuration, naming the field and allowed values.

    Example:
        >>> trainer = AutoTrainer(config={"search": {"trials": 4}, "metric": "loss"})
        >>> trainer.config.direction
        'minimize'
    """

    def __init__(self, config_path: str | Path | None = None, *,
                 config: dict[str, Any] | AutoTrainConfig | None = None, engine: Any = None) -> None:
        if (config_path is None) == (config is None):
            raise ValueError("give exactly one of config_path='config.yaml' or config={...}")
        self.config = load_config(config_path if config_path is not None else config)  # type: ignore[arg-type]
        self.engine = engine
        self._study: optuna.Study | None = None
        self._text: str | None = None
        self.wave_times: list[float] = []

    # --- study ---------------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (created, or loaded from ``search.storage`` to resume)."""
        if self._study is None:
            self._study = open_study(self.config)
        return self._study

    # --- search --------------------------------------------------------------------------
    def search(self, trials: int | None = None, timeout_s: float | None = None) -> pd.DataFrame:
        """Run trials until the study holds ``trials`` finished ones (or the time is up).

        Args:
            trials: total finished (complete or pruned) trials wanted in the study, resumed
                ones included; default ``search.trials``.
            timeout_s: start no new wave after this many seconds (the first wave always runs);
                default ``search.timeout_s``.

        Returns:
            The results table (see :meth:`results`).
        """
        import torch
        from optuna.trial import TrialState

        wanted = self.config.search.trials if trials is None else int(trials)
        budget = self.config.search.timeout_s if timeout_s is None else timeout_s
        requeue_interrupted(self.study)
        self.output_dir.joinpath("trials").mkdir(parents=True, exist_ok=True)
        policy = self.config.cluster.policy
        engine, owned = self._engine() if policy != "sequential" else (None, False)
        history = None
        threads = torch.get_num_threads()
        torch.set_num_threads(self.config.cluster.threads_per_worker)
        try:
            if engine is not None and policy != "dask":
                from openautoglm.history.store import History

                history = History(self.output_dir / "history.sqlite")
            start = time.perf_counter()
            while (left := wanted - finished(self.study)) > 0:
                if budget is not None and self.wave_times and time.perf_counter() - start > budget:
                    break  # the budget is checked between waves; the first always runs
                wave = [self._ask() for _ in range(min(left, self.wave_size(engine)))]
                t0 = time.perf_counter()
                try:
                    outcomes = self._run_wave(wave, engine, history)
                except BaseException:
                    # Not one trial's failure (those are caught per trial): close the wave's trials
                    # so a later search does not take them for interrupted ones.
                    for trial in wave:
                        self.study.tell(trial.handle, state=TrialState.FAIL)
                    raise
                self.wave_times.append(time.perf_counter() - t0)
                for trial, outcome in zip(wave, outcomes):
                    tell(self.study, trial, outcome)
                errors = [o["error"] for o in outcomes if o.get("error")]
                if len(errors) == len(wave):
                    # Every trial failed: the configuration, not the parameters, is at fault.
                    raise RuntimeError(f"all {len(wave)} trials of the wave failed; the first: "
                                       f"{errors[0]}. Fix the configuration (the failed trials are "
                                       "kept in the study with state FAIL and their error)")
        finally:
            torch.set_num_threads(threads)
            if history is not None:
                history.close()
            if owned:
                engine.close()
        warn_if_all_zero(self.study, self.config)
        if self.config.export is not None:
            self.export(self.config.export)
        return self.results()

    def _engine(self) -> tuple[Any, bool]:
        if self.engine is not None:
            return self.engine, False
        from openautoglm.engine.engine import Engine

        c = self.config.cluster
        if c.address:
            return Engine(address=c.address, progress=False), True
        return Engine(n_workers=c.n_workers, threads_per_worker=c.threads_per_worker,
                      processes=c.processes, dashboard=False, progress=False), True

    def wave_size(self, engine: Any = None) -> int:
        """Trials per wave: ``search.parallel``, else ``max(n_startup_trials, 2 x threads)``.

        Threads are the worker threads of ``engine`` (default: the engine given to the
        trainer), else ``cluster.n_workers x threads_per_worker``; ``sequential`` uses the same
        number, so that every policy runs the same search.
        """
        c = self.config.cluster
        threads = c.n_workers * c.threads_per_worker
        engine = engine if engine is not None else self.engine
        if engine is not None:
            threads = sum(w["nthreads"] for w in engine.workers()) or threads
        return self.config.search.wave_size(threads)

    def _ask(self) -> _Trial:
        return ask(self.study, self.config)

    # --- one wave as a pipeline ----------------------------------------------------------
    def _corpus(self) -> str:
        if self._text is None:
            d = self.config.data
            if d.path is not None:
                text = Path(d.path).expanduser().read_text(encoding="utf-8")
                self._text = text[: d.max_chars] if d.max_chars else text
            else:
                from openautoglm import glm

                self._text = glm.load_corpus(d.corpus or "pydoc", max_chars=d.max_chars)
        return self._text

    def wave_pipeline(self, wave: list[_Trial]) -> Pipeline:
        """The pipeline of one wave: ``prepare-N -> train-N -> evaluate-N`` per trial."""
        from openautoglm.pipeline import Pipeline, Task

        seq_len = self.config.training.seq_len
        tasks = []
        for t in wave:
            n, job = t.number, self._job(t)
            tasks += [
                Task(f"prepare-{n}", func=job.prepare, input_key="corpus", output_key=f"data-{n}", cost=0.05),
                Task(f"train-{n}", func=job.train, input_key=f"data-{n}", output_key=f"model-{n}",
                     cost=trial_cost(t.params, seq_len), gang=self.config.training.world_size),
                Task(f"evaluate-{n}", func=job.evaluate, input_key=f"model-{n}",
                     output_key=f"outcome-{n}", cost=0.05 if self.config.metric == "loss" else 1.0),
            ]
        return Pipeline("autotrain-wave", tasks)

    def _job(self, trial: _Trial) -> _TrialJob:
        storage = self.study._storage
        url = getattr(storage, "url", None)
        key = f"{id(self.study)}:{trial.number}"
        _LIVE_TRIALS[key] = trial.handle
        return _TrialJob(self.config, trial.number, dict(trial.params), key,
                         url, self.study.study_name, trial.handle._trial_id)

    def _run_wave(self, wave: list[_Trial], engine: Any, history: Any) -> list[dict[str, Any]]:
        inputs = {"corpus": self._corpus()}
        policy = self.config.cluster.policy
        try:
            pipeline = self.wave_pipeline(wave)
            if policy == "sequential":
                values = pipeline.run(**inputs)
            elif policy == "dask":
                values = _run_plain_dask(engine.client, pipeline, inputs)
            else:
                values = engine.run(pipeline, policy=policy, inputs=inputs, history=history)
            return [values[f"outcome-{t.number}"] for t in wave]
        finally:
            for t in wave:
                _LIVE_TRIALS.pop(f"{id(self.study)}:{t.number}", None)

    # --- results -------------------------------------------------------------------------
    def results(self) -> pd.DataFrame:
        """One row per trial: ``trial``, each parameter, ``state``, the metric, ``seconds``."""
        return results_table(self.study, self.config)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        """The best complete trial (raises ``ValueError`` before any)."""
        return self.study.best_trial

    def plot(self, path: str | Path | None = None) -> Path:
        """Plot each trial's metric and the best so far; returns the PNG path."""
        path = Path(path) if path is not None else self.output_dir / "search.png"
        return plot_search(self.results(), self.config, path)

    def export(self, path: str | Path = "best_model.pt") -> Path:
        """Write the best trial's model: weights and config only, never a pickle.

        Args:
            path: ``.pt`` (a ``torch.save`` of tensors and strings, loadable with
                ``weights_only=True``), ``.safetensors``, or a directory.

        Returns:
            The path written; load it with :func:`openautoglm.models.load_glm` or
            ``get_model(path)``.

        Raises:
            ValueError: a ``.pkl`` path, or no complete trial yet.
        """
        from openautoglm.glm.checkpoint import load_glm, save_glm

        path = Path(path)
        if path.suffix.lower() in (".pkl", ".pickle"):
            raise ValueError(f"{path}: export writes weights, not pickles (a pickle can run code when "
                             "loaded); use best_model.pt, best_model.safetensors or a directory")
        try:
            best = self.best_trial
        except ValueError:
            raise ValueError("no complete trial yet: run search() first") from None
        source = self.output_dir / "trials" / f"trial-{best.number}.safetensors"
        if not source.is_file():
            raise FileNotFoundError(f"weights of best trial {best.number} are missing ({source}); "
                                    "was output_dir changed since the search?")
        model, tok, _ = load_glm(source)
        params = {**best.params, **{k: v for k, v in best.user_attrs.items() if k in self.config.search_space()}}
        return save_glm(path, model, tok, extra={"trial": best.number, "params": params,
                                                  "metric": self.config.metric, "value": best.value})


def _run_plain_dask(client: Any, pipeline: Pipeline, inputs: dict[str, Any]) -> dict[str, Any]:
    """The same tasks on Dask with no plan: submitted in topological order, Dask decides."""
    graph = pipeline.compile(inputs=inputs)
    futures: dict[str, Any] = {k: client.scatter(v) for k, v in inputs.items()}
    for name in graph.tasks:
        task = pipeline.tasks[name]
        futures[task.output_key] = client.submit(task.func, *[futures[k] for k in task.inputs],
                                                 key=f"{name}-plain-{id(futures)}", pure=False)
    keys = [pipeline.tasks[n].output_key for n in graph.tasks]
    return {**inputs, **dict(zip(keys, client.gather([futures[k] for k in keys])))}
