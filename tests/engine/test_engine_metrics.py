"""Opt-in Prometheus metrics of an embedded Engine, their exporter, and run cancellation."""
from __future__ import annotations

import threading
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry

from openautoglm.demo import build_pipeline
from openautoglm.engine.metrics import EngineMetrics
from openautoglm.engine.engine import Engine, RunCancelledError
from openautoglm.history import History
from openautoglm.pipeline import Pipeline, Task


def _nap(x):
    time.sleep(x)
    return x


def value(registry: CollectorRegistry, name: str, **labels) -> float | None:
    return registry.get_sample_value(name, labels)


def test_an_engine_reports_plans_runs_and_history_size(tmp_path):
    registry = CollectorRegistry()
    history = History(tmp_path / "history.sqlite")
    metrics = EngineMetrics(registry, history=history)
    with Engine(n_workers=2, dashboard=False, progress=False, metrics=metrics) as engine:
        result = engine.run(build_pipeline(), inputs={"raw_text": "One. Two words."},
                            history=history)
        server, port = metrics.serve()  # the opt-in exporter, on 127.0.0.1
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        finally:
            server.shutdown()
    assert value(registry, "openautoglm_engine_runs_total", policy="heft", status="ok") == 1
    assert value(registry, "openautoglm_engine_tasks_total", state="ok") == 9
    assert value(registry, "openautoglm_engine_planning_seconds_count", policy="heft") == 1
    assert value(registry, "openautoglm_engine_last_makespan_seconds", policy="heft",
                 kind="realised") == pytest.approx(result.makespan)
    assert value(registry, "openautoglm_engine_last_makespan_seconds", policy="heft",
                 kind="planned") == pytest.approx(result.planned_makespan)
    assert value(registry, "openautoglm_engine_makespan_error_ratio_count", policy="heft") == 1
    assert value(registry, "openautoglm_engine_runs_in_progress") == 0
    assert value(registry, "openautoglm_history_runs") == 1
    assert value(registry, "openautoglm_history_executions") == 9
    assert 'openautoglm_engine_runs_total{policy="heft",status="ok"} 1.0' in text
    history.close()


def test_a_failed_and_a_cancelled_run_are_counted_and_cancel_stops_the_run():
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)

    def boom(x):
        raise ValueError("no")

    failing = Pipeline("fails", [Task("boom", func=boom, input_key="x", output_key="y")])
    slow = Pipeline("slow", [Task("a", func=_nap, input_key="x", output_key="y"),
                             Task("b", func=_nap, input_key="y", output_key="z")])
    with Engine(n_workers=1, dashboard=False, progress=False, metrics=metrics) as engine:
        with pytest.raises(Exception, match="no"):
            engine.run(failing, inputs={"x": 1})
        outcome: list = []

        def run() -> None:
            try:
                outcome.append(engine.run(slow, inputs={"x": 3.0}, run_id="slow-1"))
            except RunCancelledError as exc:
                outcome.append(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 60
        while engine.run_progress("slow-1") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.run_progress("slow-1") == (0, 2)
        assert engine.cancel("slow-1") is True
        t.join(60)
        assert isinstance(outcome[0], RunCancelledError)
        assert engine.run_progress("slow-1") is None and engine.cancel("nothing") is False
        assert engine.run(slow, inputs={"x": 0.01})["z"] == 0.01  # the engine goes on
    assert value(registry, "openautoglm_engine_runs_total", policy="heft", status="error") == 1
    assert value(registry, "openautoglm_engine_runs_total", policy="heft", status="cancelled") == 1
    assert value(registry, "openautoglm_engine_runs_total", policy="heft", status="ok") == 1
    assert value(registry, "openautoglm_engine_tasks_total", state="error") == 1
