"""Hostile and unlucky input at every public entry point (issue 13).

Each case is one kind of bad input: the test asserts the project's own error (``InputError``,
a ``ValueError``/``TypeError`` subclass, or ``PipelineError``/``HistoryError``), that the
message names the field, and, where a wrong answer used to come back silently, the right answer.
``KINDS`` at the bottom counts the kinds; the HTTP, History, Engine and property suites add theirs.
"""
from __future__ import annotations

import json
import math
import time
import warnings

import networkx as nx
import pytest

import openautoglm as oag
from openautoglm._validate import InputError, short
from openautoglm.auto.autotrain.config import AutoTrainConfigError, load_config
from openautoglm.cli import main
from openautoglm.core.loaders import TraceWarning, load_wfcommons
from openautoglm.pipeline import Pipeline, PipelineError, Task
from openautoglm.testing import assert_valid_schedule


def node_graph(**attrs) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_node("a", **attrs)
    return G


# ------------------------------------------------------------------ graphs
GRAPH_CASES = {
    "costs as a string": (node_graph(costs="12"), "costs"),
    "costs as a dict": (node_graph(costs={"w": 1}), "costs"),
    "cost as a string": (node_graph(cost="5"), "cost"),
    "cost as a bool": (node_graph(cost=True), "cost"),
    "cost as None": (node_graph(cost=None), "cost"),
    "cost negative": (node_graph(cost=-1.0), "cost"),
    "cost inf": (node_graph(cost=math.inf), "cost"),
    "cost huge": (node_graph(cost=1e308), "cost"),
    "parallel as a string": (node_graph(cost=1, parallel="x"), "parallel"),
    "parallel nan": (node_graph(cost=1, parallel=math.nan), "parallel"),
    "parallel above 1": (node_graph(cost=1, parallel=1.5), "parallel"),
}


@pytest.mark.parametrize("case", list(GRAPH_CASES))
def test_from_networkx_names_the_field(case):
    G, field = GRAPH_CASES[case]
    with pytest.raises(InputError, match=field):
        oag.TaskGraph.from_networkx(G)


def test_costs_string_is_not_read_digit_by_digit():
    """``costs="12"`` used to become ``[1.0, 2.0]``: two workers' run times from one string."""
    with pytest.raises(InputError, match="costs must be a list"):
        oag.TaskGraph.from_networkx(node_graph(costs="12"))


def test_edge_size_string_is_named():
    G = nx.DiGraph()
    G.add_nodes_from("ab", cost=1.0)
    G.add_edge("a", "b", size="big")
    with pytest.raises(InputError, match="edge 'a' -> 'b': size"):
        oag.TaskGraph.from_networkx(G)


def test_not_a_graph():
    with pytest.raises(InputError, match="networkx.DiGraph"):
        oag.TaskGraph.from_networkx({"a": ["b"]})


# ------------------------------------------------------------------ clusters
CLUSTER_CASES = {
    "speeds as a string": ({"speeds": "12"}, "speeds must be a list"),
    "speeds as bytes": ({"speeds": b"12"}, "speeds must be a list"),
    "speeds nested": ({"speeds": [[1, 2], [3, 4]]}, r"speeds\[0\]"),
    "speeds of bools": ({"speeds": [True]}, r"speeds\[0\]"),
    "speeds as a dict": ({"speeds": {"a": 1}}, "speeds must be a list"),
    "speeds None": ({"speeds": None}, "speeds must be a list"),
    "speeds nan": ({"speeds": [math.nan]}, "speeds"),
    "bandwidth as a string": ({"speeds": [1], "bandwidth": "fast"}, "bandwidth"),
    "bandwidth nan": ({"speeds": [1], "bandwidth": math.nan}, "bandwidth"),
    "cores as a string": ({"speeds": [1], "cores": "2"}, "cores"),
    "cores huge": ({"speeds": [1], "cores": 10**30}, "cores"),
}


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
def test_cluster_names_the_field(case):
    kwargs, match = CLUSTER_CASES[case]
    with pytest.raises(InputError, match=match):
        oag.Cluster(**kwargs)


def test_cluster_string_is_not_one_worker_of_speed_12():
    with pytest.raises(InputError, match="got str '12'"):
        oag.Cluster("12")


@pytest.mark.parametrize("n", ["3", 2.5, 10**12, True])
def test_homogeneous_worker_count_is_an_int_within_bounds(n):
    with pytest.raises(InputError, match="workers"):
        oag.Cluster.homogeneous(n)


# ------------------------------------------------------------------ schedule()
def two_tasks(cost: float = 1.0, size: float = 1.0) -> oag.TaskGraph:
    G = nx.DiGraph()
    G.add_nodes_from("ab", cost=cost)
    G.add_edge("a", "b", size=size)
    return oag.TaskGraph.from_networkx(G)


KWARG_CASES = {
    "unknown argument": ("heft", {"bogus": 1}, "no argument 'bogus'"),
    "int argument as a string": ("gnn", {"samples": "x"}, "samples must be an integer"),
    "seed as a string": ("random", {"seed": "x"}, "seed must be an integer"),
    "negative seed": ("random", {"seed": -1}, "seed must be >= 0"),
    "negative time limit": ("optimal", {"time_limit": -1}, "time_limit must be >= 0"),
    "bool argument as an int": ("heft", {"insertion": 1}, "insertion must be True or False"),
    "float argument nan": ("heft", {"comm_factor": math.nan}, "comm_factor"),
    "policy not a string": (5, {}, "unknown scheduling policy 5"),
}


@pytest.mark.parametrize("case", list(KWARG_CASES))
def test_schedule_arguments_are_checked(case):
    policy, kwargs, match = KWARG_CASES[case]
    with pytest.raises(InputError, match=match):
        oag.schedule(two_tasks(), oag.Cluster.homogeneous(2), policy, **kwargs)


@pytest.mark.parametrize("what", ["graph", "cluster"])
def test_schedule_wrong_object_types(what):
    g, c = two_tasks(), oag.Cluster.homogeneous(2)
    args = (nx.DiGraph(), c) if what == "graph" else (g, [1, 1])
    with pytest.raises(InputError, match=f"{what} must be a"):
        oag.schedule(*args)


@pytest.mark.parametrize("policy", ["gnn", "optimal", "heft"])
def test_empty_graph_gives_the_empty_schedule(policy):
    """A 0-node graph raised numpy's 'zero-size array' under gnn and optimal."""
    s = oag.schedule(oag.TaskGraph.from_networkx(nx.DiGraph()), oag.Cluster.homogeneous(2), policy)
    assert s.makespan == 0 and len(s.placements) == 0


def test_gnn_two_free_tasks_with_an_edge():
    """``a -> b``, both cost 0: every worker's total work is 0 (was ZeroDivisionError)."""
    g, c = two_tasks(cost=0.0), oag.Cluster.homogeneous(2)
    s = oag.schedule(g, c, "gnn")
    assert_valid_schedule(s)
    assert s.makespan == 0.0


@pytest.mark.parametrize("costs", [(1.7e-220, 1.7e-220, 1.0), (0.0, 1e-9, 1e-12, 1e-12)])
def test_optimal_on_tiny_costs_is_valid_and_optimal(costs):
    """Costs far below the solver's tolerances: a valid plan, no 'infeasible' error."""
    G = nx.DiGraph()
    for i, cost in enumerate(costs):
        G.add_node(i, cost=cost)
    G.add_edge(1, len(costs) - 1, size=0.0)
    g, c = oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(1)
    s = oag.schedule(g, c, "optimal")
    assert_valid_schedule(s)
    # Exact, not within the timelines' 1e-9 s rounding: one core runs one task at a time.
    spans = sorted((p.start, p.finish) for p in s.placements.values())
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), spans
    assert s.makespan == pytest.approx(sum(costs), rel=1e-12, abs=0)


# ------------------------------------------------------------------ Task
TASK_CASES = {
    "resources as a list": ({"resources": [1, 2]}, "resources must be a mapping"),
    "resources as a string": ({"resources": "GPU"}, "resources must be a mapping"),
    "resource amount inf": ({"resources": {"GPU": math.inf}}, "finite amounts"),
    "resource amount nan": ({"resources": {"GPU": math.nan}}, "finite amounts"),
    "resource amount a string": ({"resources": {"GPU": "1"}}, "finite amounts"),
    "parallel as a string": ({"parallel": "0.5"}, "parallel"),
    "retries huge": ({"retries": 10**12}, "retries"),
    "retries as a bool": ({"retries": True}, "retries"),
}


@pytest.mark.parametrize("case", list(TASK_CASES))
def test_task_arguments_are_checked(case):
    kwargs, match = TASK_CASES[case]
    with pytest.raises(PipelineError, match=match):
        Task("t", func=str.strip, input_key="x", **kwargs)


def test_error_messages_never_echo_a_huge_value():
    with pytest.raises(PipelineError) as info:
        Task("t", func=str.strip, input_key="x", cost="x" * 1_000_000)
    assert len(str(info.value)) < 400
    assert len(short("y" * 10**6)) < 120


# ------------------------------------------------------------------ YAML pipelines
def billion_laughs() -> str:
    lines = ["name: x", "tasks:", '  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  - &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_fast():
    text = billion_laughs()
    assert len(text) < 450
    t0 = time.monotonic()
    with pytest.raises(PipelineError, match="alias"):
        Pipeline.from_yaml(text)
    assert time.monotonic() - t0 < 30  # was 45 s and 1.7 GB; now it stops at the first alias


def task_yaml(**fields) -> str:
    entry = {"name": "a", "func": "openautoglm.demo:clean_text", "input_key": "raw", **fields}
    body = ", ".join(f"{k}: {v}" for k, v in entry.items())
    return f"name: p\ntasks:\n  - {{{body}}}\n"


YAML_CASES = {
    "func os:system": (task_yaml(func="'os:system'"), "may not import"),
    "func builtins:eval": (task_yaml(func="'builtins:eval'"), "may not import"),
    "func subprocess.run": (task_yaml(func="subprocess.run"), "may not import"),
    "func through another module": (task_yaml(func="'openautoglm.demo:re.compile'"),
                                    "walks into the module"),
    "func private name": (task_yaml(func="'openautoglm.demo:__builtins__'"), "private"),
    "func not a string": (task_yaml(func="[1, 2]"), "func"),
    "cost as a string": (task_yaml(cost="'5'"), "field 'cost'"),
    "retries as a bool": (task_yaml(retries="true"), "field 'retries'"),
    "parallel as a string": (task_yaml(parallel="'0.5'"), "field 'parallel'"),
    "cost .inf": (task_yaml(cost=".inf"), "field 'cost'"),
    "duplicate keys": (task_yaml(cost=1) + "    # dup\n" if False else
                       "name: p\ntasks:\n  - {name: a, func: 'openautoglm.demo:clean_text', "
                       "input_key: raw, cost: 1, cost: 2}\n", "duplicate key 'cost'"),
    "duplicate top-level key": ("name: p\nname: q\ntasks: []\n", "duplicate key 'name'"),
    "deep flow nesting": ("name: p\ntasks: " + "[" * 5000 + "]" * 5000 + "\n", "nests"),
    "deep block nesting": ("name: p\ntasks:\n" + "".join("  " * i + "- \n" for i in range(1, 90)),
                           "deeper than"),
    "not a mapping": ("- a\n- b\n", "a mapping"),
    "huge text": ("name: p\n#" + "x" * (5 * 2**20) + "\ntasks: []\n", "over the"),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_yaml_pipeline_refusals(case):
    text, match = YAML_CASES[case]
    with pytest.raises(PipelineError, match=match):
        Pipeline.from_yaml(text)


def test_yaml_refusal_runs_nothing(tmp_path):
    """The refused module is not even imported (its top level could run code)."""
    (tmp_path / "evil_mod_hostile.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\ndef f(x): return x\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(PipelineError, match="may not import"):
            Pipeline.from_yaml(task_yaml(func="'evil_mod_hostile:f'"))
    finally:
        sys.path.remove(str(tmp_path))
    assert not (tmp_path / "ran").exists()


def test_allowed_modules_and_the_files_own_package(tmp_path, monkeypatch):
    pkg = tmp_path / "mypipes_hostile"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "steps.py").write_text("def shout(x):\n    return x.upper()\n")
    (pkg / "flow.yaml").write_text(
        "name: f\ntasks:\n  - {name: s, func: 'mypipes_hostile.steps:shout', input_key: raw}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # The file's own package is allowed by default ...
    assert Pipeline.from_yaml(pkg / "flow.yaml").run(raw="hi")["s"] == "HI"
    # ... the same YAML as text is not (no file, no package) unless allowed by name.
    text = (pkg / "flow.yaml").read_text()
    with pytest.raises(PipelineError, match="allowed_modules=\\['mypipes_hostile'\\]"):
        Pipeline.from_yaml(text)
    assert len(Pipeline.from_yaml(text, allowed_modules=["mypipes_hostile"])) == 1
    monkeypatch.setenv("OPENAUTOGLM_ALLOWED_MODULES", "mypipes_hostile")
    assert len(Pipeline.from_yaml(text)) == 1


def test_binary_yaml_file(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    with pytest.raises(PipelineError, match="not UTF-8 text"):
        Pipeline.from_yaml(p)


def test_autotrain_config_billion_laughs(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                 "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n")
    with pytest.raises(AutoTrainConfigError, match="alias"):
        load_config(p)


def test_autotrain_config_duplicate_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("metric: bleu\nmetric: rouge-l\n")
    with pytest.raises(AutoTrainConfigError, match="duplicate key 'metric'"):
        load_config(p)


# ------------------------------------------------------------------ WfFormat traces
def trace(tasks, files=None, runtimes=None) -> dict:
    return {"schemaVersion": "1.5", "workflow": {
        "specification": {"tasks": tasks, "files": files if files is not None else []},
        "execution": {"tasks": runtimes if runtimes is not None else
                      [{"id": t["id"], "runtimeInSeconds": 1.0} for t in tasks
                       if isinstance(t, dict) and "id" in t]}}}


def fork(**over) -> dict:
    tasks = [{"id": "a", "parents": [], "outputFiles": ["f"]},
             {"id": "b", "parents": ["a"], "inputFiles": ["f"]}]
    return trace(tasks, files=[{"id": "f", "sizeInBytes": 2000}], **over)


TRACE_CASES = {
    "duplicate task ids": (trace([{"id": "a", "parents": []}, {"id": "a", "parents": []}]),
                           "appears twice"),
    "runtime as a string": (fork(runtimes=[{"id": "a", "runtimeInSeconds": "3"},
                                           {"id": "b", "runtimeInSeconds": 1}]), "runtimeInSeconds"),
    "runtime negative": (fork(runtimes=[{"id": "a", "runtimeInSeconds": -3},
                                        {"id": "b", "runtimeInSeconds": 1}]), "runtimeInSeconds"),
    "size as a string": (trace([{"id": "a", "parents": [], "outputFiles": ["f"]}],
                               files=[{"id": "f", "sizeInBytes": "2kB"}]), "sizeInBytes"),
    "tasks not a list": (trace({"a": 1}), "must be a list of objects"),
    "parents not a list": (trace([{"id": "a", "parents": "b"}]), "parents"),
    "task without id": (trace([{"name": "a"}]), "needs a string 'id'"),
    "workflow not an object": ({"schemaVersion": "1.5", "workflow": [1]}, "no 'workflow' object"),
}


@pytest.mark.parametrize("case", list(TRACE_CASES))
def test_trace_refusals(tmp_path, case):
    doc, match = TRACE_CASES[case]
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match):
        load_wfcommons(p)


def test_duplicate_ids_are_not_merged(tmp_path):
    """Two tasks 'a' used to become one node, and the edge of 2,000 bytes was lost."""
    tasks = [{"id": "a", "parents": [], "outputFiles": ["f"]},
             {"id": "a", "parents": [], "outputFiles": []},
             {"id": "b", "parents": ["a"], "inputFiles": ["f"]}]
    p = tmp_path / "t.json"
    p.write_text(json.dumps(trace(tasks, files=[{"id": "f", "sizeInBytes": 2000}])))
    with pytest.raises(InputError, match="'a' appears twice"):
        load_wfcommons(p)


def test_files_missing_from_the_trace_warn(tmp_path):
    """Edges whose files have no size used to get size 0 silently: now a TraceWarning."""
    doc = fork()
    doc["workflow"]["specification"]["files"] = []
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    with pytest.warns(TraceWarning, match="1 file\\(s\\).*no size"):
        g = load_wfcommons(p)
    assert g.edge_size.tolist() == [0.0]
    p.write_text(json.dumps(fork()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_wfcommons(p, bandwidth=1000.0).edge_size.tolist() == [2.0]


@pytest.mark.parametrize("kind", ["directory", "binary", "deep nesting", "truncated"])
def test_unreadable_traces(tmp_path, kind):
    p = tmp_path / "t.json"
    if kind == "directory":
        p.mkdir()
    elif kind == "binary":
        p.write_bytes(b"\xff\xfe\x00\x01" * 100)
    elif kind == "deep nesting":
        p.write_text("[" * 100_000 + "]" * 100_000)
    else:
        p.write_text(json.dumps(fork())[:-10])
    with pytest.raises(InputError, match="directory|UTF-8|deeper|nests|not valid JSON"):
        load_wfcommons(p)


@pytest.mark.parametrize("bandwidth", ["fast", 0, -1, math.nan, math.inf])
def test_trace_bandwidth(tmp_path, bandwidth):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(fork()))
    with pytest.raises(InputError, match="bandwidth"):
        load_wfcommons(p, bandwidth=bandwidth)


# ------------------------------------------------------------------ CLI
@pytest.mark.parametrize("kind", ["directory", "malformed", "binary", "duplicate ids"])
def test_cli_bad_trace_exits_2_on_one_line(tmp_path, capsys, kind):
    p = tmp_path / "t.json"
    if kind == "directory":
        p.mkdir()
    elif kind == "malformed":
        p.write_text(json.dumps({"workflow": {"specification": {"tasks": [1, 2]},
                                              "execution": {}}}))
    elif kind == "binary":
        p.write_bytes(bytes(range(256)))
    else:
        p.write_text(json.dumps(TRACE_CASES["duplicate task ids"][0]))
    assert main(["schedule", str(p), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_cli_refuses_a_pipeline_naming_os_system(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("name: t\ntasks:\n  - {name: a, func: 'os:system', input_key: cmd}\n")
    assert main(["run", str(p), "--input", f"cmd=touch {tmp_path / 'pwned'}"]) == 2
    err = capsys.readouterr().err
    assert "may not import" in err and "--allow-module os" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "pwned").exists()


def test_cli_yaml_error_is_one_line(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("name: t\ntasks:\n  - {name: a, func: 'openautoglm.demo:clean_text', "
                 "input_key: x, cost: '5', retries: true}\n")
    assert main(["run", str(p), "--input", "x=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'cost'" in err and "'retries'" in err


# ------------------------------------------------------------------ weights and checkpoints
@pytest.fixture
def tiny_checkpoint(tmp_path):
    import torch

    from openautoglm import glm

    torch.manual_seed(0)
    tok = glm.CharTokenizer("abc")
    cfg = glm.GLMConfig(vocab_size=tok.vocab_size, n_layers=1, hidden=8, heads=2, max_len=16)
    return glm.save_checkpoint(tmp_path / "ck", glm.GLMModel(cfg), tok)


def test_checkpoint_config_asking_for_131_gb_is_refused_before_allocating(tiny_checkpoint):
    from openautoglm import glm

    meta = json.loads((tiny_checkpoint / "config.json").read_text())
    meta["config"].update(vocab_size=2**20, hidden=2**15, n_layers=256, heads=256)
    (tiny_checkpoint / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="does not belong to these weights|do not match"):
        glm.load_checkpoint(tiny_checkpoint)


@pytest.mark.parametrize("field, value", [("vocab_size", 2**40), ("n_layers", 10**9),
                                          ("hidden", "64"), ("heads", True), ("bogus", 1)])
def test_checkpoint_config_fields_are_bounded(tiny_checkpoint, field, value):
    from openautoglm import glm

    meta = json.loads((tiny_checkpoint / "config.json").read_text())
    meta["config"][field] = value
    (tiny_checkpoint / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=field):
        glm.load_checkpoint(tiny_checkpoint)


def test_export_with_a_lying_config(tmp_path):
    import torch

    from openautoglm import glm
    from openautoglm.models import load_glm, save_glm

    tok = glm.CharTokenizer("abc")
    cfg = glm.GLMConfig(vocab_size=tok.vocab_size, n_layers=1, hidden=8, heads=2, max_len=16)
    path = save_glm(tmp_path / "m.pt", glm.GLMModel(cfg), tok)
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    meta["config"]["max_len"] = 2**20
    blob["meta"] = json.dumps(meta)
    torch.save(blob, path)
    with pytest.raises(InputError, match="pos|shape|do not match"):
        load_glm(path)


@pytest.mark.parametrize("content", [b"not weights at all", b"\x80\x04K\x01.", b""])
def test_gnn_weights_that_are_not_weights(tmp_path, content):
    p = tmp_path / "w.pt"
    p.write_bytes(content)
    with pytest.raises(InputError, match="not a scheduler weights file") as info:
        oag.schedule(two_tasks(), oag.Cluster.homogeneous(2), "gnn", weights=str(p))
    assert "weights_only=False" not in str(info.value)


def test_glm_export_that_is_a_pickle_of_code(tmp_path):
    import pickle

    from openautoglm.models import load_glm

    p = tmp_path / "m.pt"
    p.write_bytes(pickle.dumps(print))  # a global: refused by weights_only loading
    with pytest.raises(InputError, match="not an openautoglm GLM export") as info:
        load_glm(p)
    assert "weights_only=False" not in str(info.value)
