"""A :class:`Task`: one step of a pipeline that reads named keys and writes one, and
:class:`TaskFailedError`, raised when a task fails for good (with every key computed before).

A task is a Python callable, or a prompt template sent to a model (``model`` +
``prompt_template``); its planning hints (``cost``, ``parallel``, ``output_size``, ``gang``) and
its needs on Dask (``resources``, ``retries``, ``timeout``) travel with it into the compiled
graph. Its arguments are checked when it is made (``checks.check_task_args``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from openautoglm.pipeline._source import SourcedFunction
from openautoglm.pipeline.checks import PipelineError, check_gang, check_task_args

__all__ = ["Task", "TaskFailedError"]


class TaskFailedError(RuntimeError):
    """A task raised while the pipeline ran (after its retries).

    Attributes:
        task: The name of the task that failed.
        attempts: How many times it was tried.
        partial: Every key computed before the failure (the inputs included).
    """

    def __init__(self, task: str, attempts: int, cause: BaseException, partial: dict[str, Any]):
        super().__init__(
            f"task {task!r} failed after {attempts} attempt(s): {type(cause).__name__}: {cause}. "
            f"The {len(partial)} keys computed before it are in this error's .partial; "
            f"give the task retries=N if the failure is transient."
        )
        self.task = task
        self.attempts = attempts
        self.partial = partial


class Task:
    """One step of a pipeline: a function (or a prompt to a model) from input keys to one key.

    The function is called with the values of its input keys as positional arguments, in the
    order of ``input_keys`` (or with the single ``input_key``; with no inputs, with none).

    Args:
        name: Unique name of the task in its pipeline (the node of the compiled graph).
        func: The callable to run. Give either ``func`` or ``model`` + ``prompt_template``.
        input_key: The one key this task reads.
        input_keys: The keys this task reads (instead of ``input_key``).
        output_key: The key this task writes; defaults to the task's name.
        cost: Expected run time in seconds on a speed-1 worker (a planning hint).
        parallel: Parallel fraction in [0, 1] (how well the task uses several cores).
        resources: Abstract resources the task needs, e.g. ``{"GPU": 1}`` (passed to Dask).
        retries: How many times to retry the task if it raises.
        output_size: Transfer seconds of its output at bandwidth 1 (edge ``size`` hint).
        timeout: Seconds one attempt may run on an :class:`~openautoglm.engine.engine.Engine`
            before it fails with ``TaskTimeoutError`` (retried like any error); ``None``: no
            limit. (A thread cannot be killed: the abandoned call finishes in the background.)
        gang: Workers the task holds at once, one rank on each (torch.distributed; run on an
            Engine with worker processes): ``func`` then also receives the keyword
            ``gang=``:class:`~openautoglm.engine.gang.GangContext` and rank 0's result is the
            output. ``cost`` is then its run time on the k workers.
        model: Name for ``openautoglm.models.get_model`` (a prompt-template task).
        prompt_template: ``str.format`` template over the input keys, e.g. ``"Summarise: {text}"``.

    Raises:
        PipelineError: On any invalid argument, naming it and the fix.

    Example:
        >>> t = Task(name="clean", func=str.strip, input_key="raw", output_key="text")
        >>> t.inputs, t.output_key
        (('raw',), 'text')
    """

    def __init__(self, name: str, func: Callable[..., Any] | None = None,
                 input_key: str | None = None, input_keys: Iterable[str] | None = None,
                 output_key: str | None = None, cost: float = 1.0, parallel: float = 0.0,
                 resources: Mapping[str, float] | None = None, retries: int = 0,
                 output_size: float = 0.0, model: str | None = None,
                 prompt_template: str | None = None, timeout: float | None = None,
                 gang: int = 1) -> None:
        inputs, output_key, resources = check_task_args(
            name, func, input_key, input_keys, output_key, cost, parallel, resources, retries,
            output_size, model, prompt_template)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise PipelineError(f"task {name!r}: timeout must be a number of seconds > 0 (or "
                                f"None for no limit), got {timeout!r}")
        self.name = name
        self.func = func
        self.inputs: tuple[str, ...] = inputs
        self.output_key = output_key
        self.cost = float(cost)
        self.parallel = float(parallel)
        self.resources: dict[str, float] = resources
        self.retries = retries
        self.output_size = float(output_size)
        self.model = model
        self.prompt_template = prompt_template
        self.timeout = None if timeout is None else float(timeout)
        self.gang = check_gang(name, gang, func)

    def __getstate__(self) -> dict[str, Any]:
        # A function pickled by value loses its file name (cloudpickle >= 3.1.3): ship its source
        # lines along so that a worker's traceback still shows the line that raised.
        state = self.__dict__.copy()
        if state.get("func") is not None:
            state["func"] = SourcedFunction(state["func"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("func"), SourcedFunction):
            state["func"] = state["func"].func
        self.__dict__.update(state)

    def __repr__(self) -> str:
        what = getattr(self.func, "__qualname__", repr(self.func)) if self.func else self.model
        return f"Task({self.name!r}, {what}, {list(self.inputs)} -> {self.output_key!r})"

    def __call__(self, *args: Any) -> Any:
        """Run the task once on the values of its input keys (in ``inputs`` order)."""
        if self.func is not None:
            return self.func(*args)
        from openautoglm.models.registry import (
            get_model,  # lazy: pipelines work without the model zoo
        )

        prompt = self.prompt_template.format(**dict(zip(self.inputs, args)))  # type: ignore[union-attr]
        return get_model(self.model, task=self.name).generate(prompt)  # type: ignore[arg-type]
