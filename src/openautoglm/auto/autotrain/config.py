"""The AutoTrainer's YAML configuration: a pydantic v2 schema with errors that name the field.

A search parameter is written in one of three ways::

    hidden: 64                            # fixed
    hidden: [32, 64]                      # a choice (Optuna categorical)
    lr: {low: 0.001, high: 0.01, log: true}   # a range (int if both ends are ints)

Every field, its default and its allowed values are in the classes below; the file
``tests/data/autotrain.yaml`` is a complete example. Unknown fields are refused by name.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from openautoglm._validate import InputError, load_yaml, read_text, short

__all__ = ["AutoTrainConfig", "AutoTrainConfigError", "Range", "load_config", "METRICS", "POLICIES"]

#: Metric name -> Optuna direction.
METRICS: dict[str, str] = {"loss": "minimize", "bleu": "maximize", "rouge-1": "maximize",
                           "rouge-2": "maximize", "rouge-l": "maximize"}
#: How trials are executed: a scheduler policy planned by the engine, plain Dask (no plan),
#: or one trial after another in this process.
POLICIES = ("heft", "gnn", "cpop", "dask", "sequential")


class AutoTrainConfigError(ValueError):
    """An invalid AutoTrainer configuration; the message names each bad field."""


class Range(BaseModel):
    """A numeric search range: ``{low, high, log, step}``."""

    model_config = ConfigDict(extra="forbid")

    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low={self.low} is above high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self

    @property
    def is_int(self) -> bool:
        ints = [self.low, self.high] + ([self.step] if self.step is not None else [])
        return all(float(v).is_integer() for v in ints) and isinstance(self.low, (int, float))



def _parse_param(value: Any) -> Any:
    """A search parameter: a number, a non-empty list of numbers, or a range mapping."""
    if isinstance(value, Range):
        return value
    if isinstance(value, dict):
        try:
            return Range.model_validate(value)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'] if not str(p).startswith('function')) or 'range'}: "
                f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors())
            raise ValueError(f"bad range {value!r} ({problems}); write {{low: ..., high: ..., log: true}}") from None
    if isinstance(value, list):
        if not value or not all(_is_number(v) for v in value):
            raise ValueError(f"a list of choices must hold numbers, got {value!r}")
        return list(value)
    if _is_number(value):
        return value
    raise ValueError(f"must be a number, a list of choices, or a range {{low: ..., high: ..., log: true}}; got {value!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: A fixed value, a list of choices, or a :class:`Range`.
Param = Annotated[Any, BeforeValidator(_parse_param)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Where the text comes from: a shipped corpus, or a UTF-8 text file."""

    corpus: Literal["pydoc"] | None = "pydoc"
    path: Path | None = None
    max_chars: int | None = Field(default=60_000, gt=1000)
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _check(self) -> DataSpec:
        if self.path is not None:
            self.corpus = None
            if not self.path.expanduser().is_file():
                raise ValueError(f"path {str(self.path)!r} is not a file; give a UTF-8 text file or corpus: pydoc")
        elif self.corpus is None:
            raise ValueError("give either corpus: pydoc or path: <text file>")
        return self


class ModelSpace(_Strict):
    """The GLM shapes to search (each a fixed value, a list of choices, or a range)."""

    n_layers: Param = [1, 2]
    hidden: Param = [32, 64]
    heads: Param = [2, 4]
    dropout: Param = 0.0
    max_len: int = Field(default=128, ge=8)


class TrainingSpec(_Strict):
    """The training budget of each trial."""

    steps: Param = 60
    batch_size: Param = 8
    lr: Param = Range(low=1e-3, high=1e-2, log=True)
    seq_len: int = Field(default=64, ge=8)
    eval_every: int = Field(default=20, ge=1)
    world_size: int = Field(default=1, ge=1, description="ranks per trial: >1 trains each trial "
                            "as a gang task with torch DDP (needs worker processes)")


class SearchSpec(_Strict):
    """The search budget: how many trials, how long, how many planned at once, where stored."""

    trials: int = Field(default=8, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    parallel: int | None = Field(default=None, ge=1, description="trials planned and run together "
                                 "per wave; default max(n_startup_trials, 2 x worker threads)")
    n_startup_trials: int | None = Field(default=None, ge=1, description="trials drawn at random "
                                         "before TPE models the results; default "
                                         "max(2, min(10, trials // 3))")
    seed: int = 0
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    storage: str | None = Field(default=None, description="SQLite file (or sqlite:/// URL) to resume from")
    study_name: str = Field(default="autotrain", min_length=1)

    @property
    def startup_trials(self) -> int:
        """``n_startup_trials``, or its default ``max(2, min(10, trials // 3))``."""
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return max(2, min(10, self.trials // 3))

    def wave_size(self, threads: int) -> int:
        """Trials per wave: ``parallel``, or ``max(startup_trials, 2 * threads)``.

        TPE draws its startup trials independently at random, so asking for all of them at
        once costs the search nothing, and one wave of trials of very different cost gives
        the plan room to balance the workers (longest first). Twice the worker threads keeps
        every thread busy while the longest trials run.

        Args:
            threads: worker threads (cores) that run trials at once.

        >>> SearchSpec(trials=30).wave_size(threads=2)
        10
        >>> SearchSpec(trials=30, parallel=3).wave_size(threads=2)
        3
        """
        if self.parallel is not None:
            return self.parallel
        return max(self.startup_trials, 2 * max(1, int(threads)))


class EvaluationSpec(_Strict):
    """For text metrics: how many held-out prompts, and how long prompts and targets are."""

    examples: int = Field(default=8, ge=1)
    prompt_chars: int = Field(default=48, ge=4)
    target_chars: int = Field(default=32, ge=4)


class ClusterSpec(_Strict):
    """Where trials run: an embedded Dask cluster, or a scheduler address."""

    address: str | None = None
    n_workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    processes: bool = Field(default=False, description="embedded workers in their own processes "
                            "(no GIL sharing; pruning then needs search.storage)")
    policy: Literal["heft", "gnn", "cpop", "dask", "sequential"] = "heft"


class AutoTrainConfig(_Strict):
    """The whole AutoTrainer configuration (see the module docstring for parameter forms)."""

    data: DataSpec = DataSpec()
    task: Literal["text-generation", "fill-blank"] = "text-generation"
    model_space: ModelSpace = ModelSpace()
    training: TrainingSpec = TrainingSpec()
    search: SearchSpec = SearchSpec()
    metric: Literal["loss", "bleu", "rouge-1", "rouge-2", "rouge-l"] = "loss"
    evaluation: EvaluationSpec = EvaluationSpec()
    cluster: ClusterSpec = ClusterSpec()
    output_dir: Path = Path("autotrain-out")
    export: Path | None = Field(default=None, description="write the best model here after the "
                                "search (.pt, .safetensors or a directory; never a pickle)")

    @model_validator(mode="after")
    def _check(self) -> AutoTrainConfig:
        if self.export is not None and self.export.suffix.lower() in (".pkl", ".pickle"):
            raise ValueError(f"export: {str(self.export)!r} is a pickle, which can run code when "
                             "loaded; the AutoTrainer writes weights only: use best_model.pt, "
                             "best_model.safetensors or a directory")
        hidden, heads = _values(self.model_space.hidden), _values(self.model_space.heads)
        if hidden is None or heads is None:
            raise ValueError("model_space.hidden and model_space.heads must be fixed values or lists "
                             "(every hidden must be a multiple of every heads), not ranges")
        bad = [(h, k) for h, k in itertools.product(hidden, heads) if h % k]
        if bad:
            raise ValueError(f"model_space: hidden={bad[0][0]} is not a multiple of heads={bad[0][1]}; "
                             "every hidden choice must divide by every heads choice")
        if self.cluster.processes and self.search.pruner != "none" and self.search.storage is None:
            raise ValueError("cluster.processes: true runs trials in other processes, which report to "
                             "the study through its storage: set search.storage (a SQLite file) or "
                             "search.pruner: none")
        _check_world_size(self)
        if self.training.seq_len > self.model_space.max_len:
            raise ValueError(f"training.seq_len={self.training.seq_len} exceeds "
                             f"model_space.max_len={self.model_space.max_len}")
        for section, name in (("model_space", "n_layers"), ("training", "steps"), ("training", "batch_size")):
            value = getattr(getattr(self, section), name)
            vals = _values(value)
            ints = vals if vals is not None else [value.low, value.high]
            if any(not float(v).is_integer() or v < 1 for v in ints):
                raise ValueError(f"{section}.{name} takes positive integers, got {value!r}")
        return self

    @property
    def direction(self) -> str:
        """``"minimize"`` for loss, ``"maximize"`` for BLEU/ROUGE."""
        return METRICS[self.metric]

    def search_space(self) -> dict[str, Param]:
        """Every searched or fixed trial parameter by name (model shape and training)."""
        out: dict[str, Param] = {}
        for name in ("n_layers", "hidden", "heads", "dropout"):
            out[name] = getattr(self.model_space, name)
        for name in ("steps", "batch_size", "lr"):
            out[name] = getattr(self.training, name)
        return out


def _check_world_size(config: AutoTrainConfig) -> None:
    """``training.world_size > 1``: a gang per trial, which needs planned worker processes."""
    k, c = config.training.world_size, config.cluster
    if k == 1:
        return
    if c.policy in ("dask", "sequential"):
        raise ValueError(f"training.world_size={k} trains each trial as a gang task, which only a "
                         f"planning policy runs; cluster.policy={c.policy!r} cannot: use heft, gnn "
                         "or cpop, or world_size: 1")
    if c.address is None and (not c.processes or c.n_workers < k):
        raise ValueError(f"training.world_size={k} needs {k} worker processes, one rank each: set "
                         f"cluster.processes: true and cluster.n_workers >= {k} (got processes="
                         f"{c.processes}, n_workers={c.n_workers})")
    sizes = _values(config.training.batch_size)
    if sizes is None or any(int(b) % k for b in sizes):
        raise ValueError(f"training.batch_size={config.training.batch_size!r} must be fixed values "
                         f"or choices divisible by training.world_size={k} (each rank takes an "
                         "equal slice of every batch)")


def _values(param: Param) -> list[float] | None:
    if isinstance(param, Range):
        return None
    return list(param) if isinstance(param, list) else [param]


def _format(err: ValidationError, source: str) -> str:
    lines = [f"invalid AutoTrainer configuration ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None or "got" in e["msg"] else f" (got {short(got)})"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {short(where, 120) if len(where) > 120 else where or '<top level>'}: "
                     f"{msg if len(msg) <= 300 else msg[:300] + '...'}{shown}")
    return "\n".join(lines)


def load_config(source: str | os.PathLike[str] | dict[str, Any] | AutoTrainConfig) -> AutoTrainConfig:
    """Read and validate a configuration from a YAML file, a YAML string's dict, or a dict.

    Args:
        source: a path to a YAML file, a dict, or an already built config.

    Returns:
        The validated :class:`AutoTrainConfig`. A relative ``data.path`` (an input) is resolved
        against the YAML file's folder; relative outputs (``search.storage``, ``output_dir``,
        ``export``) against the current working directory when the configuration is loaded.

    Raises:
        AutoTrainConfigError: a missing file, invalid YAML, or invalid fields (each one named
            with its allowed values).

    >>> load_config({"metric": "rouge-l", "search": {"trials": 2}}).direction
    'maximize'
    """
    if isinstance(source, AutoTrainConfig):
        return source
    base = Path.cwd()
    label = "dict"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            raise AutoTrainConfigError(f"{path}: a configuration is a .yaml/.yml file")
        if not path.is_file():
            raise AutoTrainConfigError(f"configuration file {path} not found")
        try:  # no aliases (billion laughs), no duplicate keys, bounded nesting
            data = load_yaml(read_text(path, "configuration file", limit=4 * 2**20),
                             str(path)) or {}
        except InputError as err:
            raise AutoTrainConfigError(str(err)) from None
        base, label = path.resolve().parent, str(path)
    else:
        data = dict(source)
    if not isinstance(data, dict):
        raise AutoTrainConfigError(f"{label}: the top level must be a mapping of sections "
                                   "(data, task, model_space, training, search, metric, cluster)")
    data = _resolve_paths(data, base)
    try:
        return AutoTrainConfig.model_validate(data)
    except ValidationError as err:
        raise AutoTrainConfigError(_format(err, label)) from None


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    d = data.get("data")
    if isinstance(d, dict) and isinstance(d.get("path"), str) and not Path(d["path"]).is_absolute():
        d["path"] = str(base / d["path"])
    # What the search writes goes where it is run, never beside the configuration (which may
    # sit in a read-only or version-controlled folder).
    out = Path.cwd()
    s = data.get("search")
    if isinstance(s, dict) and isinstance(s.get("storage"), str):
        st = s["storage"]
        if not st.startswith("sqlite:") and not Path(st).is_absolute():
            s["storage"] = str(out / st)
    for key in ("output_dir", "export"):
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str(out / data[key])
    return data
