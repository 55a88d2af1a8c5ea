"""How long a user waits before openautoglm does anything: ``import openautoglm``,
``openautoglm --help`` and ``openautoglm demo`` (HEFT), each a fresh interpreter, warm caches.

Goals (issue 10): import <= 1.0 s, ``--help`` <= 1.5 s, the demo <= 2 s wall, on the CI machine.
Also timed, for scale: a bare ``python -c pass`` and ``import numpy`` (the floor every run pays),
and ``import openautoglm`` + one HEFT plan of a 50-task random DAG (the README's first block).

Each command runs once untimed (warms the OS file cache and numba's disk cache), then
``--reps`` times, commands alternated within each repetition; medians. Writes
``benchmarks/results/import_time.md``.

    nice python benchmarks/import_time.py --reps 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _header import header

OUT = Path(__file__).resolve().parent / "results" / "import_time.md"
PY = sys.executable
COMMANDS = {
    "python -c pass": ([PY, "-c", "pass"], None),
    "import numpy": ([PY, "-c", "import numpy"], None),
    "import openautoglm": ([PY, "-c", "import openautoglm"], 1.0),
    "import + HEFT plan (50 tasks)": ([PY, "-c", "import openautoglm as oag; oag.schedule("
                                       "oag.random_dag(50, seed=0), oag.Cluster.homogeneous(4), "
                                       "'heft')"], None),
    "openautoglm --help": ([PY, "-m", "openautoglm", "--help"], 1.5),
    "openautoglm demo": ([PY, "-m", "openautoglm", "demo"], 2.0),
}


def run(cmd: list[str]) -> float:
    """Wall seconds of one run of ``cmd`` (output discarded; a failure stops the benchmark)."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="timed runs per command (default 7)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    for cmd, _ in COMMANDS.values():
        run(cmd)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.reps):
        for name, (cmd, _) in COMMANDS.items():
            times[name].append(run(cmd))
    lines = header("Import and start-up time", load_before=load_before)
    lines += [
        f"Each row a fresh interpreter (`{Path(PY).name}`), warm file and numba caches, "
        f"median of {args.reps} runs alternated with the other rows. The machine is shared: "
        "compare a row with `python -c pass` and `import numpy` of the same run.", "",
        "| command | median (s) | min (s) | max (s) | goal | met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, (_, goal) in COMMANDS.items():
        t = times[name]
        med = statistics.median(t)
        met = "" if goal is None else ("yes" if med <= goal else "no")
        lines.append(f"| `{name}` | {med:.2f} | {min(t):.2f} | {max(t):.2f} | "
                     f"{'' if goal is None else f'<= {goal:.1f}'} | {met} |")
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
