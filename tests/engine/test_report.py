"""The run report: per-task table, Gantt PNG + HTML, and the error of the plan's estimates."""
from __future__ import annotations

import math
import time

import pytest

from openautoglm.engine.engine import Engine
from openautoglm.pipeline import Pipeline, Task
from openautoglm.engine.report import estimate_error


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_estimate_error_by_hand():
    rows = [
        {"duration": 2.0, "planned_duration": 1.0, "worker": 0, "planned_worker": 0, "status": "ok"},
        {"duration": 1.0, "planned_duration": 1.0, "worker": 1, "planned_worker": 0, "status": "ok"},
        {"duration": None, "planned_duration": 1.0, "worker": None, "planned_worker": 0,
         "status": "cancelled"},
    ]
    err = estimate_error(rows, planned_makespan=2.0, makespan=3.0)
    assert err["makespan_error"] == 0.5
    assert err["duration_mape"] == 0.5
    assert err["duration_bias"] == 1.5
    assert err["placement_match"] == 0.5
    assert math.isnan(estimate_error([], 0.0, 1.0)["makespan_error"])


def test_report_files_from_a_real_run(tmp_path):
    p = Pipeline("naps", [Task(f"nap{i}", func=lambda i=i: nap(0.05 * (i + 1)), cost=0.05 * (i + 1))
                          for i in range(4)])
    with Engine(n_workers=2, processes=False, dashboard=False, progress=False) as e:
        result = e.run(p, policy="heft")
    files = result.report(tmp_path / "out" / "run.html")
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files["html"].read_text()
    for i in range(4):
        assert f"nap{i}" in page
    assert "realised makespan" in page and "data:image/png;base64," in page
    md = files["md"].read_text()
    assert files["md"] == tmp_path / "out" / "report.md"  # beside the Gantt chart
    assert "![planned above realised](run.png)" in md
    assert f"| realised makespan (s) | {result.makespan:.4g} |" in md
    assert "| tasks by status | ok 4 |" in md and "## Estimate error of the plan" in md
    slowest = [line.split("|")[1].strip() for line in md.split("## Slowest tasks")[1].splitlines()
               if line.startswith("| nap")]
    durations = {t["task"]: t["duration"] for t in result.times}
    assert len(slowest) == 4 and [durations[k] for k in slowest] == sorted(durations.values(),
                                                                          reverse=True)
    df = result.to_dataframe()
    assert sorted(df["task"]) == [f"nap{i}" for i in range(4)]
    assert (df["duration"] >= df["planned_duration"] * 0.9).all()
    err = result.estimate_error()
    assert err["placement_match"] == 1.0
    assert abs(err["duration_bias"] - 1.0) < 0.5
    assert result.makespan == pytest.approx(max(df["finish"]))
