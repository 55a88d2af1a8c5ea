"""Progress for long work: silent when quick, a note and a bar past the delay (issue 9, item 4)."""
from __future__ import annotations

import time

import numpy as np
import pytest

import openautoglm as oag
from openautoglm import _progress
from openautoglm._progress import SlowWork, enabled, report
from openautoglm.simulate.list_scheduler import ListEvaluator


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("off", False), ("yes", True)])
def test_environment_variable_decides(monkeypatch, value, expected):
    monkeypatch.setenv(_progress.ENV_PROGRESS, value)
    assert enabled() is expected


def test_unset_follows_whether_stderr_is_a_terminal(monkeypatch):
    monkeypatch.delenv(_progress.ENV_PROGRESS, raising=False)
    assert enabled() is False  # pytest captures stderr: not a terminal


def test_quick_work_prints_nothing(capsys):
    with SlowWork("quick", enabled=True):
        pass
    assert capsys.readouterr().err == ""


def test_slow_work_says_what_it_does_then_that_it_is_done(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "DELAY", 0.05)
    with SlowWork("counting", note="counting sheep, cached nowhere", enabled=True) as work:
        time.sleep(0.4)
        report(3, 10)
    err = capsys.readouterr().err
    assert work.shown and (work.completed, work.total) == (3, 10)
    assert "openautoglm: counting sheep, cached nowhere ..." in err
    assert "openautoglm: counting: done in" in err


def test_failed_work_says_failed(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    with pytest.raises(ZeroDivisionError), SlowWork("dividing", enabled=True):
        time.sleep(0.3)
        1 / 0
    assert "dividing: failed in" in capsys.readouterr().err


def test_report_outside_any_work_is_a_no_op():
    report(1, 2)


def test_list_scheduling_calls_are_counted_on_the_innermost_work():
    g = oag.random_dag(30, seed=1)
    ev = ListEvaluator(g, oag.Cluster.homogeneous(3), None)
    prio = np.arange(len(g), dtype=np.float64)[::-1].copy()
    with SlowWork("outer", enabled=False) as outer:
        with SlowWork("inner", enabled=False) as inner:
            ev(prio)
            ev(prio)
        ev(prio)
    assert (inner.completed, outer.completed) == (2, 3)


def test_a_large_gnn_plan_shows_progress(monkeypatch, capsys):
    """oag.schedule of a plan that takes long names the work, and the search's budget."""
    monkeypatch.setenv(_progress.ENV_PROGRESS, "1")
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    seen = []
    real = SlowWork.__exit__

    def spy(self, *exc):
        seen.append((self.description, self.completed, self.total))
        return real(self, *exc)

    monkeypatch.setattr(SlowWork, "__exit__", spy)
    g = oag.random_dag(300, seed=0)
    oag.schedule(g, oag.Cluster.homogeneous(4), "gnn")
    err = capsys.readouterr().err
    assert seen[-1][0] == "planning 300 tasks with 'gnn' on 4 workers"
    assert seen[-1][2] is not None and seen[-1][1] > 0  # the guided search's calls and budget
    assert "planning 300 tasks with 'gnn' on 4 workers: done in" in err


def test_quick_plans_stay_silent_by_default(capsys):
    oag.schedule(oag.random_dag(50, seed=0), oag.Cluster.homogeneous(4), "heft")
    assert capsys.readouterr().err == ""
