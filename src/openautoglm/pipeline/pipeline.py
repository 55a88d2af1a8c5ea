"""Pipelines: named tasks that read and write keys, compiled into a :class:`TaskGraph`.

A pipeline is a set of :class:`Task` objects. Each task reads zero or more *keys* and writes one.
Dependencies come from the keys alone: a task that reads ``k`` depends on the task that writes
``k``; keys that no task writes are the pipeline's *inputs*, given to :meth:`Pipeline.run`::

    raw_text --> clean_input --cleaned_text--> summarize --summary-->

``compile()`` turns the pipeline into a :class:`~openautoglm.core.graph.TaskGraph` (node = task name,
node attributes ``cost``, ``parallel`` and ``"task"``; edge attribute ``size`` from the
producer's ``output_size`` hint), which every scheduler and the Dask engine plan from.

Everything a user can get wrong is refused before any task runs, with a message naming the
culprit and the fix: cycles, keys nobody writes, two writers of one key, duplicate names,
non-callable funcs, negative costs. Tests: ``tests/pipeline/test_pipeline.py``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph
from openautoglm.pipeline.checks import PipelineError, refuse_gangs_here
from openautoglm.pipeline.task import Task, TaskFailedError
from openautoglm.schedulers import schedule

if TYPE_CHECKING:
    import networkx as nx

    from openautoglm.simulate.schedule import Schedule

__all__ = ["Pipeline", "DEFAULT_WORKERS"]

#: Workers of the default :class:`~openautoglm.core.cluster.Cluster` a pipeline plans on locally.
DEFAULT_WORKERS = 4


class Pipeline:
    """A named set of tasks wired together by the keys they read and write.

    Args:
        name: The pipeline's name.
        tasks: Optional tasks to add right away.

    Example:
        >>> p = Pipeline("summarization_flow")
        >>> _ = p.add_tasks([
        ...     Task("clean_input", func=str.strip, input_key="raw_text", output_key="cleaned"),
        ...     Task("shout", func=str.upper, input_key="cleaned", output_key="summary"),
        ... ])
        >>> p.inputs
        ['raw_text']
        >>> p.run(raw_text="  hello  ")["summary"]
        'HELLO'
    """

    def __init__(self, name: str, tasks: Iterable[Task] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise PipelineError(f"a pipeline's name must be a non-empty string, got {name!r}")
        self.name = name
        self.tasks: dict[str, Task] = {}
        self._writer: dict[str, str] = {}
        if tasks is not None:
            self.add_tasks(tasks)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {len(self.tasks)} tasks)"

    def __len__(self) -> int:
        return len(self.tasks)

    def add_task(self, task: Task) -> Task:
        """Add one task; refuses duplicate names and a second writer of a key. Returns the task."""
        if not isinstance(task, Task):
            raise PipelineError(f"add_task takes a Task, got {type(task).__name__}; wrap your "
                                "function: Task(name=..., func=..., output_key=...)")
        if task.name in self.tasks:
            raise PipelineError(f"pipeline {self.name!r} already has a task named {task.name!r}; "
                                "task names must be unique, rename one of them")
        other = self._writer.get(task.output_key)
        if other is not None:
            raise PipelineError(
                f"tasks {other!r} and {task.name!r} both write key {task.output_key!r}; "
                "each key has one writer: give one of them another output_key")
        self.tasks[task.name] = task
        self._writer[task.output_key] = task.name
        return task

    def add_tasks(self, tasks: Iterable[Task]) -> list[Task]:
        """Add several tasks in order (see :meth:`add_task`). Returns them."""
        return [self.add_task(t) for t in tasks]

    @property
    def inputs(self) -> list[str]:
        """Keys some task reads and no task writes: what :meth:`run` must be given (sorted)."""
        return sorted({k for t in self.tasks.values() for k in t.inputs} - set(self._writer))

    @property
    def outputs(self) -> list[str]:
        """Keys the tasks write, in the order the tasks were added."""
        return list(self._writer)

    def _check_inputs(self, given: Iterable[str]) -> None:
        given = set(given)
        for task in self.tasks.values():
            for key in task.inputs:
                if key not in self._writer and key not in given:
                    raise PipelineError(
                        f"task {task.name!r} reads key {key!r}, which no task writes and run() "
                        f"was not given; keys written: {sorted(self._writer)}; keys given: "
                        f"{sorted(given)}. Pass {key}=... to run() or fix the key's spelling")
        read = {k for t in self.tasks.values() for k in t.inputs}
        for key in sorted(given):
            if key in self._writer:
                raise PipelineError(f"run() was given key {key!r}, which task "
                                    f"{self._writer[key]!r} writes; do not pass it")
            if key not in read:
                raise PipelineError(f"run() was given key {key!r}, which no task reads; "
                                    f"the pipeline's inputs are {self.inputs}")

    def _dependency_graph(self) -> nx.DiGraph:
        import networkx as nx  # imported on use: `import openautoglm` stays light

        G = nx.DiGraph()
        for task in self.tasks.values():
            G.add_node(task.name, cost=task.cost, parallel=task.parallel, task=task,
                       **({"gang": task.gang} if getattr(task, "gang", 1) > 1 else {}))
        for task in self.tasks.values():
            for key in task.inputs:
                producer = self._writer.get(key)
                if producer is not None:
                    G.add_edge(producer, task.name, size=self.tasks[producer].output_size, key=key)
        try:
            cycle = nx.find_cycle(G)
        except nx.NetworkXNoCycle:
            return G
        names = [u for u, _ in cycle] + [cycle[0][0]]
        keys = ", ".join(f"{v} reads {G.edges[u, v]['key']!r} from {u}" for u, v in cycle)
        raise PipelineError(f"pipeline {self.name!r} has a cycle: {' -> '.join(names)} ({keys}); "
                            "break it by having one of these tasks read another key")

    def compile(self, inputs: Iterable[str] | None = None) -> TaskGraph:
        """Validate the pipeline and build its task graph.

        Args:
            inputs: Names of the keys that will be given to :meth:`run`; when passed, a key
                that neither a task writes nor is given is refused here.

        Returns:
            A :class:`~openautoglm.core.graph.TaskGraph` with one node per task (attributes ``cost``,
            ``parallel``, ``task``) and one edge per key passed between tasks (``size``).

        Raises:
            PipelineError: On an empty pipeline, a cycle, or (with ``inputs``) a missing key.

        Example:
            >>> p = Pipeline("p", [Task("a", func=len, input_key="x", output_key="n", cost=2.0),
            ...                    Task("b", func=abs, input_key="n", output_key="m")])
            >>> g = p.compile()
            >>> g.tasks, g.nx.nodes["a"]["cost"]
            (['a', 'b'], 2.0)
        """
        if not self.tasks:
            raise PipelineError(f"pipeline {self.name!r} has no tasks; add some with add_task()")
        G = self._dependency_graph()
        if inputs is not None:
            self._check_inputs(inputs)
        return TaskGraph.from_networkx(G)

    def plan(self, policy: str = "heft", cluster: Cluster | None = None,
             graph: TaskGraph | None = None) -> Schedule:
        """Plan the pipeline: compile it and schedule it with ``policy`` on ``cluster``.

        Args:
            policy: A scheduler name for :func:`openautoglm.schedule` ("heft", "gnn", ...).
            cluster: Where to plan; defaults to ``Cluster.homogeneous(DEFAULT_WORKERS)``.
            graph: The already compiled graph, to skip compiling again.

        Returns:
            The :class:`~openautoglm.simulate.Schedule` (placements, makespan, Gantt chart).
        """
        graph = self.compile() if graph is None else graph
        cluster = Cluster.homogeneous(DEFAULT_WORKERS) if cluster is None else cluster
        return schedule(graph, cluster, policy=policy)

    def run(self, engine: Any = None, policy: str = "heft", cluster: Cluster | None = None,
            **inputs: Any) -> dict[str, Any]:
        """Run the pipeline on its input keys and return every key.

        Without ``engine`` the tasks run here, one at a time, in the order of their planned
        start (the plan of ``policy`` on ``cluster``), each retried up to its ``retries``.
        With ``engine`` (an :class:`openautoglm.engine.engine.Engine` or anything with the same
        method) this returns ``engine.run(self, policy=policy, inputs=inputs)``: the engine
        compiles, plans and executes the pipeline and returns the same dict of every key.

        Args:
            engine: Optional engine to execute on (e.g. Dask); ``None`` runs locally.
            policy: Scheduler name used to plan.
            cluster: Cluster to plan on locally (default ``DEFAULT_WORKERS`` equal workers);
                not allowed with ``engine``, which plans on its own workers.
            **inputs: The pipeline's input keys (see :attr:`inputs`). A key named ``engine``,
                ``policy`` or ``cluster`` cannot be passed this way: rename it.

        Returns:
            A dict with the given inputs and every key the tasks produced.

        Raises:
            PipelineError: Before anything runs, on an invalid pipeline or missing inputs.
            TaskFailedError: When a task raises after its retries; ``.partial`` holds the keys
                computed so far.
        """
        graph = self.validate(inputs)
        if engine is not None:
            if cluster is not None:
                raise PipelineError("cluster= plans a local run; an engine plans on its own "
                                    "workers: drop cluster= or drop engine=")
            return engine.run(self, policy=policy, inputs=inputs)
        refuse_gangs_here(self.tasks.values())
        plan = self.plan(policy=policy, cluster=cluster, graph=graph)
        order = sorted(self.tasks, key=lambda k: (plan.placements[k].start, graph.index[k]))
        values: dict[str, Any] = dict(inputs)
        for name in order:
            values[self.tasks[name].output_key] = self._run_task(self.tasks[name], values)
        return values

    def validate(self, inputs: Mapping[str, Any] | Iterable[str]) -> TaskGraph:
        """Every check :meth:`run` makes before anything runs; returns the compiled graph.

        Args:
            inputs: The input keys (or a dict of them) that will be given to :meth:`run`.

        Raises:
            PipelineError: A cycle, a missing or unknown input key, an input key named like a
                ``run()`` argument, or an unknown model name.
        """
        keys = list(inputs)
        clash = sorted({"engine", "policy", "cluster"} & (set(self.inputs) | set(keys)))
        if clash:
            raise PipelineError(f"pipeline input key {clash[0]!r} is also a run() argument, so it "
                                f"cannot be passed to run(); rename the key, e.g. {clash[0]}_value")
        graph = self.compile(inputs=keys)
        self._check_models()
        return graph

    def _check_models(self) -> None:
        """Refuse unknown model names of prompt tasks before anything runs."""
        prompt_tasks = [t for t in self.tasks.values() if t.model is not None]
        if not prompt_tasks:
            return
        from openautoglm.models.registry import check_model_name

        for task in prompt_tasks:
            try:
                check_model_name(task.model)  # type: ignore[arg-type]
            except ValueError as exc:
                raise PipelineError(f"task {task.name!r}: {exc}") from None

    @staticmethod
    def _run_task(task: Task, values: dict[str, Any]) -> Any:
        args = [values[k] for k in task.inputs]
        attempt = 0
        while True:
            attempt += 1
            try:
                return task(*args)
            except Exception as exc:  # noqa: BLE001 - re-raised below with the task's name
                if attempt > task.retries:
                    raise TaskFailedError(task.name, attempt, exc, dict(values)) from exc

    @classmethod
    def from_yaml(cls, source: str | Path, allowed_modules: Iterable[str] | None = None
                  ) -> Pipeline:
        """Load a pipeline from a YAML file or string (validated; funcs named by import path).

        A pipeline file is code: its ``func`` entries are imported and run. They resolve only
        from ``openautoglm``, the YAML file's own folder or package, and ``allowed_modules``
        (or ``$OPENAUTOGLM_ALLOWED_MODULES``); anything else is refused before it is imported.

        The document looks like::

            name: summarization_flow
            tasks:
              - name: clean_input
                func: openautoglm.demo:clean      # or openautoglm.demo.clean
                input_key: raw_text
                output_key: cleaned_text
                cost: 0.5

        Args:
            source: A path to a ``.yaml``/``.yml`` file, or the YAML text itself.
            allowed_modules: More modules (with their submodules) the funcs may come from,
                e.g. ``["mypkg"]``; ``["*"]`` allows any (only for files you wrote).

        Raises:
            PipelineError: On bad YAML (aliases, duplicate keys, deep nesting, a binary file),
                an unknown or invalid field (named, with its task; types are strict: ``'5'`` is
                not a cost), or a func that is not allowed or cannot be imported.
        """
        from openautoglm._imports import AllowedModules
        from openautoglm.pipeline.yaml import load_spec, task_fields

        spec, origin, path = load_spec(source)
        allowed = AllowedModules.for_source(allowed_modules, path)
        pipeline = cls(spec.name)
        for t in spec.tasks:
            pipeline.add_task(Task(**task_fields(t, allowed, origin)))
        pipeline._dependency_graph()  # refuse cycles at load time, before anything runs
        return pipeline

    def to_yaml(self) -> str:
        """Dump the pipeline as YAML that :meth:`from_yaml` loads back.

        Raises:
            PipelineError: When a func cannot be named by an import path (a lambda or a
                function defined inside another function): define it at module level.
        """
        from openautoglm.pipeline.yaml import dump_spec

        return dump_spec(self.name, self.tasks.values())
