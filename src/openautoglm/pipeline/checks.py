"""Task argument checks: :class:`PipelineError` and :func:`check_task_args` (names, keys and
hints are checked before anything runs; the message names the field, the value and the fix).
"""
from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Any

from openautoglm._validate import InputError, short

__all__ = ["PipelineError", "check_gang", "check_task_args", "refuse_gangs_here"]


class PipelineError(InputError):
    """A pipeline or task definition that cannot run; the message names the culprit and the fix."""


def _template_fields(template: str, where: str) -> list[str]:
    """The base names of the ``{fields}`` a prompt template uses, in order."""
    fields = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        base = field.split(".")[0].split("[")[0]
        if not base or base.isdigit():
            raise PipelineError(
                f"{where}: prompt_template {template!r} has a positional field {{{field}}}; "
                "name the input key instead, e.g. {cleaned_text}"
            )
        fields.append(base)
    return fields


def check_task_args(name: Any, func: Any, input_key: Any, input_keys: Any, output_key: Any,
                    cost: Any, parallel: Any, resources: Any, retries: Any, output_size: Any,
                    model: Any, prompt_template: Any) -> tuple[tuple[str, ...], str, dict[str, float]]:
    """Check :class:`~openautoglm.pipeline.Task`'s arguments; returns ``(inputs, output_key, resources)``.

    Raises:
        PipelineError: naming the task, the argument and the fix.
    """
    if not isinstance(name, str) or not name:
        raise PipelineError(f"a task's name must be a non-empty string, got {short(name)}")
    where = f"task {name!r}"
    if func is not None and not callable(func):
        raise PipelineError(
            f"{where}: func must be callable, got {type(func).__name__} {short(func)}; "
            "pass the function itself (func=my_function), not its result")
    if func is not None and (model is not None or prompt_template is not None):
        raise PipelineError(f"{where}: give either func or model + prompt_template, not both")
    if func is None and (model is None or prompt_template is None):
        raise PipelineError(
            f"{where} has nothing to run: give func=<callable>, or both model=<name> and "
            "prompt_template=<str> for a prompt task")
    inputs, output_key = _check_keys(where, input_key, input_keys, name if output_key is None
                                     else output_key)
    resources = _check_hints(where, cost, parallel, retries, output_size, resources)
    if prompt_template is not None:
        if not isinstance(prompt_template, str):
            raise PipelineError(f"{where}: prompt_template must be a string")
        if not isinstance(model, str) or not model:
            raise PipelineError(f"{where}: model must be a model name string, got {short(model)}")
        unknown = [f for f in _template_fields(prompt_template, where) if f not in inputs]
        if unknown:
            raise PipelineError(
                f"{where}: prompt_template uses {{{unknown[0]}}} but the task reads only "
                f"{list(inputs)}; add {unknown[0]!r} to input_keys or fix the template")
    return inputs, output_key, resources


def _check_keys(where: str, input_key: Any, input_keys: Any, output_key: Any
                ) -> tuple[tuple[str, ...], str]:
    if input_key is not None and input_keys is not None:
        raise PipelineError(f"{where}: give input_key or input_keys, not both")
    if isinstance(input_keys, str):
        raise PipelineError(
            f"{where}: input_keys must be a list of keys, got the string {short(input_keys)}; "
            f"use input_key={short(input_keys)} or input_keys=[{short(input_keys)}]")
    inputs = (input_key,) if input_key is not None else tuple(input_keys or ())
    for key in inputs:
        if not isinstance(key, str) or not key:
            raise PipelineError(f"{where}: keys must be non-empty strings, got {short(key)}")
    if len(set(inputs)) != len(inputs):
        raise PipelineError(f"{where} reads a key twice in input_keys={list(inputs)}")
    if not isinstance(output_key, str) or not output_key:
        raise PipelineError(f"{where}: output_key must be a non-empty string, got {short(output_key)}")
    if output_key in inputs:
        raise PipelineError(f"{where} reads and writes the same key {output_key!r}")
    return inputs, output_key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_hints(where: str, cost: Any, parallel: Any, retries: Any, output_size: Any,
                 resources: Any) -> dict[str, float]:
    for label, value in (("cost", cost), ("output_size", output_size)):
        if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= 1e15:
            raise PipelineError(
                f"{where}: {label} must be a finite number >= 0 (seconds, at most 1e15), "
                f"got {short(value)}")
    if not _is_number(parallel) or not 0.0 <= parallel <= 1.0:
        raise PipelineError(
            f"{where}: parallel is a fraction in [0, 1] (0 = serial), got {short(parallel)}")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10_000:
        raise PipelineError(f"{where}: retries must be an int in [0, 10000], got {short(retries)}")
    if resources is not None and not isinstance(resources, Mapping):
        raise PipelineError(f"{where}: resources must be a mapping of names to amounts, e.g. "
                            f"{{'GPU': 1}}; got {type(resources).__name__} {short(resources)}")
    resources = dict(resources or {})
    for res, amount in resources.items():
        if (not isinstance(res, str) or not res or not _is_number(amount)
                or not math.isfinite(amount) or amount < 0):
            raise PipelineError(
                f"{where}: resources maps names to finite amounts >= 0, e.g. {{'GPU': 1}}; "
                f"got {short(res)}: {short(amount)}")
    return resources


def check_gang(name: str, gang: Any, func: Any) -> int:
    """``Task(gang=k)``: an int >= 1; a gang (k >= 2) runs a function (it receives ``gang=``)."""
    if isinstance(gang, bool) or not isinstance(gang, int) or not 1 <= gang <= 10_000:
        raise PipelineError(f"task {name!r}: gang must be an int >= 1 (the workers the task holds "
                            f"at once, one rank each), got {short(gang)}; use gang=2 for 2 ranks")
    if gang > 1 and func is None:
        raise PipelineError(f"task {name!r}: gang={gang} needs func= (a function taking the "
                            "keyword gang=GangContext); a prompt task cannot be a gang")
    return gang


def refuse_gangs_here(tasks: Any) -> None:
    """A local ``Pipeline.run`` has one process: it cannot hold a gang's k ranks."""
    gangs = [t.name for t in tasks if getattr(t, "gang", 1) > 1]
    if gangs:
        raise PipelineError(f"tasks {gangs[:3]!r} are gang tasks (one rank per worker process): "
                            "run the pipeline on an engine, e.g. "
                            "pipeline.run(engine=Engine(processes=True, n_workers=2), ...)")
