"""The AutoTrainer's Optuna side: the study, asking for a trial, telling its outcome.

The study lives in Optuna storage (``search.storage``, SQLite) so that a killed search resumes:
:func:`requeue_interrupted` fails the trials it left RUNNING and queues their parameters again.
TPE asks a whole wave before any trial finishes; its constant liar (running trials count as
bad results) keeps the wave spread. Tests: ``tests/auto/test_autotrain.py``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openautoglm.auto.autotrain.config import AutoTrainConfig, Range
from openautoglm.auto.autotrain.jobs import _Trial

if TYPE_CHECKING:
    import optuna

__all__ = ["open_study", "finished", "requeue_interrupted", "ask", "tell", "warn_if_all_zero"]

#: Search-space names that are integers whatever their range says.
_INTEGER = ("n_layers", "hidden", "heads", "steps", "batch_size")


def open_study(config: AutoTrainConfig) -> optuna.Study:
    """The study of ``config.search``: created, or loaded from its storage to resume.

    Raises:
        ValueError: the stored study optimises the other direction than ``config.metric``.
    """
    import optuna

    s = config.search
    if s.sampler == "tpe":
        with warnings.catch_warnings():  # constant_liar is "experimental" in optuna < 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A wave is asked before any of its trials finishes: the liar keeps it spread.
            sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.startup_trials,
                                                 constant_liar=True)
    else:
        sampler = optuna.samplers.RandomSampler(seed=s.seed)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
              if s.pruner == "median" else optuna.pruners.NopPruner())
    storage = s.storage
    if storage is not None and not storage.startswith("sqlite:"):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{Path(storage).resolve()}"
    study = optuna.create_study(
        storage=storage, study_name=s.study_name, sampler=sampler, pruner=pruner,
        direction=config.direction, load_if_exists=True)
    if study.direction.name.lower() != config.direction:
        raise ValueError(f"study {s.study_name!r} in {storage} was made to "
                         f"{study.direction.name.lower()}, but metric "
                         f"{config.metric!r} needs {config.direction}; use another "
                         "search.study_name or storage")
    return study


def finished(study: optuna.Study) -> int:
    """Trials that count towards ``search.trials``: complete or pruned."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def requeue_interrupted(study: optuna.Study) -> int:
    """Trials left RUNNING by a killed search: mark them failed and queue their params again."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return len(stale)


def ask(study: optuna.Study, config: AutoTrainConfig) -> _Trial:
    """A new trial with its parameters drawn from ``config.search_space()`` (fixed values are
    kept as user attributes)."""
    trial = study.ask()
    params: dict[str, Any] = {}
    for name, spec in config.search_space().items():
        integer = name in _INTEGER
        if isinstance(spec, Range):
            if integer or spec.is_int and name != "lr":
                params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log,
                                                 step=int(spec.step or 1))
            else:
                params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
        elif isinstance(spec, list) and len(spec) > 1:
            params[name] = trial.suggest_categorical(name, spec)
        else:
            value = spec[0] if isinstance(spec, list) else spec
            params[name] = value
            trial.set_user_attr(name, value)
        if integer:
            params[name] = int(params[name])
    return _Trial(trial.number, params, trial)


def tell(study: optuna.Study, trial: _Trial, outcome: dict[str, Any]) -> None:
    """Record one trial's outcome: its value, pruned, or failed with its error."""
    from optuna.trial import TrialState

    handle = trial.handle
    for key in ("seconds", "train_seconds", "steps_run", "sample"):
        if key in outcome:
            handle.set_user_attr(key, outcome[key])
    if outcome.get("error"):
        handle.set_user_attr("error", outcome["error"][:500])
        study.tell(handle, state=TrialState.FAIL)
    elif outcome.get("pruned"):
        study.tell(handle, state=TrialState.PRUNED)
    else:
        study.tell(handle, outcome["value"])


def warn_if_all_zero(study: optuna.Study, config: AutoTrainConfig) -> None:
    """Say why when every complete trial scored 0 on BLEU/ROUGE (a flat, useless search)."""
    from optuna.trial import TrialState

    if config.metric == "loss":
        return
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done or any(t.value for t in done):
        return
    output, reference = (done[-1].user_attrs.get("sample") or ["?", "?"])[:2]
    warnings.warn(
        f"every one of the {len(done)} complete trials scored {config.metric} = 0.0: no word "
        f"of the models' outputs matches the references (trial {done[-1].number} wrote "
        f"{output!r} for {reference!r}). Character-level GLMs this small and this briefly "
        "trained do not yet write whole words, so BLEU/ROUGE cannot rank them; use "
        "metric: loss, or more training.steps and a longer evaluation.target_chars",
        UserWarning, stacklevel=2)
