"""Faults on a real process cluster: a `dask scheduler` and `dask worker` processes started
here on 127.0.0.1 (no nanny: a killed worker stays dead).

One worker (the *victim*) is SIGKILLed at five moments of a run; every run must either return
every output, correct, or raise an error naming the lost worker, within a bounded time: no
hang, no silently missing output. Then: a task that kills its worker, a task that hangs
(``Task(timeout=)``, ``Engine.run(timeout=)``), a scheduler killed mid-run.

The moments (the plan pins 3 of 9 squares to the victim, 3 workers of 1 thread)::

    before-submit   the engine saw the victim, planned on it, then it died: the graph arrives
                    pinned to a worker the scheduler no longer has
    after-submit    the graph is on its way or just arrived
    mid-run         the victim holds a finished square and runs another
    near-end        every square is done (3 of them on the victim), the total waits or runs
    gathering       every task finished; the victim dies before its results are gathered
"""
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

from openautoglm.engine.faults import (RunTimeoutError, SchedulerLostError, TaskTimeoutError,
                                       WorkerKilledError, WorkerLostError)
from openautoglm.engine.engine import Engine, EngineError
from openautoglm.history.store import History
from openautoglm.pipeline import Pipeline, Task, TaskFailedError

SRC = str(Path(__file__).resolve().parents[2] / "src")
TESTS = str(Path(__file__).resolve().parent)  # the task functions below are pickled by reference
DASK = str(Path(sys.executable).with_name("dask"))
N_SQUARES = 9
#: Every run here is bounded: a hang fails the test instead of blocking CI.
RUN_LIMIT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slow_square(i: int) -> int:
    time.sleep(0.3)
    return i * i


def total(*xs: int) -> int:
    return sum(xs)


def die() -> None:
    os._exit(3)  # the worker process dies with the task


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")


def slow_total(*xs: int) -> int:
    # A second of work after the squares: the "near-end" moment (every square done, the total
    # running) lasts long enough for the killer's poll to see it. With an instant total a quick
    # machine finished the run between two polls and the kill missed its moment.
    time.sleep(1.0)
    return sum(xs)


def squares_pipeline() -> Pipeline:
    return Pipeline("squares", [
        *(Task(f"sq{i}", func=lambda i=i: slow_square(i), output_key=f"y{i}", cost=0.3)
          for i in range(N_SQUARES)),
        Task("total", func=slow_total, input_keys=[f"y{i}" for i in range(N_SQUARES)], cost=1.0),
    ])


class ProcessCluster:
    """A `dask scheduler` and the `dask worker` processes of this module (127.0.0.1 only)."""

    def __init__(self, **env: str) -> None:
        self.env = {**os.environ, "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")]),
                    "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False", **env}
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.procs["scheduler"] = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = None

    def connect(self) -> None:
        from distributed import Client

        self.client = Client(self.address, timeout=60)

    def start_worker(self, name: str, resources: str | None = None) -> tuple[subprocess.Popen, str]:
        """Start a worker and wait until the scheduler has it; returns (process, address)."""
        args = [DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                "--name", name, "--host", "127.0.0.1"]
        if resources:
            args += ["--resources", resources]
        proc = self.procs[name] = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)
        # Running, not just registered: a worker is "init" until its plugins are set up.
        address = wait_until(lambda: self.address_of(name, running=True) or proc.poll() is not None,
                             120, f"worker {name} to join")
        assert proc.poll() is None, f"worker {name} exited with {proc.returncode}"
        return proc, address

    def address_of(self, name: str, running: bool = False) -> str | None:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return next((a for a, w in workers.items() if w.get("name") == name
                     and (not running or w.get("status") == "running")), None)

    def kill(self, name: str, wait: bool = True) -> None:
        """SIGKILL one of this cluster's processes; ``wait``: until the scheduler drops it."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        if wait and name != "scheduler":
            wait_until(lambda: self.address_of(name) is None, 60, f"the scheduler to drop {name}")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for p in self.procs.values():  # only the processes this cluster started
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            p.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster():
    """A scheduler (allowed-failures 1: a task may kill 2 workers before Dask gives up on it)
    and 2 single-thread workers that stay up; each test starts the workers it kills."""
    if not Path(DASK).exists():
        pytest.skip(f"the `dask` command is not installed next to {sys.executable}")
    c = ProcessCluster(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
    try:
        c.connect()
        for name in ("w0", "w1"):  # STABLE: for tasks that must not run on a worker killed here
            c.start_worker(name, resources="STABLE=1")
        yield c
    finally:
        c.close()


@pytest.fixture
def victim(cluster, request):
    """A third worker, killed by the test (and in any case stopped after it)."""
    name = f"victim-{request.node.name}"
    proc, address = cluster.start_worker(name)
    yield name, address
    cluster.kill(name)


def test_process_cluster_failure_keeps_partial(cluster):
    p = Pipeline("fail", [Task("a", func=lambda: 1, output_key="a"),
                          Task("b", func=lambda a: 1 / 0, input_key="a", output_key="b"),
                          Task("c", func=lambda b: b, input_key="b", output_key="c")])
    with Engine(cluster.address, progress=False) as engine:
        with pytest.raises(TaskFailedError, match="'b' failed") as info:
            engine.run(p, timeout=RUN_LIMIT)
    assert info.value.partial == {"a": 1}
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "1 / 0" in info.value.traceback


# -- a worker SIGKILLed at five moments of a run ------------------------------------------------
def _engine_tasks(dask_scheduler) -> list[tuple[str, str, str | None]]:
    """On the scheduler: (task name, state, worker name) of every engine task."""
    out = []
    for ts in dask_scheduler.tasks.values():
        if ts.annotations and "oag_run" in ts.annotations and isinstance(ts.key, tuple):
            ws = ts.processing_on or next(iter(ts.who_has or ()), None)
            out.append((ts.key[0], ts.state, ws.name if ws is not None else None))
    return out


def _kill_when(cluster, name: str, ready, box: dict) -> threading.Thread:
    """A thread that kills worker ``name`` once ``ready(engine tasks)`` holds (bounded)."""

    def run() -> None:
        try:
            box["seen"] = wait_until(lambda: ready(cluster.client.run_on_scheduler(_engine_tasks)),
                                     RUN_LIMIT, "the moment to kill")
        finally:
            cluster.kill(name, wait=False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _mid_run(tasks) -> bool:
    on_victim = [(s, w) for _, s, w in tasks if w and w.startswith("victim")]
    return any(s == "memory" for s, _ in on_victim) and any(s == "processing" for s, _ in on_victim)


def _near_end(tasks) -> bool:
    squares = [s for k, s, _ in tasks if k.startswith("sq")]
    return len(squares) == N_SQUARES and all(s == "memory" for s in squares)


MOMENTS = ["before-submit", "after-submit", "mid-run", "near-end", "gathering"]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("moment", MOMENTS)
def test_worker_killed_at_any_moment_no_hang_no_lost_output(cluster, victim, moment, tmp_path):
    """Every output correct (the victim's pins re-homed, its lost results recomputed), or an
    error naming the lost worker; bounded by engine.run(timeout=)."""
    name, address = victim
    p = squares_pipeline()
    h = History(tmp_path / "h.sqlite")
    box: dict = {}
    killer = None
    with Engine(cluster.address, progress=False, no_worker_timeout=10) as engine:
        workers = engine.workers()
        graph, plan = engine.plan(p.compile(), policy="heft")
        index = [w["address"] for w in workers].index(address)
        pinned = [k for k in graph.tasks if plan.placements[k].worker == index]
        assert pinned, "the plan does not use the worker we kill"
        if moment == "before-submit":  # the engine sees the victim, then it dies
            real_workers = engine.workers

            def workers_then_kill():
                seen = real_workers()
                cluster.kill(name)
                return seen
            engine.workers = workers_then_kill
        elif moment == "after-submit":
            real_get = engine.client.get

            def get_then_kill(*args, **kwargs):
                futures = real_get(*args, **kwargs)
                cluster.kill(name, wait=False)
                return futures
            engine.client.get = get_then_kill
        elif moment == "gathering":  # every task done, results not yet gathered
            real_wait = engine._wait

            def wait_then_kill(*args, **kwargs):
                outcome = real_wait(*args, **kwargs)
                cluster.kill(name)
                return outcome
            engine._wait = wait_then_kill
        else:
            killer = _kill_when(cluster, name, _mid_run if moment == "mid-run" else _near_end, box)
        try:
            result = engine.run(p, history=h, timeout=RUN_LIMIT)
        except WorkerLostError as e:  # allowed only with the lost worker named
            assert address in str(e), str(e)
            return
        finally:
            if killer is not None:
                killer.join(timeout=RUN_LIMIT)
    assert cluster.procs[name].poll() is not None, "the victim was not killed"
    if killer is not None:
        assert "seen" in box, "the kill did not land at the intended moment"
    assert {k: result[k] for k in result} == {**{f"y{i}": i * i for i in range(N_SQUARES)},
                                               "total": sum(i * i for i in range(N_SQUARES))}
    rows = h.executions(result.run_id)
    ok = {r["task"] for r in rows if r["status"] == "ok"}
    assert ok == set(graph.tasks)
    assert h.runs()[-1]["status"] == "ok"
    if moment == "mid-run":  # it was running a square: that attempt is on record
        died = [r for r in rows if r["status"] == "worker-died"]
        assert died and all(r["worker"] == address for r in died)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_lost_worker_with_the_only_resource_fails_naming_it(cluster):
    """The only worker with resource SPECIAL dies while running the task that needs it: no
    other worker can take it; the run fails after no_worker_timeout, naming worker and task."""
    name = "special"
    proc, address = cluster.start_worker(name, resources="SPECIAL=1")
    try:
        p = Pipeline("special", [
            Task("quick", func=lambda: 1, output_key="q"),
            Task("needs", func=lambda q: slow_square(q) and time.sleep(30), input_key="q",
                 output_key="n", resources={"SPECIAL": 1}),
        ])
        box: dict = {}
        killer = _kill_when(cluster, name, lambda ts: any(
            k == "needs" and s == "processing" for k, s, _ in ts), box)
        with Engine(cluster.address, progress=False, no_worker_timeout=2) as engine:
            with pytest.raises(WorkerLostError) as info:
                engine.run(p, timeout=RUN_LIMIT)
        killer.join(timeout=RUN_LIMIT)
    finally:
        cluster.kill(name)
    err = info.value
    assert address in str(err) and "'needs'" in str(err) and "SPECIAL" in str(err), str(err)
    assert err.tasks == ["needs"] and err.workers == {address: ["needs"]}
    assert err.partial == {"q": 1}


# -- a task that kills its worker -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_task_that_kills_its_worker_is_reported_and_recorded(cluster, tmp_path):
    """`die` ends its worker process. Dask tries it on 2 workers (allowed-failures 1), then
    gives up: the error names the task and the 2 deaths; history has a row per death."""
    names = ["boom-a", "boom-b"]
    for n in names:
        cluster.start_worker(n, resources="BOOM=1")
    h = History(tmp_path / "h.sqlite")
    try:
        p = Pipeline("boom", [Task("fine", func=lambda: 7, output_key="x", resources={"STABLE": 1}),
                              Task("crash", func=die, output_key="y", resources={"BOOM": 1})])
        with Engine(cluster.address, progress=False, no_worker_timeout=10) as engine:
            with pytest.raises(TaskFailedError) as info:
                engine.run(p, history=h, timeout=RUN_LIMIT)
    finally:
        for n in names:
            cluster.kill(n)
    err = info.value
    assert err.task == "crash" and err.attempts == 2
    assert isinstance(err.__cause__, WorkerKilledError) and err.__cause__.deaths == 2
    assert "died 2 time(s) while running task 'crash'" in str(err)
    assert err.partial == {"x": 7}
    rows = [r for r in h.executions() if r["task"] == "crash"]
    assert [r["status"] for r in rows] == ["worker-died", "worker-died"]
    assert len({r["worker"] for r in rows}) == 2 and all("died" in r["error"] for r in rows)
    assert h.runs()[-1]["status"] == "error"


# -- a lost scheduler -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scheduler_killed_mid_run_raises_engine_error():
    if not Path(DASK).exists():
        pytest.skip(f"the `dask` command is not installed next to {sys.executable}")
    c = ProcessCluster()
    try:
        c.connect()
        c.start_worker("only")
        p = Pipeline("slow", [Task(f"s{i}", func=lambda i=i: slow_square(i), output_key=f"y{i}")
                              for i in range(30)])
        box: dict = {}
        with Engine(c.address, progress=False) as engine:
            killer = _kill_when(c, "scheduler", lambda ts: sum(s == "memory" for _, s, _ in ts) >= 1,
                                box)
            with pytest.raises(SchedulerLostError, match="lost the connection to the Dask "
                               f"scheduler at {c.address}"):
                engine.run(p, timeout=RUN_LIMIT)
        killer.join(timeout=RUN_LIMIT)
        assert isinstance(SchedulerLostError("x"), EngineError)
    finally:
        c.close()


# -- a task that hangs ------------------------------------------------------------------------
RELEASE = threading.Event()  # lets the abandoned "hung" calls below return once a test is over


def hang(*_: object) -> None:
    RELEASE.wait(120)


@pytest.fixture
def engine2():
    RELEASE.clear()
    with Engine(n_workers=2, processes=False, dashboard=False, progress=False) as e:
        yield e
    RELEASE.set()


@pytest.mark.timeout(120)
def test_task_timeout_fails_the_task_names_it_and_is_recorded(engine2, tmp_path):
    p = Pipeline("hangs", [Task("quick", func=lambda: 2, output_key="q"),
                           Task("stuck", func=hang, input_key="q", output_key="s", timeout=0.5,
                                retries=1),
                           Task("after", func=lambda s: s, input_key="s", output_key="a")])
    h = History(tmp_path / "h.sqlite")
    with pytest.raises(TaskFailedError) as info:
        engine2.run(p, history=h, timeout=RUN_LIMIT)
    err = info.value
    assert err.task == "stuck" and err.attempts == 2 and err.partial == {"q": 2}
    assert isinstance(err.__cause__, TaskTimeoutError) and err.__cause__.timeout == 0.5
    assert "'stuck' ran past its timeout of 0.5 s" in str(err)
    rows = [r for r in h.executions() if r["task"] == "stuck"]
    assert [r["status"] for r in rows] == ["timeout", "timeout"]  # the attempt and its retry
    assert all(r["duration"] >= 0.5 for r in rows)


def test_task_timeout_not_reached_returns_the_value(engine2):
    p = Pipeline("fast", [Task("a", func=lambda: 5, output_key="a", timeout=30)])
    assert engine2.run(p, timeout=RUN_LIMIT)["a"] == 5


@pytest.mark.timeout(120)
def test_run_timeout_cancels_the_run_names_the_task_and_the_limit(engine2, tmp_path):
    p = Pipeline("hangs", [Task("quick", func=lambda: 2, output_key="q"),
                           Task("stuck", func=hang, input_key="q", output_key="s"),
                           Task("after", func=lambda s: s, input_key="s", output_key="a")])
    h = History(tmp_path / "h.sqlite")
    with pytest.raises(RunTimeoutError, match=r"timeout=1\) ran out.*'stuck'") as info:
        engine2.run(p, history=h, timeout=1)
    err = info.value
    assert isinstance(err, EngineError) and isinstance(err, TimeoutError)
    assert err.timeout == 1 and err.running == ["stuck"] and err.partial == {"q": 2}
    rows = {r["task"]: r for r in h.executions(err.result.run_id)}
    assert rows["quick"]["status"] == "ok" and rows["stuck"]["status"] == "timeout"
    assert "timeout=1" in rows["stuck"]["error"]
    assert h.runs()[-1]["status"] == "timeout"
    # The cluster is free for the next run (the hung call was abandoned, not waited for).
    RELEASE.set()
    assert engine2.run(Pipeline("next", [Task("b", func=lambda: 3, output_key="b")]),
                       timeout=RUN_LIMIT)["b"] == 3


def test_task_timeout_is_checked():
    from openautoglm.pipeline.checks import PipelineError

    for bad in (0, -1, float("inf"), "5", True):
        with pytest.raises(PipelineError, match="timeout must be a number of seconds > 0"):
            Task("t", func=lambda: 1, timeout=bad)
    p = Pipeline("y", [Task("t", func=len, input_key="x", timeout=2.5)])
    assert Pipeline.from_yaml(p.to_yaml(), allowed_modules=["builtins"]).tasks["t"].timeout == 2.5


def test_limits_are_checked(engine2):
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(ValueError, match=r"^timeout must be a number of seconds > 0"):
            engine2.run(Pipeline("p", [Task("t", func=lambda: 1)]), timeout=bad)
    with pytest.raises(ValueError, match="no_worker_timeout must be a number of seconds > 0"):
        Engine("tcp://127.0.0.1:1", no_worker_timeout=0)


def test_remote_engine_refuses_local_options():
    with pytest.raises(ValueError, match="--resources"):
        Engine("tcp://127.0.0.1:1", resources={"GPU": 1})
    with pytest.raises(EngineError, match="Cannot reach"):
        Engine(f"tcp://127.0.0.1:{free_port()}", timeout=0.5)
