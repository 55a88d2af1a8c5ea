"""Faults on a real process cluster: a `dask scheduler` and `dask worker` processes started
here on 127.0.0.1; one worker is killed (SIGKILL) mid-run and the run still completes with the
right results, tasks the plan had pinned to the dead worker included."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from openautoglm.engine.engine import Engine, EngineError
from openautoglm.history.store import History
from openautoglm.pipeline.pipeline import Pipeline, Task

SRC = str(Path(__file__).resolve().parents[2] / "src")
TESTS = str(Path(__file__).resolve().parent)  # the task functions below are pickled by reference
DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slow_square(i: int) -> int:
    time.sleep(0.25)
    return i * i


def total(*xs: int) -> int:
    return sum(xs)


@pytest.fixture(scope="module")
def process_cluster():
    """A scheduler and 3 single-thread workers (no nanny: a killed worker stays dead).
    Shared by this module's tests; the one that kills a worker runs last."""
    if not Path(DASK).exists():
        pytest.skip(f"the `dask` command is not installed next to {sys.executable}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["scheduler"] = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(3):
            procs[f"w{i}"] = subprocess.Popen(
                [DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--name", f"w{i}", "--host", "127.0.0.1"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(3, timeout=60)
        yield address, procs
    finally:
        for p in procs.values():  # only the processes this fixture started
            if p.poll() is None:
                p.kill()
        for p in procs.values():
            p.wait(timeout=30)


def test_process_cluster_failure_keeps_partial(process_cluster):
    address, _ = process_cluster
    p = Pipeline("fail", [Task("a", func=lambda: 1, output_key="a"),
                          Task("b", func=lambda a: 1 / 0, input_key="a", output_key="b"),
                          Task("c", func=lambda b: b, input_key="b", output_key="c")])
    with Engine(address, progress=False) as engine:
        with pytest.raises(Exception, match="'b' failed") as info:
            engine.run(p)
    assert info.value.partial == {"a": 1}
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "1 / 0" in info.value.traceback


@pytest.mark.slow
def test_worker_killed_mid_run_still_completes(process_cluster, tmp_path):
    address, procs = process_cluster
    n = 18
    p = Pipeline("squares", [
        *(Task(f"sq{i:02d}", func=lambda i=i: slow_square(i), output_key=f"y{i:02d}", cost=0.25)
          for i in range(n)),
        Task("total", func=total, input_keys=[f"y{i:02d}" for i in range(n)], cost=0.01),
    ])
    h = History(tmp_path / "h.sqlite")
    with Engine(address, progress=False) as engine:
        workers = engine.workers()
        victim_addr = next(w["address"] for w in workers if w["name"] == "w1")
        graph, plan = engine.plan(p.compile(), policy="heft")
        index = [w["address"] for w in workers].index(victim_addr)
        pinned_to_victim = [k for k in graph.tasks if plan.placements[k].worker == index]
        assert len(pinned_to_victim) >= 4  # the plan really relies on the worker we kill

        def kill_soon() -> None:
            time.sleep(0.6)
            procs["w1"].send_signal(signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        result = engine.run(p, plan=plan, history=h)
        killer.join()
    assert procs["w1"].poll() is not None, "the worker was not killed during the run"
    assert result["total"] == sum(i * i for i in range(n))
    assert all(result[f"y{i:02d}"] == i * i for i in range(n))
    ran_on = {t["task"]: t["worker"] for t in result.times}
    moved = [k for k in pinned_to_victim if ran_on[k] != index]
    assert moved, "no task pinned to the killed worker was re-homed"
    assert len(h.executions(result.run_id)) >= n + 1


def test_remote_engine_refuses_local_options():
    with pytest.raises(ValueError, match="--resources"):
        Engine("tcp://127.0.0.1:1", resources={"GPU": 1})
    with pytest.raises(EngineError, match="Cannot reach"):
        Engine(f"tcp://127.0.0.1:{free_port()}", timeout=0.5)
