"""A cluster that needs nothing pre-installed: the wheel, and ``Engine(address, install=...)``.

Real processes only: the wheel is built from this checkout with ``python -m build``; a
``dask scheduler`` and ``dask worker`` processes are started from fresh venvs that have
dask/distributed (the same versions as here) but not openautoglm (``bare_env.py``); the engine
ships the wheel to them through a Dask worker plugin and then runs the README's Engine example
there. Another fresh venv gets the wheel (``pip install``) and runs ``openautoglm demo``. pip
runs offline (``PIP_NO_INDEX``): the venvs see the dependencies already, and a worker that lacks
one must fail with the engine's error, not hang or download.

Building the wheel compiles the C++ extension (minutes on a loaded 2-core machine); set
``OPENAUTOGLM_TEST_WHEEL=path/to/openautoglm-...whl`` to reuse a built one.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import openautoglm as oag
from openautoglm.engine import Engine, EngineError

from bare_env import bare_environ, can_import, dask_cluster, make_bare_env

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_ENGINE = "oag.Engine(n_workers=2, processes=False)"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """openautoglm's wheel, built from this checkout with ``python -m build``."""
    given = os.environ.get("OPENAUTOGLM_TEST_WHEEL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "OPENAUTOGLM_NO_AVX512": "1", "MAX_JOBS": "1"}
    # No isolation: the extension builds against the installed torch (as the README says).
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                           str(out), str(ROOT)], env=env, check=True, capture_output=True,
                          text=True, timeout=1500)
    BUILD_OUTPUT.append(proc.stdout + proc.stderr)
    (found,) = out.glob("openautoglm-*.whl")
    return found


#: What building the wheel printed (empty when OPENAUTOGLM_TEST_WHEEL gave a built one).
BUILD_OUTPUT: list[str] = []


def test_building_the_extension_says_what_it_compiles_and_where(wheel):
    """setup.py's build step names each module, its sources and target, and its time (issue 9)."""
    if not BUILD_OUTPUT:
        pytest.skip("OPENAUTOGLM_TEST_WHEEL gave a built wheel: nothing was compiled here")
    out = BUILD_OUTPUT[0]
    assert "openautoglm setup: building the C++ operators: 1 module(s) (openautoglm._C)" in out
    assert re.search(r"openautoglm setup: \[1/1\] compiling openautoglm\._C from cuda_ext/ops\.cpp", out)
    assert re.search(r"openautoglm setup: \[1/1\] openautoglm\._C built in \d+ s", out)


def readme_engine_block() -> str:
    """The README's first python block that starts an Engine."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if README_ENGINE in b][:1]
    return block


def test_wheel_holds_the_package_its_extension_and_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert wheel.name.startswith(f"openautoglm-{oag.__version__}-")
    assert "openautoglm/__init__.py" in names and "openautoglm/cli.py" in names
    assert any(n.startswith("openautoglm/_C") and n.endswith(".so") for n in names)
    assert any(n.startswith("openautoglm/schedulers/gnn/") and n.endswith(".pt") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "openautoglm = openautoglm.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_remote_cluster_without_openautoglm_is_refused_by_name(tmp_path):
    """Without install=, a cluster whose processes lack openautoglm fails before any run,
    naming them and the fix (it used to fail inside plugin registration, unexplained)."""
    python = make_bare_env(tmp_path / "env")
    assert not can_import(python, "openautoglm") and can_import(python, "distributed")
    with dask_cluster(python, [python], tmp_path / "logs") as address:
        with pytest.raises(EngineError, match=r"has no openautoglm.*install=True") as err:
            Engine(address, progress=False)
    assert "scheduler" in str(err.value) and "tcp://127.0.0.1" in str(err.value)


def test_install_ships_the_wheel_and_runs_the_readme_example(wheel, tmp_path, monkeypatch):
    """The README's Engine example, run against a scheduler and 2 workers that start without
    openautoglm: install= puts the wheel there, and the tasks run on those workers."""
    python = make_bare_env(tmp_path / "env")
    assert not can_import(python, "openautoglm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAUTOGLM_HISTORY", str(tmp_path / "history.sqlite"))
    with dask_cluster(python, [python, python], tmp_path / "logs") as address:
        code = readme_engine_block().replace(README_ENGINE,
                                             f"oag.Engine({address!r}, install={str(wheel)!r})")
        ns: dict = {"__name__": "__main__"}
        exec(compile(code, "README.md", "exec"), ns)
        result = ns["result"]
        assert result["total"] == sum(range(10)) + sum(x * x for x in range(10))
        assert {t["status"] for t in result.times} == {"ok"}
        assert {t["worker"] for t in result.times} <= {0, 1}  # indices of the 2 bare workers
        assert len(_workers(address)) == 2
        assert (tmp_path / "reports" / "demo.html").exists()
        # Shipped once: a second engine finds this version everywhere and installs nothing.
        with Engine(address, install=wheel, progress=False) as engine:
            assert len(engine.workers()) == 2
    assert can_import(python, "openautoglm")


def _workers(address: str) -> list[str]:
    from distributed import Client

    with Client(address, timeout=30) as c:
        return list(c.scheduler_info(n_workers=-1)["workers"])


def test_worker_that_cannot_install_fails_the_engine_naming_it(wheel, tmp_path):
    """A worker lacking a dependency (networkx) with no index to fetch it from: the engine
    fails with pip's reason and the worker's address, and leaves no run behind."""
    good = make_bare_env(tmp_path / "good")
    bad = make_bare_env(tmp_path / "bad", hide=("networkx",))
    assert not can_import(bad, "networkx")
    with dask_cluster(good, [bad], tmp_path / "logs") as address:
        with pytest.raises(EngineError, match=r"(?s)workers.*worker tcp://127\.0\.0\.1:\d+.*"
                                              r"pip install.*networkx"):
            Engine(address, install=wheel, progress=False)
    assert not can_import(bad, "openautoglm")


def test_wrong_wheels_are_refused_before_connecting(tmp_path):
    other = tmp_path / "openautoglm-0.0.1-cp311-abi3-linux_x86_64.whl"
    other.write_bytes(b"")
    with pytest.raises(EngineError, match=r"holds openautoglm 0\.0\.1.*same code"):
        Engine("tcp://127.0.0.1:9", install=other)
    with pytest.raises(EngineError, match="is not a file"):
        Engine("tcp://127.0.0.1:9", install=tmp_path / "missing.whl")
    with pytest.raises(ValueError, match="remote cluster"):
        Engine(install=True)


def test_fresh_venv_with_only_the_wheel_runs_the_demo(wheel, tmp_path):
    """pip installs the wheel into a fresh venv (offline: the dependencies are visible to it);
    its console script runs the demo from a folder far from the source tree."""
    python = make_bare_env(tmp_path / "env")
    env = bare_environ()
    subprocess.run([str(python), "-m", "pip", "install", str(wheel)], env=env, check=True,
                   capture_output=True, timeout=600)
    where = subprocess.run([str(python), "-c", "import openautoglm; print(openautoglm.__file__)"],
                           env=env, cwd=tmp_path, check=True, capture_output=True, text=True,
                           timeout=300).stdout
    assert str(tmp_path / "env" / "venv") in where and str(ROOT) not in where
    demo = subprocess.run([str(python.parent / "openautoglm"), "demo"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
