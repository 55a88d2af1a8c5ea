"""Python environments without openautoglm, and Dask processes started from them.

A *bare* environment is a fresh venv (``python -m venv --without-pip``) that sees the third-party
packages of the test's own environment through a ``.pth`` file pointing at a folder of symlinks:
dask, distributed, torch, pip, ... at the very same versions, but **not** openautoglm (its
``dist-info``, its editable-install hook and the source tree are left out). So a process started
from it imports dask but fails on ``import openautoglm`` until something installs it into the
venv. Building one takes well under a second and needs no network: pip, run from it with
``PIP_NO_INDEX=1`` and no config file, can install a wheel whose dependencies are all present
but can fetch nothing.

``hide=`` leaves more distributions out (a worker that lacks a dependency and cannot fetch it).
pip never removes the symlinked packages: they lie outside the venv, which pip refuses to touch.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import free_port, stop

SITE = Path(sysconfig.get_paths()["purelib"])


def _dist_name(entry: str) -> str:
    """'networkx-3.4.dist-info' -> 'networkx'; 'networkx' -> 'networkx'."""
    for suffix in (".dist-info", ".egg-info"):
        if entry.endswith(suffix):
            return entry[: -len(suffix)].rsplit("-", 1)[0].lower().replace("_", "-")
    return entry.lower().replace("_", "-")


def make_bare_env(root: Path, hide: tuple[str, ...] = ()) -> Path:
    """A venv at ``root/venv`` without openautoglm (nor the distributions in ``hide``).

    Returns:
        The venv's python.
    """
    hidden = {"openautoglm", *(h.lower() for h in hide)}
    deps = root / "deps"
    deps.mkdir(parents=True)
    for entry in os.listdir(SITE):
        if entry.endswith(".pth") or entry.startswith("__editable__") or entry == "__pycache__":
            continue
        if _dist_name(entry) in hidden or entry.split(".")[0].lower() in hidden:
            continue
        (deps / entry).symlink_to(SITE / entry)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    Path(site, "zz_test_deps.pth").write_text(f"{deps}\n")
    return python


def bare_environ() -> dict[str, str]:
    """Environment for processes of a bare venv: no PYTHONPATH (no source tree), pip offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OMP_NUM_THREADS": "1"})
    return env


def can_import(python: Path, module: str) -> bool:
    env = bare_environ()
    return subprocess.run([str(python), "-c", f"import {module}"], env=env, cwd="/",
                          capture_output=True, timeout=120).returncode == 0


@contextmanager
def dask_cluster(scheduler_python: Path, worker_pythons: list[Path], logs: Path) -> Iterator[str]:
    """A ``dask scheduler`` and one ``dask worker`` per python given, on 127.0.0.1.

    Yields the scheduler's address once every worker has joined; stops every process it started.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = bare_environ()
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [str(scheduler_python), "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"],
            env=env, cwd=logs, stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w")))
        for i, python in enumerate(worker_pythons):
            procs.append(subprocess.Popen(
                [str(python), "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"bare{i}", "--host", "127.0.0.1",
                 "--local-directory", str(logs / f"w{i}")],
                env=env, cwd=logs, stdout=subprocess.DEVNULL,
                stderr=open(logs / f"worker{i}.log", "w")))
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(len(worker_pythons), timeout=120)
        yield address
    finally:
        stop(procs)  # only the processes started here
