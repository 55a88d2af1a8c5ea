"""The command line: ``python -m openautoglm`` in a subprocess, and ``main(argv)`` in process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openautoglm.cli import main, parse_inputs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
TRACES = ROOT.parent / "shared" / "workflows" / "pegasus"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def test_python_dash_m_demo_prints_plan_and_result():
    out = subprocess.run([sys.executable, "-m", "openautoglm", "demo"], capture_output=True,
                         text=True, timeout=120, env=_env(), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Plan of 'text_analysis': 9 tasks, policy 'heft', 4 workers" in text
    for task in ("clean_text", "split_sentences", "keywords", "merge_report", "summarise"):
        assert task in text
    assert "planned makespan 5.50 s (lower bound 5.50 s)" in text
    assert "ran 9 tasks locally" in text
    assert "entities     HEFT, Topcuoglu, Hariri, Wu, Berlin, Paris" in text
    assert "summary      A pipeline is a directed acyclic graph" in text


def test_demo_policy_and_workers(capsys):
    assert main(["demo", "--policy", "fifo", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "policy 'fifo', 1 workers" in text
    # One worker runs everything back to back: the makespan is the total cost, 11.5 s.
    assert "planned makespan 11.50 s" in text


def test_run_yaml_with_inputs(capsys):
    assert main(["run", str(DATA / "text_pipeline.yaml"), "--input",
                 "raw_text=Berlin is big. We like Paris and Berlin."]) == 0
    text = capsys.readouterr().out
    assert "summary = " in text and "entities = ['Paris', 'Berlin']" in text


def test_run_json_and_file_input(tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("One sentence here. Another one there.")
    assert main(["run", str(DATA / "text_pipeline.yaml"), "--json", "--input", f"raw_text=@{doc}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentences"] == ["One sentence here.", "Another one there."]
    assert result["readability"]["sentences"] == 2


@pytest.mark.parametrize("argv, words", [
    (["run", "PIPE"], ["task 'clean_text' reads key 'raw_text'", "Pass raw_text=..."]),
    (["run", "PIPE", "--input", "raw_text"], ["is not key=value"]),
    (["run", "PIPE", "--input", "raw_text=@/no/such/file"], ["file not found"]),
    (["run", "PIPE", "--input", "a=1", "--input", "a=2"], ["given twice"]),
    (["run", "missing.yaml"], ["'missing.yaml' not found"]),
    (["run", "PIPE", "--input", "raw_text=x", "--policy", "nope"], ["unknown scheduling policy 'nope'"]),
    (["demo", "--workers", "0"], ["--workers must be >= 1"]),
])
def test_bad_input_exits_2_with_clear_error(argv, words, capsys):
    argv = [str(DATA / "text_pipeline.yaml") if a == "PIPE" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for word in words:
        assert word in err, err


def test_unknown_yaml_field_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ntasks:\n  - name: a\n    func: builtins:len\n    input_key: x\n"
                   "    priority: 3\n")
    assert main(["run", str(bad), "--input", "x=abc"]) == 2
    assert "task 'a' (tasks[0]): unknown field 'priority'" in capsys.readouterr().err


def test_input_named_like_a_run_argument_exits_2(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("name: t\ntasks:\n  - {name: a, func: 'builtins:str', input_key: policy}\n")
    assert main(["run", str(p), "--input", "policy=3", "--allow-module", "builtins"]) == 2
    assert "'policy' is also a run() argument" in capsys.readouterr().err


def test_failing_task_exits_1_naming_it(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("name: t\ntasks:\n  - {name: parse, func: 'builtins:int', input_key: x, retries: 1}\n")
    assert main(["run", str(p), "--input", "x=abc", "--allow-module", "builtins"]) == 1
    err = capsys.readouterr().err
    assert "task 'parse' failed after 2 attempt(s): ValueError" in err


def _fork_trace(tmp_path: Path) -> Path:
    """a (2 s) writes 4,000 bytes for each of b and c (3 s each)::

        a -> b
        a -> c
    """
    tasks = [
        {"id": "a", "parents": [], "children": ["b", "c"], "inputFiles": [],
         "outputFiles": ["fb", "fc"]},
        {"id": "b", "parents": ["a"], "children": [], "inputFiles": ["fb"], "outputFiles": []},
        {"id": "c", "parents": ["a"], "children": [], "inputFiles": ["fc"], "outputFiles": []},
    ]
    doc = {"schemaVersion": "1.5", "workflow": {
        "specification": {"tasks": tasks, "files": [{"id": "fb", "sizeInBytes": 4000},
                                                     {"id": "fc", "sizeInBytes": 4000}]},
        "execution": {"tasks": [{"id": "a", "runtimeInSeconds": 2.0},
                                {"id": "b", "runtimeInSeconds": 3.0},
                                {"id": "c", "runtimeInSeconds": 3.0}]}}}
    path = tmp_path / "fork.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("bandwidth, makespan", [
    ("1000", "8.00"),   # transfers of 4 s: all on one worker, 2 + 3 + 3
    ("4000", "6.00"),   # transfers of 1 s: c moves, starts at 3, ends at 6
])
def test_schedule_hand_computed_trace(tmp_path, capsys, bandwidth, makespan):
    trace = _fork_trace(tmp_path)
    gantt = tmp_path / "plan.png"
    assert main(["schedule", str(trace), "--workers", "2", "--bandwidth", bandwidth,
                 "--policy", "heft,optimal", "--gantt", str(gantt)]) == 0
    text = capsys.readouterr().out
    assert "fork.json: 3 tasks, 2 edges" in text
    rows = [line for line in text.splitlines() if "heft" in line or "optimal" in line]
    assert len(rows) == 3  # two table rows and the Gantt line
    for row in rows[:2]:
        assert makespan in row and "5.00" in row  # lower bound: critical path 2 + 3
    serial = next(line for line in text.splitlines() if "all on one worker" in line)
    assert "8.00" in serial and "1.600" in serial
    assert gantt.stat().st_size > 1000


def test_schedule_refuses_bad_arguments(tmp_path, capsys):
    trace = _fork_trace(tmp_path)
    assert main(["schedule", str(trace), "--speeds", "1,2", "--workers", "3"]) == 2
    assert "--speeds lists 2 workers but --workers is 3" in capsys.readouterr().err
    assert main(["schedule", str(trace), "--ccr", "-1"]) == 2
    assert main(["schedule", str(tmp_path / "none.json")]) == 2
    assert "no WfFormat trace" in capsys.readouterr().err


@pytest.mark.skipif(not TRACES.is_dir(), reason="real traces not found at ../shared/workflows")
def test_schedule_real_trace_at_ccr(capsys):
    trace = min((TRACES / "epigenomics").glob("*.json"), key=lambda p: p.stat().st_size)
    assert main(["schedule", str(trace), "--workers", "4", "--ccr", "1", "--policy", "heft,fifo"]) == 0
    text = capsys.readouterr().out
    assert "CCR 1, 4 workers" in text
    for row in (line for line in text.splitlines() if "heft" in line or "fifo" in line):
        makespan, bound, ratio = (float(x) for x in row.split("│")[2:5])
        assert ratio >= 1.0 and makespan == pytest.approx(ratio * bound, rel=2e-3)


def test_train_scheduler_forwards_its_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train-scheduler", "--help"])
    assert info.value.code == 0
    assert "--holdout" in capsys.readouterr().out  # training's own option, not the CLI's


def test_train_scheduler_without_training_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openautoglm.schedulers.gnn.training", None)  # import now raises
    assert main(["train-scheduler", "--epochs", "1"]) == 2
    assert "train-scheduler needs openautoglm.schedulers.gnn.training" in capsys.readouterr().err


def test_parse_inputs():
    assert parse_inputs(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="not key=value"):
        parse_inputs(["=v"])


def test_version_and_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("openautoglm ")
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


@pytest.mark.slow
def test_demo_on_dask(capsys):
    """The same demo, executed by the Dask engine (an embedded LocalCluster of 2 workers)."""
    assert main(["demo", "--dask", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "started a local Dask cluster of 2 workers" in text
    assert "ran 9 tasks on Dask" in text
    assert "entities     HEFT, Topcuoglu, Hariri, Wu, Berlin, Paris" in text


def _chain_trace(tmp_path: Path, n: int) -> Path:
    """n tasks in a chain, 1 s each, no files: t0 -> t1 -> ... -> t{n-1}."""
    ids = [f"t{i}" for i in range(n)]
    tasks = [{"id": t, "parents": ids[i - 1:i], "children": ids[i + 1:i + 2], "inputFiles": [],
              "outputFiles": []} for i, t in enumerate(ids)]
    doc = {"schemaVersion": "1.5", "workflow": {
        "specification": {"tasks": tasks, "files": []},
        "execution": {"tasks": [{"id": t, "runtimeInSeconds": 1.0} for t in ids]}}}
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(doc))
    return path


def test_schedule_skips_optimal_on_a_trace_too_big_for_it_with_a_note(tmp_path, capsys):
    """``--policy heft,optimal`` on 14 tasks: HEFT's row and a note (it aborted with exit 2)."""
    assert main(["schedule", str(_chain_trace(tmp_path, 14)), "--policy", "heft,optimal",
                 "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "14.00" in next(line for line in out.splitlines() if "heft" in line)
    assert "skipped 'optimal'" in out and "at most 12 tasks" in out and "has 14" in out
    # Alone, it is still a clear refusal.
    assert main(["schedule", str(_chain_trace(tmp_path, 14)), "--policy", "optimal"]) == 2
    assert "max_tasks=12" in capsys.readouterr().err


def test_policy_help_names_every_registered_policy(capsys):
    from openautoglm.schedulers import available_policies

    for command in ("schedule", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for policy in available_policies():
            assert policy in text, (command, policy)
    assert "heft_search" in available_policies()
