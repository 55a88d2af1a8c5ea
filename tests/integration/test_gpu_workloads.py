"""GPU workloads (issue 15, step 6): tasks that ask for ``resources={"GPU": 1}`` run on the
workers that offer a GPU, and a pipeline passing cupy arrays runs there with their sizes measured.

The routing test needs no GPU: a real ``dask scheduler`` with two real ``dask worker`` processes,
one started with ``--resources GPU=1`` (what a GPU worker declares), the other without; every
GPU task must land on the first, CPU tasks may go anywhere. The cupy test needs cupy and a CUDA
device and skips without them (it ran only where the note says a GPU was lent).
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openautoglm.engine.engine import Engine
from openautoglm.history.store import History
from openautoglm.pipeline import Pipeline, Task
from processes import free_port, stop


@pytest.fixture
def mixed_cluster(tmp_path) -> Iterator[tuple[str, str]]:
    """A scheduler, a worker offering ``GPU=1`` and a plain one; yields (address, GPU worker)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(args: list[str], log: str) -> None:
        procs.append(subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path,
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(logs / log, "w")))

    try:
        start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
               "--no-dashboard"], "scheduler.log")
        for name, extra in (("gpu", ["--resources", "GPU=1"]), ("cpu", [])):
            start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                   "--no-dashboard", "--name", name, "--host", "127.0.0.1",
                   "--local-directory", str(tmp_path / name), *extra], f"{name}.log")
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
            info = c.scheduler_info(n_workers=-1)["workers"]
        (gpu,) = [a for a, w in info.items() if w.get("resources", {}).get("GPU")]
        yield address, gpu
    finally:
        stop(procs)


def _pipeline() -> Pipeline:
    """Two independent branches: GPU-only steps and CPU steps (plain functions, picklable)."""
    return Pipeline("mixed", [
        Task("load", func=list, input_key="n", output_key="raw", cost=0.05),
        Task("embed", func=sorted, input_key="raw", output_key="emb", cost=0.5,
             resources={"GPU": 1}),
        Task("train", func=len, input_key="emb", output_key="model", cost=0.5,
             resources={"GPU": 1}),
        Task("stats", func=sum, input_key="raw", output_key="total", cost=0.5),
        Task("report", func=max, input_key="raw", output_key="top", cost=0.5),
    ])


def test_gpu_tasks_run_only_on_the_worker_that_offers_a_gpu(mixed_cluster):
    address, gpu = mixed_cluster
    with Engine(address, progress=False) as engine:
        result = engine.run(_pipeline(), inputs={"n": range(5, 0, -1)})
    assert [result[k] for k in ("emb", "model", "total", "top")] == [[1, 2, 3, 4, 5], 5, 15, 5]
    ran_on = {t["task"]: result.workers[t["worker"]] for t in result.times}
    assert ran_on["embed"] == gpu and ran_on["train"] == gpu, ran_on


def _gpu_count() -> int:
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # not installed, no driver or no device
        return 0


@pytest.mark.skipif(_gpu_count() == 0, reason="needs cupy and a CUDA device (none here)")
def test_cupy_pipeline_runs_on_the_gpu_worker_with_sizes_measured(tmp_path):
    import cupy

    n = 1 << 20
    history = History(tmp_path / "history.db")
    p = Pipeline("cupy", [
        Task("make", func=lambda: cupy.arange(n, dtype=cupy.float32), output_key="x",
             resources={"GPU": 1}),
        Task("double", func=lambda x: x * 2, input_key="x", output_key="y", resources={"GPU": 1}),
        Task("total", func=lambda y: float(y.sum()), input_key="y", output_key="s",
             resources={"GPU": 1}),
    ])
    with Engine(n_workers=1, processes=False, dashboard=False, progress=False,
                resources={"GPU": 1}) as engine:
        out = engine.run(p, history=history)
    assert out["s"] == pytest.approx(float(n) * (n - 1), rel=1e-6)
    sizes = {r["task"]: r["output_size"] for r in history.executions()}
    assert sizes["make"] == n * 4 and sizes["double"] == n * 4  # dask's sizeof knows cupy
