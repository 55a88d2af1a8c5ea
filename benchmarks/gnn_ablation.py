"""Does the GCN earn its place? Trained vs untrained model, one-shot vs default, held-out families.

Every cell is a geometric mean of makespan / HEFT's makespan on the same instance (lower is
better). "trained" cells are mean ± sd over five training seeds (weights from
``openautoglm train-scheduler --seed S``: generated graphs of the families layered, narrow,
wide, dense; the family ``jumpy`` and every real trace family are held out of training, so
every row here is on families the model never saw). "untrained" is
``GNNScheduler(weights="untrained")``: the same policy with a model whose priority is HEFT's
upward rank, whose edge head says 1/2 everywhere and whose shares are full: its one-shot plan is
HEFT's (1.000 by construction).

Columns:
  one-shot       ``candidates="one"``: the decoder (free placement + co-location clusters)
  default        ``candidates="auto"``: the model-guided search (one-shot + heft + serial, then
                 an iterated local search within guided_budget(n) calls, cut edges ordered by
                 the model)
  untrained x4   the untrained control with 4x the default's budget
  former         ``candidates="all"`` with the untrained model: the former default search
                 (about 20 candidates, 2 x 40,000 / n calls on each of the best four)
  calls          median list-scheduling kernel calls per plan (counted at the kernel, the
                 winner's Schedule included); makespans and calls are deterministic, so they
                 are cached per instance in build/gnn_ablation.json (delete it to recompute)
  planning time  a separate table, every policy timed side by side on the same graphs in one
                 loop (1 torch thread; shared 2-core machine: noisy, medians)

Regenerate:  nice python benchmarks/gnn_ablation.py   (trains the 5 seeds into build/gnn_seeds
             when missing, teacher targets cached in build/gnn_targets)
Smoke run:   python benchmarks/gnn_ablation.py --quick
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import openautoglm as oag
from _header import header
from openautoglm.schedulers.gnn.scheduler import GNNScheduler
from openautoglm.schedulers.gnn.examples import FAMILIES
from openautoglm.schedulers.gnn.training import main as train_main
from openautoglm.schedulers.gnn.weights import load_model
from openautoglm.simulate import _kernel as kernel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORKFLOWS = ROOT / ".." / "shared" / "workflows" / "pegasus"

_CALLS = [0]
_run_list = kernel.run_list


def _counting_run_list(*a, **k):  # the kernel, counted (numba path; see _count below)
    _CALLS[0] += 1
    return _run_list(*a, **k)


kernel.run_list = _counting_run_list


def _count(fn, g, c):
    """Run ``fn(g, c)`` -> (makespan, kernel calls, seconds)."""
    before = _CALLS[0]
    t = time.perf_counter()
    plan = fn(g, c)
    dt = time.perf_counter() - t
    return plan.schedule.makespan, _CALLS[0] - before, dt


class Cache:
    """Deterministic results (makespan, calls) per instance and policy, kept between runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, list[float]] = {}
        # Results written by parallel fills (``--fill-seed``) sit beside the main file.
        for p in sorted(path.parent.glob(path.stem + "*.json")):
            self.data.update(json.loads(p.read_text()))

    def get(self, key: str, fn, g, c) -> tuple[float, int]:
        if key not in self.data:
            m, calls, _ = _count(fn, g, c)
            self.data[key] = [m, calls]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data))
        m, calls = self.data[key]
        return float(m), int(calls)


def seed_models(args: argparse.Namespace) -> list:
    # A smoke run trains tiny models: never into the folder of the real ones.
    seed_dir = Path(args.seed_dir + ("_quick" if args.quick else ""))
    models = []
    for s in range(args.seeds):
        if args.fill_seed is not None and s != args.fill_seed:
            models.append(None)  # not needed by this fill
            continue
        path = seed_dir / f"seed{s}.pt"
        if not path.is_file():
            extra = ["--graphs", "10", "--epochs", "2"] if args.quick else []
            train_main(["--seed", str(s), "--out", str(path), "--cache",
                        str(ROOT / "build" / "gnn_targets"), *extra])
        models.append(load_model(path))
    return models


def instances(args: argparse.Namespace):
    """(suite, ccr, workers, graph, cluster, key) on held-out families."""
    out = []
    k = FAMILIES["jumpy"]
    sizes = (50, 100) if args.quick else (50, 100, 200, 300)
    seed = 0
    for ccr in (1.0, 10.0):
        for W in (4, 16):
            for n in sizes:
                for _ in range(1 if args.quick else args.per_size):
                    seed += 1
                    g = oag.random_dag(n, fat=k["fat"], density=k["density"],
                                       regularity=k["regularity"], jump=int(k["jump"]), ccr=ccr,
                                       seed=20_000 + seed)
                    out.append(("random DAGs, held-out family jumpy (n 50-300)", ccr, W, g,
                                oag.Cluster.homogeneous(W), f"jumpy/{n}/{20_000 + seed}/{ccr:g}/{W}"))
    if WORKFLOWS.is_dir():
        for fam_dir in sorted(p for p in WORKFLOWS.iterdir() if p.is_dir()):
            files = sorted(fam_dir.glob("*.json"), key=lambda p: p.stat().st_size)
            for path in files[: (1 if args.quick else args.traces_per_family)]:
                g0 = oag.load_wfcommons(path)
                for ccr in (1.0, 10.0):
                    for W in (4, 16):
                        out.append(("real traces, 5 held-out families", ccr, W,
                                    g0.with_ccr(ccr), oag.Cluster.homogeneous(W),
                                    f"trace/{fam_dir.name}/{path.name}/{ccr:g}/{W}"))
    return out


def gm(v: list[float]) -> float:
    return float(math.exp(np.mean(np.log(v))))


def mean_sd(vals: list[float]) -> str:
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.3f} ± {sd:.3f}"


def ablation(args: argparse.Namespace, models: list, cache: Cache) -> list[str]:
    un_one = GNNScheduler(weights="untrained", candidates="one")
    un = GNNScheduler(weights="untrained")
    former = GNNScheduler(weights="untrained", candidates="all")
    trained = [(GNNScheduler(model=m, candidates="one"), GNNScheduler(model=m)) for m in models]
    tag = "quick/" if args.quick else ""
    cells: dict[tuple, dict[str, list]] = {}
    for suite, ccr, W, g, c, key in instances(args):
        h = cache.get(f"{tag}{key}/heft", lambda g, c: _Heft(oag.schedule(g, c, policy="heft")),
                      g, c)[0]
        row = cells.setdefault((suite, ccr, W), {})
        if args.fill_seed is not None:
            for s, (one, full) in enumerate(trained):
                if s == args.fill_seed:
                    cache.get(f"{tag}{key}/one {s}", one.plan, g, c)
                    cache.get(f"{tag}{key}/default {s}", full.plan, g, c)
            print(f"  seed {args.fill_seed}: {key} done", file=sys.stderr, flush=True)
            continue

        def put(name: str, res: tuple[float, int]) -> None:
            row.setdefault(name, []).append(res[0] / h)
            row.setdefault(name + " calls", []).append(res[1])

        put("untrained one", cache.get(f"{tag}{key}/untrained one", un_one.plan, g, c))
        put("untrained", cache.get(f"{tag}{key}/untrained", un.plan, g, c))
        x4 = GNNScheduler(weights="untrained", budget=4 * un.budget_for(g))
        put("untrained x4", cache.get(f"{tag}{key}/untrained x4", x4.plan, g, c))
        if not args.no_former:
            put("former", cache.get(f"{tag}{key}/former", former.plan, g, c))
        if args.control_only:
            continue
        for s, (one, full) in enumerate(trained):
            if args.fill_seed is not None and s != args.fill_seed:
                continue
            put(f"one {s}", cache.get(f"{tag}{key}/one {s}", one.plan, g, c))
            put(f"default {s}", cache.get(f"{tag}{key}/default {s}", full.plan, g, c))
        print(f"  {suite[:12]} ccr={ccr:g} W={W} n={len(g)} done", file=sys.stderr, flush=True)
    if args.control_only or args.fill_seed is not None:
        return []
    S = len(models)
    head = ("| instances | CCR | workers | graphs | one-shot untrained (= HEFT) | one-shot trained "
            "| default untrained | default trained | default: trained vs untrained "
            "| untrained, 4x budget | former default (`all`) "
            "| calls (median): one-shot trained / default / 4x / former |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (suite, ccr, W), row in cells.items():
        one_t = [gm(row[f"one {s}"]) for s in range(S)]
        def_t = [gm(row[f"default {s}"]) for s in range(S)]
        gap = [gm(row[f"default {s}"]) / gm(row["untrained"]) - 1 for s in range(S)]
        med = lambda k: statistics.median(row[k])  # noqa: E731
        calls_t = statistics.median([x for s in range(S) for x in row[f"default {s} calls"]])
        calls_one = statistics.median([x for s in range(S) for x in row[f"one {s} calls"]])
        former = f"{gm(row['former']):.3f}" if "former" in row else "-"
        f_calls = f"{med('former calls'):.0f}" if "former" in row else "-"
        sd_gap = statistics.stdev(gap) * 100 if S > 1 else 0.0
        lines.append(
            f"| {suite} | {ccr:g} | {W} | {len(row['untrained'])} | {gm(row['untrained one']):.3f} "
            f"| {mean_sd(one_t)} | {gm(row['untrained']):.3f} | {mean_sd(def_t)} "
            f"| {statistics.mean(gap) * 100:+.1f}% ± {sd_gap:.1f} "
            f"| {gm(row['untrained x4']):.3f} | {former} "
            f"| {calls_one:.0f} / {calls_t:.0f} / {med('untrained x4 calls'):.0f} / {f_calls} |")
    return lines


class _Heft:
    """A plan-like wrapper so HEFT goes through the same cache."""

    def __init__(self, schedule) -> None:
        self.schedule = schedule


def timing(args: argparse.Namespace, model) -> list[str]:
    """Median planning time by graph size, every policy timed on the same graphs in one loop."""
    full, one = GNNScheduler(model=model), GNNScheduler(model=model, candidates="one")
    un, former = GNNScheduler(weights="untrained"), GNNScheduler(weights="untrained", candidates="all")
    lines = ["| tasks | workers | graphs | default `gnn`, trained (ms) | calls "
             "| default, untrained (ms) | one-shot, trained (ms) | former default `all` (ms) "
             "| heft (ms) |", "|---|---|---|---|---|---|---|---|---|"]
    cases = [((9, 12, 15, 20), 4), ((100, 200, 500, 1000), 4), ((1000,), 16)]
    for sizes, W in cases:
        t: dict[str, list[float]] = {}
        calls = []
        for n in sizes:
            for k in range(1 if args.quick else 3):
                g = oag.random_dag(n, ccr=(1.0, 10.0, 0.1)[k % 3], seed=30_000 + n + k)
                c = oag.Cluster.homogeneous(W)
                full.plan(g, c)  # warm (numba, caches)
                for name, fn in (("full", full.plan), ("un", un.plan), ("one", one.plan),
                                 ("former", former.plan),
                                 ("heft", lambda g, c: _Heft(oag.schedule(g, c, policy="heft")))):
                    if name == "former" and (args.quick or n > 500):
                        continue
                    _, cl, dt = _count(fn, g, c)
                    t.setdefault(name, []).append(dt)
                    if name == "full":
                        calls.append(cl)
        ms = lambda v: f"{statistics.median(t[v]) * 1e3:.1f}" if v in t else "-"  # noqa: E731
        label = f"{min(sizes)}-{max(sizes)}" if len(sizes) > 1 else f"{sizes[0]}"
        lines.append(f"| {label} | {W} | {len(t['full'])} | {ms('full')} | {statistics.median(calls):.0f} "
                     f"| {ms('un')} | {ms('one')} | {ms('former')} | {ms('heft')} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--per-size", type=int, default=2, help="graphs per (CCR, workers, n)")
    ap.add_argument("--seed-dir", default=str(ROOT / "build" / "gnn_seeds"))
    ap.add_argument("--no-former", action="store_true", help="skip the former default (slow)")
    ap.add_argument("--traces-per-family", type=int, default=4)
    ap.add_argument("--control-only", action="store_true",
                    help="only fill the cache of the untrained and former columns (no models)")
    ap.add_argument("--cache", default=str(ROOT / "build" / "gnn_ablation.json"))
    ap.add_argument("--timing-only", action="store_true",
                    help="only the planning-time table (to build/gnn_ablation_timing.md)")
    ap.add_argument("--fill-seed", type=int, default=None,
                    help="only fill the cache with seed S's results (parallel runs), no table")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    import torch

    torch.set_num_threads(1)
    if args.quick:
        args.seeds = min(args.seeds, 2)
    t0 = time.perf_counter()
    cache = Cache(Path(args.cache))
    if args.control_only:
        ablation(args, [], cache)
        return
    models = seed_models(args)
    if args.timing_only:
        text = "\n".join(timing(args, models[0])) + "\n"
        (ROOT / "build" / "gnn_ablation_timing.md").write_text(text)
        print(text)
        return
    if args.fill_seed is not None:
        cache.path = cache.path.with_name(f"{cache.path.stem}_seed{args.fill_seed}.json")
        ablation(args, models, cache)
        return
    lines = ablation(args, models, cache)
    tlines = timing(args, models[0])
    doc = [*header(f"gnn_ablation{'_quick' if args.quick else ''}", load_before=load_before),
           *[ln for ln in (__doc__ or "").split("\n\n")[1].splitlines()], "",
           "## Trained vs untrained, one-shot vs default (every family held out of training)", "",
           *lines, "",
           "## Planning time (trained seed 0; one torch thread; shared 2-core machine)", "",
           *tlines, "",
           f"Total benchmark time: {time.perf_counter() - t0:.0f} s.", ""]
    out = Path(args.out) if args.out else RESULTS / f"gnn_ablation{'_quick' if args.quick else ''}.md"
    out.write_text("\n".join(doc))
    print("\n".join(doc))


if __name__ == "__main__":
    main()
