"""Pipeline validation and the YAML form: Task argument checks, a pydantic v2 schema, load, dump.

Kept apart from :mod:`openautoglm.pipeline` so that module stays about tasks and graphs.
Unknown fields are refused by name (``extra="forbid"``); YAML is read with ``yaml.safe_load``.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openautoglm.pipeline.checks import PipelineError
from openautoglm._imports import AllowedModules, resolve
from openautoglm._validate import InputError, load_yaml, read_text, short

__all__ = ["PipelineSpec", "TaskSpec", "dump_spec", "import_func", "load_spec", "task_fields"]


class TaskSpec(BaseModel):
    """One task of a YAML pipeline; fields as in :class:`~openautoglm.pipeline.Task`."""

    # Strict: YAML ``cost: '5'`` or ``retries: true`` is refused, never coerced.
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    func: str | None = None
    input_key: str | None = None
    input_keys: list[str] | None = None
    output_key: str | None = None
    cost: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    parallel: float = Field(default=0.0, ge=0, le=1)
    resources: dict[str, float] | None = None
    retries: int = Field(default=0, ge=0)
    output_size: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    gang: int = Field(default=1, ge=1, le=10_000)
    model: str | None = None
    prompt_template: str | None = None


class PipelineSpec(BaseModel):
    """A YAML pipeline: its name and its tasks."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)


def import_func(path: str, task: str = "?") -> Any:
    """Import ``"package.module:function"`` or ``"package.module.function"``.

    Args:
        path: The import path; after ``:`` dotted attributes are allowed (``mod:Class.method``).
        task: The task's name, for the error message.

    Raises:
        PipelineError: When the module or attribute cannot be imported.

    Example:
        >>> import_func("os.path:join") is import_func("os.path.join")
        True
    """
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise PipelineError(f"task {task!r}: func {path!r} is not an import path; write it as "
                            "'package.module:function' or 'package.module.function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(f"task {task!r}: cannot import module {module_name!r} for func "
                            f"{path!r} ({exc}); is the package installed and on sys.path?") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PipelineError(f"task {task!r}: module {module_name!r} has no {attr!r} "
                                f"(func {path!r}); check the spelling") from None
    return obj


def _format_errors(exc: ValidationError, doc: Any) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        where = "pipeline"
        if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
            try:
                where = f"task {short(doc['tasks'][loc[1]]['name'])} (tasks[{loc[1]}])"
            except (KeyError, TypeError, IndexError):
                where = f"tasks[{loc[1]}]"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc) or "(the whole entry)"
        if err["type"] == "extra_forbidden":
            allowed = sorted((TaskSpec if where != "pipeline" else PipelineSpec).model_fields)
            lines.append(f"{where}: unknown field {short(field)}; allowed fields: {allowed}")
        else:
            lines.append(f"{where}: field {short(field)}: {err['msg']} (got {short(err.get('input'))})")
    return "invalid pipeline YAML:\n  " + "\n  ".join(lines)


#: Largest pipeline YAML file read (bytes).
MAX_YAML_BYTES = 4 * 2**20


def _read(source: str | Path) -> tuple[str, str, Path | None]:
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.exists():
            raise PipelineError(f"pipeline file {short(str(path))} not found")
        try:
            return read_text(path, "pipeline file", limit=MAX_YAML_BYTES), str(path), path
        except InputError as exc:
            raise PipelineError(str(exc)) from None
    if not isinstance(source, str):
        raise PipelineError(f"Pipeline.from_yaml takes a path or YAML text, got "
                            f"{type(source).__name__} {short(source)}")
    if len(source) > MAX_YAML_BYTES:
        raise PipelineError(f"pipeline YAML text is {len(source)} characters, over the "
                            f"{MAX_YAML_BYTES} limit")
    return source, "<string>", None


def load_spec(source: str | Path) -> tuple[PipelineSpec, str, Path | None]:
    """Read and validate a pipeline spec from a YAML path or YAML text.

    ``Pipeline.from_yaml`` builds the Tasks from it (this module imports nothing of
    ``pipeline.py``: specs in, specs out).

    Returns:
        The spec, where it came from (for messages) and the file's path (``None`` for text:
        the allow-list of func modules is relative to the file).

    Raises:
        PipelineError: On bad YAML or an unknown or invalid field (named, with its task).
    """
    text, origin, path = _read(source)
    try:
        doc = load_yaml(text, origin)
    except InputError as exc:
        raise PipelineError(str(exc)) from None
    if not isinstance(doc, dict):
        raise PipelineError(f"{origin}: a pipeline YAML is a mapping with 'name' and 'tasks', "
                            f"got {type(doc).__name__}")
    try:
        return PipelineSpec.model_validate(doc), origin, path
    except ValidationError as exc:
        raise PipelineError(f"{origin}: {_format_errors(exc, doc)}") from None


def task_fields(spec: TaskSpec, allowed: AllowedModules, origin: str = "<string>") -> dict[str, Any]:
    """The keyword arguments of ``Task(**fields)`` for one spec, its ``func`` resolved.

    Args:
        spec: One task's spec.
        allowed: The modules its func may come from (checked before anything is imported).
        origin: Where the spec came from, for messages.

    Raises:
        PipelineError: When the func is not allowed or cannot be imported (named, with its task).
    """
    fields = spec.model_dump(exclude_unset=True)
    if spec.func is not None:
        try:
            fields["func"] = resolve(spec.func, spec.name, allowed)
        except InputError as exc:
            raise PipelineError(f"{origin}: {exc}") from None
    return fields


def _func_path(task: Any) -> str:
    func = task.func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise PipelineError(
            f"task {task.name!r}: func {func!r} cannot be named by an import path (a lambda, a "
            "closure or a callable object); define it at module level to dump to YAML")
    path = f"{module}:{qualname}"
    try:
        found = import_func(path, task.name)
    except PipelineError:
        found = None
    if found is not func and getattr(found, "__func__", found) != getattr(func, "__func__", func):
        raise PipelineError(f"task {task.name!r}: func {path!r} does not import back to the "
                            "same object; define it at module level to dump to YAML")
    return path


def dump_spec(pipeline_name: str, tasks: Iterable[Any]) -> str:
    """The YAML text of a pipeline (defaults left out); see ``Pipeline.to_yaml``.

    Args:
        pipeline_name: The pipeline's name.
        tasks: Its tasks: objects with :class:`TaskSpec`'s fields as attributes (``Task``).
    """
    defaults = {name: f.default for name, f in TaskSpec.model_fields.items()}
    entries = []
    for task in tasks:
        entry: dict[str, Any] = {"name": task.name}
        if task.func is not None:
            entry["func"] = _func_path(task)
        if len(task.inputs) == 1:
            entry["input_key"] = task.inputs[0]
        elif task.inputs:
            entry["input_keys"] = list(task.inputs)
        if task.output_key != task.name:
            entry["output_key"] = task.output_key
        for name in ("cost", "parallel", "retries", "output_size", "timeout", "gang", "model",
                     "prompt_template"):
            if getattr(task, name, defaults[name]) != defaults[name]:
                entry[name] = getattr(task, name)
        if task.resources:
            entry["resources"] = dict(task.resources)
        entries.append(entry)
    return yaml.safe_dump({"name": pipeline_name, "tasks": entries}, sort_keys=False)
