"""Pipelines: validation before anything runs, compile to a TaskGraph, local runs, YAML."""
from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openautoglm import demo
from openautoglm.pipeline import Pipeline, Task, TaskFailedError
from openautoglm.pipeline.checks import PipelineError

DATA = Path(__file__).resolve().parents[1] / "data"


def _text_flow() -> Pipeline:
    p = Pipeline("summarization_flow")
    p.add_tasks([
        Task(name="clean_input", func=lambda text: text.strip().lower(),
             input_key="raw_text", output_key="cleaned_text"),
        Task(name="summarize", func=lambda text: text.split(".")[0],
             input_key="cleaned_text", output_key="summary"),
    ])
    return p


# --- Task validation -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    (dict(func="len"), ["func must be callable", "str"]),
    (dict(), ["nothing to run", "func=<callable>"]),
    (dict(model="m"), ["nothing to run", "prompt_template"]),
    (dict(func=len, model="m", prompt_template="x"), ["not both"]),
    (dict(func=len, cost=-1.0), ["cost", ">= 0", "-1.0"]),
    (dict(func=len, cost=math.inf), ["cost", "finite"]),
    (dict(func=len, parallel=1.5), ["parallel", "[0, 1]", "1.5"]),
    (dict(func=len, parallel=-0.1), ["parallel", "[0, 1]"]),
    (dict(func=len, retries=-1), ["retries"]),
    (dict(func=len, output_size=-2), ["output_size"]),
    (dict(func=len, input_key="a", input_keys=["b"]), ["input_key or input_keys"]),
    (dict(func=len, input_keys="abc"), ["list of keys", "input_key='abc'"]),
    (dict(func=len, input_keys=["a", "a"]), ["reads a key twice"]),
    (dict(func=len, input_key="a", output_key="a"), ["reads and writes the same key 'a'"]),
    (dict(func=len, resources={"GPU": -1}), ["resources"]),
    (dict(model="m", prompt_template="Summarise {text}", input_key="doc"),
     ["{text}", "['doc']", "input_keys"]),
    (dict(model="m", prompt_template="Summarise {}", input_key="doc"), ["positional"]),
])
def test_task_refuses_bad_arguments_naming_task_and_fix(kwargs, words):
    with pytest.raises(PipelineError) as info:
        Task(name="bad_task", **kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, message
    if "name" not in kwargs:
        assert "bad_task" in message


def test_task_output_key_defaults_to_name_and_calls_positionally():
    t = Task("join", func=lambda a, b: a + b, input_keys=["x", "y"])
    assert t.output_key == "join" and t.inputs == ("x", "y")
    assert t("a", "b") == "ab"


# --- Pipeline validation ---------------------------------------------------------------------

def test_duplicate_task_name_refused():
    p = Pipeline("p", [Task("a", func=len, input_key="x", output_key="n")])
    with pytest.raises(PipelineError, match="already has a task named 'a'.*rename"):
        p.add_task(Task("a", func=len, input_key="x", output_key="m"))


def test_two_writers_of_one_key_refused():
    p = Pipeline("p", [Task("a", func=len, input_key="x", output_key="n")])
    with pytest.raises(PipelineError, match="tasks 'a' and 'b' both write key 'n'"):
        p.add_task(Task("b", func=len, input_key="x", output_key="n"))


def test_add_task_refuses_a_plain_function():
    with pytest.raises(PipelineError, match="takes a Task, got function"):
        Pipeline("p").add_task(lambda x: x)  # type: ignore[arg-type]


def test_cycle_listed_with_its_keys():
    p = Pipeline("loop", [
        Task("a", func=abs, input_key="z", output_key="x"),
        Task("b", func=abs, input_key="x", output_key="y"),
        Task("c", func=abs, input_key="y", output_key="z"),
    ])
    with pytest.raises(PipelineError) as info:
        p.compile()
    msg = str(info.value)
    assert "cycle" in msg
    # The cycle is listed start to start, whichever task networkx starts from.
    listed = msg.split("cycle: ")[1].split(" (")[0].split(" -> ")
    assert listed[0] == listed[-1] and sorted(listed[:-1]) == ["a", "b", "c"]
    assert "b reads 'x' from a" in msg


def test_missing_key_names_task_key_and_existing_keys():
    p = _text_flow()
    p.add_task(Task("translate", func=str.upper, input_key="sumary", output_key="fr"))
    with pytest.raises(PipelineError) as info:
        p.run(raw_text="Hello. World.")
    msg = str(info.value)
    assert "task 'translate' reads key 'sumary'" in msg
    assert "'summary'" in msg and "'raw_text'" in msg


def test_unknown_and_produced_input_keys_refused():
    p = _text_flow()
    with pytest.raises(PipelineError, match="'raw_txt', which no task reads.*\\['raw_text'\\]"):
        p.run(raw_text="x", raw_txt="y")
    with pytest.raises(PipelineError, match="'summary', which task 'summarize' writes"):
        p.run(raw_text="x", summary="y")


def test_input_key_named_like_a_run_argument_refused():
    p = Pipeline("p", [Task("a", func=str, input_key="policy", output_key="y")])
    with pytest.raises(PipelineError, match="'policy' is also a run\\(\\) argument.*policy_value"):
        p.run(policy="heft")


def test_empty_pipeline_refused():
    with pytest.raises(PipelineError, match="no tasks"):
        Pipeline("empty").compile()


def test_nothing_runs_when_validation_fails():
    calls = []
    p = Pipeline("p", [Task("a", func=lambda x: calls.append(x), input_key="x", output_key="y"),
                       Task("b", func=abs, input_key="missing", output_key="z")])
    with pytest.raises(PipelineError):
        p.run(x=1)
    assert calls == []


# --- compile ---------------------------------------------------------------------------------

def test_compile_builds_graph_from_keys():
    p = demo.build_pipeline()
    g = p.compile()
    assert len(g) == 9
    assert set(g.dependencies("merge_report")) == {
        "word_frequencies", "keywords", "readability", "sentiment", "entities"}
    assert set(g.dependencies("summarise")) == {"split_sentences", "merge_report"}
    assert g.nx.nodes["keywords"]["cost"] == 3.0
    assert g.nx.nodes["keywords"]["task"] is p.tasks["keywords"]
    assert g.nx.edges["split_sentences", "keywords"]["size"] == pytest.approx(0.2)
    assert g.tasks.index("clean_text") < g.tasks.index("split_sentences")


# --- run -------------------------------------------------------------------------------------

def test_issue_example_runs_and_returns_every_key():
    result = _text_flow().run(raw_text="  Hello World. Second.  ")
    assert result == {"raw_text": "  Hello World. Second.  ",
                      "cleaned_text": "hello world. second.", "summary": "hello world"}


@pytest.mark.parametrize("policy", ["heft", "fifo", "random"])
def test_demo_result_same_under_every_policy(policy):
    result = demo.build_pipeline().run(policy=policy, raw_text=demo.DEMO_TEXT)
    assert set(result) == {"raw_text", *demo.build_pipeline().outputs}
    assert result["entities"] == ["HEFT", "Topcuoglu", "Hariri", "Wu", "Berlin", "Paris"]
    assert result["readability"]["sentences"] == 11
    assert result["summary"].startswith("A pipeline is a directed acyclic graph")


def test_local_run_follows_planned_start_order():
    order = []

    def step(name):
        def f(*args):
            order.append(name)
            return name
        f.__name__ = name
        return f

    p = Pipeline("fan", [Task("root", func=step("root"), input_key="x", output_key="r"),
                         Task("light", func=step("light"), input_key="r", output_key="l", cost=1),
                         Task("heavy", func=step("heavy"), input_key="r", output_key="h", cost=9),
                         Task("join", func=step("join"), input_keys=["l", "h"], output_key="j")])
    from openautoglm.core.cluster import Cluster
    plan = p.plan(cluster=Cluster.homogeneous(1))
    p.run(cluster=Cluster.homogeneous(1), x=0)
    assert order == sorted(order, key=lambda k: plan.placements[k].start)
    assert order[0] == "root" and order[-1] == "join"


def test_retries_then_success():
    attempts = []

    def flaky(x):
        attempts.append(x)
        if len(attempts) < 3:
            raise ConnectionError("transient")
        return x * 2

    p = Pipeline("p", [Task("flaky", func=flaky, input_key="x", output_key="y", retries=2)])
    assert p.run(x=21)["y"] == 42
    assert len(attempts) == 3


def test_failure_names_task_and_keeps_partial_results():
    def boom(_):
        raise ZeroDivisionError("no")

    p = Pipeline("p", [Task("ok", func=lambda x: x + 1, input_key="x", output_key="y"),
                       Task("boom", func=boom, input_key="y", output_key="z", retries=1),
                       Task("after", func=abs, input_key="z", output_key="w")])
    with pytest.raises(TaskFailedError) as info:
        p.run(x=1)
    err = info.value
    assert err.task == "boom" and err.attempts == 2
    assert "task 'boom' failed after 2 attempt(s): ZeroDivisionError" in str(err)
    assert err.partial == {"x": 1, "y": 2}
    assert isinstance(err.__cause__, ZeroDivisionError)


def test_engine_receives_pipeline_policy_and_inputs():
    class RecordingEngine:
        """A real object honouring the engine contract; records what it was asked."""

        def __init__(self):
            self.calls = []

        def run(self, pipeline, policy, inputs):
            self.calls.append((pipeline, policy, inputs))
            return {"done": True}

    engine = RecordingEngine()
    p = _text_flow()
    assert p.run(engine=engine, policy="cpop", raw_text="x") == {"done": True}
    assert engine.calls == [(p, "cpop", {"raw_text": "x"})]
    with pytest.raises(PipelineError):  # validated before the engine is called
        p.run(engine=engine)
    from openautoglm.core.cluster import Cluster
    with pytest.raises(PipelineError, match="drop cluster= or drop engine="):
        p.run(engine=engine, cluster=Cluster.homogeneous(2), raw_text="x")
    assert len(engine.calls) == 1


def test_prompt_task_formats_template_and_calls_model():
    """A model registered in the real registry answers the formatted prompt."""
    from openautoglm.models.registry import register_model, unregister_model

    class Echo:
        name, cost = "echo-pipeline-test", 0.0

        def generate(self, prompt, **kw):
            return prompt.upper()

        def available(self):
            return True

    register_model("echo-pipeline-test", Echo, replace=True)
    try:
        p = Pipeline("p", [Task("ask", model="echo-pipeline-test", input_key="text",
                                prompt_template="summarise: {text}", output_key="answer")])
        assert p.run(text="abc")["answer"] == "SUMMARISE: ABC"
    finally:
        unregister_model("echo-pipeline-test")


def test_unknown_model_refused_before_anything_runs():
    calls = []
    p = Pipeline("p", [Task("first", func=calls.append, input_key="x", output_key="y"),
                       Task("ask", model="no-such-model", prompt_template="{y}", input_key="y")])
    with pytest.raises(PipelineError, match="task 'ask': unknown model 'no-such-model'"):
        p.run(x=1)
    assert calls == []


def test_prompt_yaml_example_loads():
    p = Pipeline.from_yaml(DATA / "prompt_pipeline.yaml")
    answer = p.tasks["answer"]
    assert answer.model == "glm-tiny" and answer.inputs == ("question",)
    assert answer.prompt_template == "Question: {question}\nAnswer:"
    assert p.inputs == ["raw_question"]
    assert Pipeline.from_yaml(p.to_yaml()).to_yaml() == p.to_yaml()


# --- YAML ------------------------------------------------------------------------------------

def test_yaml_example_loads_and_matches_the_demo():
    p = Pipeline.from_yaml(DATA / "text_pipeline.yaml")
    assert list(p.tasks) == list(demo.build_pipeline().tasks)
    assert p.tasks["keywords"].func is demo.keywords
    assert p.run(raw_text=demo.DEMO_TEXT)["summary"] == \
        demo.build_pipeline().run(raw_text=demo.DEMO_TEXT)["summary"]


def test_yaml_round_trip():
    p = demo.build_pipeline()
    q = Pipeline.from_yaml(p.to_yaml())
    assert q.to_yaml() == p.to_yaml()
    for name, t in p.tasks.items():
        u = q.tasks[name]
        assert (u.func, u.inputs, u.output_key, u.cost, u.output_size) == \
            (t.func, t.inputs, t.output_key, t.cost, t.output_size)


def test_yaml_dotted_func_path_and_string_source():
    p = Pipeline.from_yaml("name: t\ntasks:\n  - {name: a, func: openautoglm.demo.clean_text, "
                           "input_key: raw, cost: 0.5, retries: 2, resources: {GPU: 1}}\n")
    t = p.tasks["a"]
    assert t.func is demo.clean_text and t.retries == 2 and t.resources == {"GPU": 1.0}


def test_yaml_unknown_field_named_with_its_task():
    text = "name: t\ntasks:\n  - name: clean\n    func: openautoglm.demo:clean_text\n    colour: red\n"
    with pytest.raises(PipelineError, match="task 'clean' \\(tasks\\[0\\]\\): unknown field 'colour'"):
        Pipeline.from_yaml(text)
    with pytest.raises(PipelineError, match="pipeline: unknown field 'version'"):
        Pipeline.from_yaml("name: t\nversion: 2\ntasks: []\n")


@pytest.mark.parametrize("text, match", [
    ("name: t\ntasks:\n  - {name: a, func: 'no_such_pkg.mod:f'}\n",
     "task 'a': cannot import module 'no_such_pkg.mod'"),
    ("name: t\ntasks:\n  - {name: a, func: 'openautoglm.demo:nope'}\n",
     "module 'openautoglm.demo' has no 'nope'"),
    ("name: t\ntasks:\n  - {name: a, func: len}\n", "not an import path"),
    ("name: t\ntasks:\n  - {name: a, func: 'os:sep'}\n", "func must be callable"),
    ("name: t\ntasks:\n  - {name: a, func: 'os:getcwd', cost: -3}\n",
     "task 'a' \\(tasks\\[0\\]\\): field 'cost'.*greater than or equal to 0"),
    ("name: t\ntasks:\n  - {name: a, func: 'os:getcwd', parallel: 2}\n", "field 'parallel'"),
    ("name: t\ntasks: [\n", "not valid YAML"),
    ("- a\n- b\n", "a mapping with 'name' and 'tasks'"),
    ("name: t\ntasks:\n  - {name: a, func: 'abs', input_key: y, output_key: x}\n"
     "  - {name: b, func: 'abs', input_key: x, output_key: y}\n", "has a cycle"),
])
def test_yaml_errors_are_clear(text, match):
    text = text.replace("'abs'", "'builtins:abs'")
    with pytest.raises(PipelineError, match=match):
        Pipeline.from_yaml(text, allowed_modules=["os", "builtins", "no_such_pkg"])


def test_yaml_missing_file():
    with pytest.raises(PipelineError, match="'nowhere.yaml' not found"):
        Pipeline.from_yaml("nowhere.yaml")


def test_to_yaml_refuses_lambdas():
    with pytest.raises(PipelineError, match="task 'clean_input'.*module level"):
        _text_flow().to_yaml()


def test_yaml_pipeline_example_is_valid():
    """Every example pipeline in tests/data loads."""
    files = sorted(DATA.glob("*pipeline*.yaml"))
    assert files
    for path in files:
        assert len(Pipeline.from_yaml(path)) > 0


# --- properties ------------------------------------------------------------------------------

@st.composite
def keyed_pipelines(draw):
    """Random pipelines: task i reads some of the inputs and of the outputs of tasks before it."""
    n = draw(st.integers(1, 8))
    available = ["in0", "in1"]
    specs = []
    for i in range(n):
        reads = draw(st.lists(st.sampled_from(available), unique=True, max_size=3))
        specs.append((f"t{i}", reads, draw(st.floats(0, 5)), draw(st.floats(0, 2))))
        available.append(f"k{i}")
    order = draw(st.permutations(range(n)))  # the order tasks are added in does not matter
    return [specs[i] for i in order]


def _concat(name):
    def f(*args):
        return name + "(" + ",".join(args) + ")"
    return f


@settings(max_examples=40, deadline=None)
@given(keyed_pipelines(), st.sampled_from(["heft", "fifo", "random"]))
def test_run_equals_reference_evaluation(specs, policy):
    p = Pipeline("prop")
    for name, reads, cost, size in specs:
        p.add_task(Task(name, func=_concat(name), input_keys=reads, output_key="k" + name[1:],
                        cost=cost, output_size=size))
    g = p.compile()
    expected_edges = {(f"t{r[1:]}", name) for name, reads, _, _ in specs for r in reads
                      if r.startswith("k")}
    assert set(g.nx.edges) == expected_edges
    inputs = {k: k.upper() for k in p.inputs}
    reference = dict(inputs)
    for key in nx.topological_sort(g.nx):
        t = p.tasks[key]
        reference[t.output_key] = t(*(reference[k] for k in t.inputs))
    assert p.run(policy=policy, **inputs) == reference


def test_task_pickled_by_value_keeps_its_source_line_in_tracebacks():
    """cloudpickle >= 3.1.3 renames every code object it pickles by value to "<dynamic-code>",
    so a worker's traceback lost the user's line (`File "<dynamic-code>", line 77`). A Task
    ships its function's source lines and restores the name where it is unpickled."""
    import pickle
    import traceback

    import cloudpickle

    from openautoglm.pipeline._source import SourcedFunction

    t = Task("boom", func=lambda x: x / 0, input_key="x", output_key="y")
    state = cloudpickle.loads(cloudpickle.dumps(t.__getstate__()))
    f = state["func"]
    assert isinstance(f, SourcedFunction)
    # What cloudpickle 3.1.3 does on the way, whatever version is installed here:
    f.func.__code__ = f.func.__code__.replace(co_filename="<dynamic-code>")
    f.__setstate__(f.__getstate__())
    clone = Task.__new__(Task)
    clone.__setstate__(state)
    with pytest.raises(ZeroDivisionError) as info:
        clone(1)
    text = "".join(traceback.format_tb(info.value.__traceback__))
    assert "x / 0" in text and "<dynamic-code>" not in text
    assert pickle.loads(pickle.dumps(SourcedFunction(len)))("ab") == 2
