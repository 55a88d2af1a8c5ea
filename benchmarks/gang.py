"""Gang tasks: HEFT and gnn plans vs running every gang on the whole cluster.

Graphs: DAGGEN-style random DAGs (``oag.random_dag(n, ccr=1.0, seed=s)``) where a fraction of
the tasks (10%, 20%, 30%) become gangs of k = 2..4 workers (uniform), each with an Amdahl run
time (parallel fraction 0.6..1, communication 0..10% of its single-worker cost per extra rank);
8 workers with speeds 1..2. Baseline: the usual practice of giving a distributed job the whole
cluster: every gang widened to all 8 workers (its run time by the same Amdahl model at k = 8),
planned by HEFT. Every plan is checked (``check_schedule``) and compared with the lower bound.

Regenerate the table (the command is also written into it): ``nice python benchmarks/gang.py``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import openautoglm as oag
from _header import header
from openautoglm.simulate.schedule import check_schedule, lower_bound

OUT = Path(__file__).resolve().parent / "results" / "gang.md"
WORKERS = 8


def gang_graph(n: int, seed: int, fraction: float, widen: bool = False) -> oag.TaskGraph:
    """``random_dag(n, seed)`` with ``fraction`` of the tasks gangs (all 8 workers if ``widen``)."""
    G = oag.random_dag(n, ccr=1.0, seed=seed).nx.copy()
    rng = np.random.default_rng(seed)
    for k in sorted(G.nodes):
        a = G.nodes[k]
        draw = rng.random(), int(rng.integers(2, 5)), rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.1)
        if draw[0] < fraction:
            a["gang"] = WORKERS if widen else draw[1]
            a["gang_parallel"] = float(draw[2])
            a["gang_comm"] = float(draw[3]) * a["cost"]
    return oag.TaskGraph.from_networkx(G)


def plan(g: oag.TaskGraph, c: oag.Cluster, policy: str) -> tuple[float, float]:
    t = time.perf_counter()
    s = oag.schedule(g, c, policy=policy)
    elapsed = time.perf_counter() - t
    problems = check_schedule(s)
    assert not problems, (policy, problems[:3])
    assert s.makespan >= lower_bound(g, c) * (1 - 1e-9)
    return s.makespan, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[30, 50])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    import torch

    torch.set_num_threads(1)
    c = oag.Cluster(speeds=list(np.linspace(1.0, 2.0, WORKERS)))
    rows = []
    for n in args.tasks:
        for fraction in args.fractions:
            ratios: dict[str, list[float]] = {"heft": [], "gnn": []}
            secs: dict[str, list[float]] = {"heft": [], "gnn": []}
            lbs = []
            for seed in range(args.seeds):
                g = gang_graph(n, seed, fraction)
                base, _ = plan(gang_graph(n, seed, fraction, widen=True), c, "heft")
                lbs.append(lower_bound(g, c) / base)
                for policy in ratios:
                    m, dt = plan(g, c, policy)
                    ratios[policy].append(m / base)
                    secs[policy].append(dt)
            rows.append((n, fraction, ratios, secs, lbs))
            print(n, fraction, {p: round(statistics.mean(r), 3) for p, r in ratios.items()})
    lines = header("Gang tasks: planned makespan / baseline (every gang on all 8 workers, HEFT)",
                   load_before=load_before)
    lines += [
        f"openautoglm {oag.__version__}. Simulated makespans (deterministic); planning times are "
        "wall times on a shared machine (noisy).",
        "",
        f"{args.seeds} seeds per row (mean ± sd over seeds); every plan passed `check_schedule` "
        "and was above `lower_bound`. Goal: gnn ≤ 0.95.",
        "",
        "| tasks | gang fraction | HEFT / baseline | gnn / baseline | lower bound / baseline "
        "| HEFT plan (s, median) | gnn plan (s, median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, fraction, ratios, secs, lbs in rows:
        cell = {p: f"{statistics.mean(r):.3f} ± {statistics.stdev(r):.3f}" for p, r in ratios.items()}
        lines.append(f"| {n} | {fraction:.0%} | {cell['heft']} | {cell['gnn']} | "
                     f"{statistics.mean(lbs):.3f} | {statistics.median(secs['heft']):.3f} | "
                     f"{statistics.median(secs['gnn']):.3f} |")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(OUT.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
