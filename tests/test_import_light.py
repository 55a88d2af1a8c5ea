"""``import openautoglm`` and a HEFT plan stay light: torch, dask and the GLM are imported on
first use only (LAYOUT.md, "Written once"; the import-time goals are benchmarks/import_time.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openautoglm

SRC = str(Path(openautoglm.__file__).resolve().parents[1])
HEAVY = ("torch", "dask", "distributed", "openautoglm.glm", "openautoglm.ops", "openautoglm.models",
         "openautoglm.engine", "openautoglm.auto", "openautoglm._C", "networkx", "pydantic", "numba")


def _loaded_after(code: str) -> dict[str, bool]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_imports_nothing_heavy():
    loaded = _loaded_after("import openautoglm")
    assert not any(loaded.values()), {m for m, v in loaded.items() if v}


def test_a_heft_plan_does_not_import_torch():
    """Nor numba: a 50-task plan runs the Python loops (milliseconds), see _numba.SMALL."""
    loaded = _loaded_after(
        "import openautoglm as oag\n"
        "s = oag.schedule(oag.random_dag(50, seed=0), oag.Cluster.homogeneous(4), 'heft')\n"
        "assert s.makespan > 0\n")
    heavy = {m for m, v in loaded.items() if v} - {"networkx"}  # random_dag builds a DiGraph
    assert not heavy, heavy


def test_the_probe_sees_an_import():
    """The check can fail: a name reached through the face's lazy __getattr__ is imported."""
    assert _loaded_after("import openautoglm as oag\noag.glm")["openautoglm.glm"]
