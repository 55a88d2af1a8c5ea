"""What a new user waits for: import, the demo, a built-in GLM's first use, warm AutoTask calls.

Writes benchmarks/results/first_use.md. Every measurement runs in a fresh interpreter (as a user
would meet it), with an empty model cache where first use is measured:

- compiling the C++ operators as the install does (``python setup.py build_ext`` into a temporary
  directory, every module, ninja): wall time, time to setup.py's first progress line, and each
  module's own time as setup.py reports it;
- ``import openautoglm`` and ``python -m openautoglm demo``: wall time, median of ``--reps``;
- the first ``AutoTask(model="glm-small").run()`` with an empty ``OPENAUTOGLM_CACHE``: seconds
  until its first line on stderr (the progress message) and until it returns;
- warm ``AutoTask(model="glm-small").run()`` (model cached and loaded): p50 of ``--calls`` calls,
  with the default of one torch thread and with torch's own default (one per core), alternated;
- the README's GLM recipe (2 layers, hidden 64, 200k characters of pydoc, batch 16, seq 64,
  seed 0) for 275 and 1,500 steps, on one torch thread: validation loss before and after, wall
  time, and a greedy sample.

Regenerate: ``nice python benchmarks/first_use.py`` (``--stage build``, ``--stage user`` or
``--stage recipes`` for one part).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _header import header

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "first_use.md"
DATA = OUT.with_suffix(".json")
PROMPT = "The assert statement"

FIRST_USE = f"""
import sys, time
from openautoglm import AutoTask
t0 = time.time()
print("T0", t0, file=sys.stderr, flush=True)
AutoTask("text-generation", model="glm-small", prompt={PROMPT!r}).run()
print("T1", time.time(), file=sys.stderr, flush=True)
"""

WARM = f"""
import json, statistics, sys, time
from openautoglm import AutoTask
AutoTask("text-generation", model="glm-small", prompt={PROMPT!r}).run()   # load once
times = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    AutoTask("text-generation", model="glm-small", prompt={PROMPT!r}).run()
    times.append(time.perf_counter() - t0)
import torch
print(json.dumps({{"times": times, "threads_after": torch.get_num_threads()}}))
"""

RECIPE = """
import json, sys, torch
from openautoglm.glm import generate, load_corpus, train
torch.set_num_threads(1)
text = load_corpus("pydoc", max_chars=200_000)
model, tok, history = train({"n_layers": 2, "hidden": 64, "heads": 4, "max_len": 128}, text,
                            steps=int(sys.argv[1]), batch_size=16, lr=3e-3, seed=0, seq_len=64)
sample = generate(model, tok, "The return statement", max_new_tokens=32)
print(json.dumps({"first": history[0]["val_loss"], "last": history[-1]["val_loss"],
                  "seconds": history[-1]["elapsed"], "sample": sample}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.pop("OPENAUTOGLM_TORCH_THREADS", None)
    env.update(extra)
    return env


def wall(argv: list[str], env: dict[str, str], reps: int) -> list[float]:
    """Wall seconds of ``reps`` runs of ``argv`` in fresh interpreters."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
        out.append(time.perf_counter() - t0)
    return out


def first_use(cache: Path) -> dict[str, float]:
    """Seconds from the AutoTask call to its first stderr line, and to its return."""
    proc = subprocess.Popen([sys.executable, "-c", FIRST_USE], env=_env(OPENAUTOGLM_CACHE=str(cache), COLUMNS="300"),
                            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    t0 = first = None
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.time()
        lines.append(line)
        if line.startswith("T0 "):
            t0 = float(line.split()[1])
        elif line.startswith("T1 "):
            done = float(line.split()[1])
        elif t0 is not None and first is None and line.strip():
            first = now
    if proc.wait(900) != 0 or t0 is None:
        raise RuntimeError("first use failed:\n" + "".join(lines[-30:]))
    return {"progress_s": (first - t0) if first else float("nan"), "total_s": done - t0,
            "message": next((ln.strip() for ln in lines if "first use" in ln), "")}


def warm(cache: Path, calls: int, rounds: int) -> dict[str, list[float]]:
    """Warm AutoTask call times: one torch thread (the default) vs torch's one per core."""
    out: dict[str, list[float]] = {"1 (default)": [], f"{os.cpu_count()} (torch's default)": []}
    for _ in range(rounds):
        for label, threads in (("1 (default)", "1"), (f"{os.cpu_count()} (torch's default)", str(os.cpu_count()))):
            res = subprocess.run([sys.executable, "-c", WARM, str(calls)], cwd=ROOT, check=True,
                                 capture_output=True, text=True, timeout=900,
                                 env=_env(OPENAUTOGLM_CACHE=str(cache), OPENAUTOGLM_TORCH_THREADS=threads))
            out[label] += json.loads(res.stdout.strip().splitlines()[-1])["times"]
    return out


def build() -> dict[str, object]:
    """Compile the extension as ``pip install`` does, into a temporary directory (the checkout's
    own modules stay as they are): wall seconds, seconds to the first progress line, per module."""
    import re

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "setup.py", "build_ext", "--build-temp",
                                 f"{tmp}/temp", "--build-lib", f"{tmp}/lib"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first, lines = None, []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if first is None and line.startswith("openautoglm setup:"):
                first = time.perf_counter() - t0
        if proc.wait(1800) != 0:
            raise RuntimeError("build failed:\n" + "".join(lines[-30:]))
        total = time.perf_counter() - t0
    modules = dict(re.findall(r"openautoglm setup: \[\d+/\d+\] (\S+) built in (\d+) s", "".join(lines)))
    return {"total_s": total, "first_line_s": first, "modules": {k: int(v) for k, v in modules.items()}}


def recipe(steps: int) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", RECIPE, str(steps)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=3600, env=_env())
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs of import and demo (median)")
    ap.add_argument("--calls", type=int, default=10, help="warm AutoTask calls per round")
    ap.add_argument("--rounds", type=int, default=2, help="alternated rounds of warm calls")
    ap.add_argument("--stage", choices=("build", "user", "recipes", "all"), default="all",
                    help="build: compiling the C++ operators; "
                         "user: import, demo, AutoTask first use and warm calls; recipes: the "
                         "README's GLM recipe at 275 and 1,500 steps (each stage keeps the other's "
                         "last numbers in first_use.json)")
    args = ap.parse_args()
    data = json.loads(DATA.read_text()) if DATA.exists() else {}
    py = sys.executable
    if args.stage in ("build", "all"):
        load = os.getloadavg()[0]
        data["build"] = {**build(), "load": [load, os.getloadavg()[0]]}
        save(data)
    if args.stage in ("user", "all"):
        load = os.getloadavg()[0]
        user: dict[str, object] = {"import": wall([py, "-c", "import openautoglm"], _env(), args.reps),
                                   "demo": wall([py, "-m", "openautoglm", "demo"], _env(), args.reps)}
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache"
            user["first"] = first_use(cache)
            user["warm"] = warm(cache, args.calls, args.rounds)
        user["load"] = [load, os.getloadavg()[0]]
        data["user"] = user
        save(data)
    if args.stage in ("recipes", "all"):
        for steps in (275, 1500):
            load = os.getloadavg()[0]
            r = recipe(steps)
            r["load"] = [load, os.getloadavg()[0]]
            data.setdefault("recipes", {})[str(steps)] = r
            save(data)


def save(data: dict) -> None:
    """Keep the raw numbers (first_use.json) and render the table from all of them; sections
    another stage wrote meanwhile are kept (the stages may run at the same time)."""
    merged = json.loads(DATA.read_text()) if DATA.exists() else {}
    merged.update({k: v for k, v in data.items() if k != "recipes"})
    merged.setdefault("recipes", {}).update(data.get("recipes", {}))
    DATA.write_text(json.dumps(merged, indent=1) + "\n")
    write(merged)


def _med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (runs {min(xs):.2f}-{max(xs):.2f})"


def write(data: dict) -> None:
    import torch  # noqa: F401  (so that the machine line names torch's version)

    rows = []
    loads = []
    built = data.get("build")
    if built:
        loads.append(f"build {built['load'][0]:.1f} before, {built['load'][1]:.1f} after")
        each = ", ".join(f"{k} {v} s" for k, v in built["modules"].items())
        rows.append((f"compiling the C++ operators as the install does (`python setup.py build_ext`, "
                     f"{len(built['modules'])} modules)",
                     f"{built['total_s']:.0f} s ({each}); first progress line after "
                     f"{built['first_line_s']:.1f} s"))
    user = data.get("user")
    if user:
        first = user["first"]
        loads.append(f"user-facing rows {user['load'][0]:.1f} before, {user['load'][1]:.1f} after")
        rows += [
            ("`python -c 'import openautoglm'`", _med(user["import"])),
            ("`python -m openautoglm demo` (import included)", _med(user["demo"])),
            ("first `AutoTask(model=\"glm-small\").run()`, empty cache: to its first line on stderr",
             f"{first['progress_s']:.2f} s"),
            ("first `AutoTask(model=\"glm-small\").run()`, empty cache: to its result (training included)",
             f"{first['total_s']:.1f} s"),
        ]
        for label, times in user["warm"].items():
            ms = sorted(t * 1e3 for t in times)
            rows.append((f"warm `AutoTask(model=\"glm-small\").run()`, torch threads {label}",
                         f"p50 {statistics.median(ms):.0f} ms (p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, "
                         f"{len(ms)} calls)"))
    for steps, r in sorted(data.get("recipes", {}).items(), key=lambda kv: int(kv[0])):
        loads.append(f"{int(steps):,}-step recipe {r['load'][0]:.1f} before, {r['load'][1]:.1f} after")
        rows.append((f"README GLM recipe, {int(steps):,} steps, one thread: validation loss, time",
                     f"{r['first']:.2f} -> {r['last']:.2f} in {r['seconds']:.0f} s"))
        rows.append((f"README GLM recipe, {int(steps):,} steps: greedy continuation of 'The return statement'",
                     f"`{r['sample']!r}`"))
    # The table always renders every stage's numbers: its command is the whole benchmark's.
    lines = header("What a new user waits for", argv=[sys.argv[0]])
    lines += [
        "`--stage build`, `--stage user` or `--stage recipes` reruns one part; the raw numbers are in "
        "first_use.json beside this table. Cores shared with other jobs; load average per part: "
        f"{'; '.join(loads)}. "
        "Each row runs in a fresh interpreter; absolute times are noisy on this shared machine, "
        "compare rows of one run.",
        "",
        "| what | measured |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
    ]
    if user and user["first"].get("message"):
        lines += [f"First-use message: `{user['first']['message']}`", ""]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
