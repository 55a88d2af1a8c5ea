"""Real Dask collections: plain ``dask.compute`` vs ``oag.compute`` (each mode), side by side.

Workloads are Dask's own collections: dask.array (mean, matmul, QR, TSQR-SVD, svd_compressed,
rechunk), dask.dataframe (groupby, merge, set_index; task-based shuffles) and delayed graphs
(map-reduce, chains, a random DAG, an unbalanced tree, a mixed-cost pipeline; their tasks sleep,
so that 2 worker threads stay truly parallel on a shared 2-core machine, and each kind of task
has its own key prefix as real code does).

Per workload, one fresh ``Engine`` (LocalCluster, 2 workers x 1 thread, threads) and one fresh
History:
1. ``cold``: ``oag.compute(history=h)`` before anything ran on the cluster (the true first run);
2. then ``--reps`` rounds, alternated: plain ``dask.compute`` on the same cluster; ``oag``
   without history (Dask has measured the prefixes by now); ``oag`` with history (auto mode);
   ``oag`` forced ``strict`` and forced ``priorities`` with history.
Ratios are medians of the per-round ratios to the plain run of the same round. ``plan err`` is
|planned / realised makespan - 1| of the auto run with history (the prediction of the mode it
chose); ``mape`` the per-task duration error of the forced strict plan.

Straggler: a chain of critical steps whose worker slows down 5x mid-run, with and without
``backup=True``.

Scale rows: one fresh cluster per size, a cold ``oag.compute`` then a plain one (one pair:
minutes each on this machine), a dask.array reduction over tiny chunks.

    nice python benchmarks/dask_collections.py [--reps 3] [--scale 10000,50000]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import dask
import numpy as np
import torch

import openautoglm as oag
from _header import header

RESULTS = Path(__file__).resolve().parent / "results" / "dask_collections.md"


# -- delayed workloads (sleeping tasks, one key prefix per kind) ------------------------------


def napper(name: str, seconds: float):
    def f(*deps: object) -> float:
        time.sleep(seconds)
        return seconds

    f.__name__ = name
    return dask.delayed(f, pure=False)


def map_reduce():
    m, r = napper("map_part", 0.03), napper("reduce_pair", 0.01)
    level = [m(i) for i in range(32)]
    while len(level) > 1:
        level = [r(*level[i:i + 2]) for i in range(0, len(level), 2)]
    return level[0]


def chains():
    """A short chain of heavy steps beside long chains of light ones: Dask's order (which
    counts tasks, not seconds) starts the long light chains first; the heavy chain is the
    critical path."""
    heavy, light, join = napper("solve_step", 0.25), napper("prep_step", 0.02), napper("join", 0.0)
    outs = []
    for c in range(6):
        x = light(c)
        for _ in range(7):
            x = light(x)
        outs.append(x)
    x = heavy(heavy(heavy()))
    return join(*outs, x)


def random_dag(seed: int = 0):
    rng = np.random.default_rng(seed)
    kinds = [napper("light", 0.005), napper("medium", 0.02), napper("heavy", 0.08)]
    nodes = []
    for i in range(120):
        deps = [nodes[j] for j in sorted(set(rng.integers(0, i, size=min(i, 2)).tolist()))] if i else []
        nodes.append(kinds[int(rng.choice(3, p=[0.5, 0.35, 0.15]))](*deps))
    return napper("collect", 0.0)(*nodes[-20:])


def unbalanced_tree():
    """A wide fan of light leaves and, built after it, one deep branch of heavy nodes."""
    deep, leaf, node = napper("deep_node", 0.07), napper("leaf", 0.02), napper("merge_node", 0.01)
    leaves = [leaf(i) for i in range(40)]
    while len(leaves) > 1:
        leaves = [node(*leaves[i:i + 4]) for i in range(0, len(leaves), 4)]
    x = deep()
    for _ in range(7):
        x = deep(x)
    return node(leaves[0], x)


def mixed_pipeline():
    """Files go through 3 light steps, except two that train a model (one heavy step)."""
    load, clean, fit = napper("load", 0.01), napper("clean", 0.03), napper("train_model", 0.6)
    combine = napper("combine", 0.01)
    outs = []
    for i in range(14):
        x = load(i)
        outs.append(fit(x) if i in (6, 13) else clean(clean(clean(x))))
    return combine(*outs)


# -- array and dataframe workloads ----------------------------------------------------------


def array_mean():
    import dask.array as da

    return da.random.default_rng(0).random((2000, 2000), chunks=250).mean()


def array_matmul():
    import dask.array as da

    x = da.random.default_rng(1).random((800, 800), chunks=200)
    return (x @ x.T).sum()


def array_qr():
    import dask.array as da

    x = da.random.default_rng(2).random((16000, 20), chunks=(1000, 20))
    q, r = da.linalg.qr(x)
    return q.sum() + r.sum()


def array_tsqr_svd():
    import dask.array as da

    x = da.random.default_rng(3).random((16000, 20), chunks=(1000, 20))
    return da.linalg.svd(x)[1]


def array_svd_compressed():
    import dask.array as da

    x = da.random.default_rng(4).random((800, 800), chunks=200)
    return da.linalg.svd_compressed(x, k=10, seed=0)[1]


def array_rechunk():
    import dask.array as da

    x = da.random.default_rng(5).random((1000, 1000), chunks=(1000, 50))
    return x.rechunk((50, 1000)).sum(axis=1)


def _frames(n: int = 60_000, parts: int = 8):
    import dask.dataframe as dd
    import pandas as pd

    rng = np.random.default_rng(6)
    left = pd.DataFrame({"k": rng.integers(0, 5000, n), "v": rng.random(n)})
    right = pd.DataFrame({"k": np.arange(5000), "w": rng.random(5000)})
    return dd.from_pandas(left, npartitions=parts), dd.from_pandas(right, npartitions=4)


def df_groupby():
    left, _ = _frames()
    return left.groupby("k").v.mean()


def df_merge():
    left, right = _frames()
    return left.merge(right, on="k", how="inner", shuffle_method="tasks").w.sum()


def df_set_index():
    left, _ = _frames()
    return left.set_index("k", shuffle_method="tasks").v.sum()


WORKLOADS = {
    "array mean": array_mean, "array matmul": array_matmul, "array QR": array_qr,
    "array TSQR-SVD": array_tsqr_svd, "array svd_compressed": array_svd_compressed,
    "array rechunk": array_rechunk, "df groupby": df_groupby, "df merge": df_merge,
    "df set_index": df_set_index, "delayed map-reduce": map_reduce, "delayed chains": chains,
    "delayed random DAG": random_dag, "delayed unbalanced tree": unbalanced_tree,
    "delayed mixed-cost pipeline": mixed_pipeline,
}
#: Where order or placement matters (critical paths, unequal costs): the 10% goal applies.
ORDER_SENSITIVE = {"delayed chains", "delayed unbalanced tree", "delayed mixed-cost pipeline",
                   "delayed random DAG"}


def same(a, b) -> bool:
    if hasattr(a, "equals"):
        return bool(a.sort_index().round(8).equals(b.sort_index().round(8)))
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-6))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def engine() -> oag.Engine:
    return oag.Engine(n_workers=2, threads_per_worker=1, processes=False, dashboard=False,
                      progress=False)


def run_workload(name: str, make, reps: int) -> dict:
    h = oag.History(":memory:")
    row: dict = {"name": name}
    # The true first run on a fresh cluster, against plain Dask's first run on another fresh
    # cluster (a cluster's first run pays warm-ups that later runs do not).
    with engine() as e:
        (cold_ref,), t_cold_plain = timed(lambda: dask.compute(make(), scheduler=e.client))
    with engine() as e:
        (cold,), t_cold = timed(lambda: e.compute(make(), history=h))
        assert same(cold, cold_ref), f"{name}: cold run differs from plain Dask"
        row["cold_mode"] = e.last_run.decision.mode
        row["cold_plan_s"] = e.last_run.decision.planning_seconds
        row["cold"] = t_cold / t_cold_plain
        ratios: dict[str, list[float]] = {k: [] for k in ("first", "auto", "strict", "prio")}
        plain_t, modes, plan_s, plan_err, mape, extra = [], [], [], [], [], []
        for rep in range(reps):
            (ref,), t_plain = timed(lambda: dask.compute(make(), scheduler=e.client))
            plain_t.append(t_plain)
            (v,), t = timed(lambda: e.compute(make()))
            assert same(v, ref), f"{name}: oag (no history) differs from plain Dask"
            ratios["first"].append(t / t_plain)
            (v,), t = timed(lambda: e.compute(make(), history=h))
            assert same(v, ref), f"{name}: oag (history) differs from plain Dask"
            d, res = e.last_run.decision, e.last_run
            ratios["auto"].append(t / t_plain)
            # What oag adds around Dask's own run (graph load, estimates, plan, records,
            # history): less noisy than the ratio of two noisy wall times.
            extra.append((t - res.wall_time) / t_plain)
            modes.append(d.mode)
            plan_s.append(d.planning_seconds)
            predicted = res.planned_makespan if d.mode != "dask" else d.predicted.get("dask")
            if predicted and res.makespan > 0:
                plan_err.append(abs(predicted / res.makespan - 1))
            for mode, col in (("strict", "strict"), ("priorities", "prio")):
                (v,), t = timed(lambda: e.compute(make(), history=h, mode=mode))
                assert same(v, ref), f"{name}: oag ({mode}) differs from plain Dask"
                ratios[col].append(t / t_plain)
                if mode == "strict":
                    mape.append(e.last_run.estimate_error()["duration_mape"])
            print(f"{name} rep {rep}: plain {t_plain:.2f} s, auto {ratios['auto'][-1]:.2f}x "
                  f"({d.mode}), strict {ratios['strict'][-1]:.2f}x, prio {ratios['prio'][-1]:.2f}x",
                  flush=True)
        row.update(tasks=len(res.times), plain=statistics.median(plain_t),
                   **{k: statistics.median(v) for k, v in ratios.items()},
                   modes="/".join(sorted(set(modes))), reason=d.reason,
                   plan_s=statistics.median(plan_s),
                   plan_err=statistics.median(plan_err) if plan_err else float("nan"),
                   mape=statistics.median(mape) if mape else float("nan"),
                   extra=statistics.median(extra))
    h.close()
    return row


def reduction(n_tasks: int):
    import dask.array as da

    side = int(round((n_tasks / 2.1) ** 0.5))
    return da.ones((side * 4, side * 4), chunks=4).sum()


def run_scale(n_tasks: int) -> dict:
    h = oag.History(":memory:")
    with engine() as e:
        (a,), t_oag = timed(lambda: e.compute(reduction(n_tasks), history=h))
        d = e.last_run.decision
        tasks = len(e.last_run.times)
        (b,), t_plain = timed(lambda: dask.compute(reduction(n_tasks), scheduler=e.client))
        assert a == b
    h.close()
    print(f"scale {tasks}: oag {t_oag:.1f} s ({d.mode}), plain {t_plain:.1f} s", flush=True)
    return {"tasks": tasks, "oag": t_oag, "plain": t_plain, "mode": d.mode,
            "plan_s": d.planning_seconds}


def warm_up() -> None:
    """Load the planner's compiled kernels once per process (numba), as a long-lived process
    that plans would have; the table's times are those of a warm process."""
    with engine() as e:
        e.compute(unbalanced_tree(), mode="strict")


#: The worker the first critical step ran on turns 5x slower from then on.
STRAGGLER: dict = {"worker": None}


def _critical_step(*deps: object) -> float:
    from distributed import get_worker

    me = get_worker().address
    if STRAGGLER["worker"] is None:
        STRAGGLER["worker"] = me
    time.sleep(0.3 * (5 if me == STRAGGLER["worker"] and deps else 1))
    return 0.3


def straggler_workload():
    """A chain of five 0.3 s critical steps beside 16 light jobs."""
    _critical_step.__name__ = "critical_step"
    step = dask.delayed(_critical_step, pure=False)
    x = step()
    for _ in range(4):
        x = step(x)
    light = napper("side_job", 0.05)
    return napper("join", 0.0)(x, *[light(i) for i in range(16)])


def run_straggler(reps: int) -> dict:
    """Strict plan with history; the critical chain's worker slows 5x after its first step:
    with ``backup=True`` vs without, alternated."""
    h = oag.History(":memory:")
    out: dict[str, list[float]] = {"without": [], "with": []}
    backups = []
    with engine() as e:
        STRAGGLER["worker"] = "nobody"
        e.compute(straggler_workload(), history=h)
        for rep in range(reps):
            for label, backup in (("without", False), ("with", True)):
                STRAGGLER["worker"] = None
                _, t = timed(lambda: e.compute(straggler_workload(), history=h, mode="strict",
                                               backup=backup))
                out[label].append(t)
                if backup:
                    backups.append(sum(c.startswith("backup of")
                                       for c in e.last_run.decision.corrections))
            print(f"straggler rep {rep}: without {out['without'][-1]:.2f} s, with "
                  f"{out['with'][-1]:.2f} s", flush=True)
    h.close()
    return {"without": statistics.median(out["without"]), "with": statistics.median(out["with"]),
            "ratio": statistics.median(w / wo for w, wo in zip(out["with"], out["without"])),
            "backups": statistics.median(backups)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", default="10000,50000", help="task counts of the scale rows ('' for none)")
    ap.add_argument("--only", default="", help="comma-separated workload names (default all; "
                    "'none' for the straggler and scale parts only)")
    ap.add_argument("--out", default=str(RESULTS), help="the table's path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    dask.config.set({"dataframe.shuffle.method": "tasks"})
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    warm_up()
    names = [n for n in WORKLOADS if not args.only or n in args.only.split(",")]
    rows: list[dict] = []
    for n in names:  # the table is rewritten after each step: a stopped run keeps its rows
        rows.append(run_workload(n, WORKLOADS[n], args.reps))
        write(rows, [], None, args, load0, time.perf_counter() - t0)
    straggler = run_straggler(args.reps)
    scale: list[dict] = []
    write(rows, scale, straggler, args, load0, time.perf_counter() - t0)
    for n in args.scale.split(","):
        if n:
            scale.append(run_scale(int(n)))
            write(rows, scale, straggler, args, load0, time.perf_counter() - t0)


def write(rows: list[dict], scale: list[dict], straggler: dict | None, args, load0: float,
          total: float) -> None:
    lines = header("Real Dask collections: plain `dask.compute` vs `oag.compute`",
                   load_before=load0)
    lines += [
        "The machine's cores are **shared with other jobs**. "
        "LocalCluster(2 workers x 1 thread, threads), one fresh cluster and "
        f"history per workload. Times are wall seconds around the call (graph building, "
        f"planning and submission included). Ratios: oag / plain, median of {args.reps} rounds "
        "alternated with the plain run; `cold` is the single true first run (nothing measured "
        "on the cluster yet, against plain Dask's first run on another fresh cluster). The "
        "process plans once before timing (loading the planner's compiled kernels, seconds "
        "under load, is paid once per process). Whole run: "
        f"{total / 60:.1f} min.",
        "",
        "| workload | tasks | plain (s) | cold (mode) | first, no history | auto, history | "
        "mode chosen (history) | oag's own time / plain | strict | priorities | planning (s) | "
        "plan err | task mape |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        star = " *" if r["name"] in ORDER_SENSITIVE else ""
        lines.append(
            f"| {r['name']}{star} | {r['tasks']} | {r['plain']:.2f} | {r['cold']:.2f} "
            f"({r['cold_mode']}) | {r['first']:.2f} | {r['auto']:.2f} | {r['modes']} | "
            f"{r['extra']:.1%} | "
            f"{r['strict']:.2f} | {r['prio']:.2f} | {r['plan_s']:.3f} | {r['plan_err']:.0%} | "
            f"{r['mape']:.0%} |")
    worst = max((max(r["cold"], r["first"], r["auto"]) for r in rows), default=float("nan"))
    sens = [r["auto"] for r in rows if r["name"] in ORDER_SENSITIVE]
    lines += [
        "",
        "`*`: order-sensitive workloads (goal with history: <= 0.90). Goal on every workload: "
        "cold, first and auto <= 1.05. `oag's own time`: the auto run's wall time minus its "
        "Dask run (submission to results), over plain's wall time: what oag adds (graph "
        "load, estimates, plan, per-task records, history), measured within one run and so "
        "less noisy than the ratios. `planning`: load + estimate + plan + decide. `plan "
        "err`: |planned / realised makespan - 1| of the chosen mode's prediction. `task "
        "mape`: per-task duration error of the strict plan.",
        f"Worst auto-mode ratio over all workloads and columns cold/first/auto: {worst:.2f}. "
        f"Order-sensitive auto ratios with history: "
        f"{', '.join(f'{x:.2f}' for x in sens) or 'n/a'}.",
        "",
        "Reasons of the last auto decision with history, per workload:",
        "",
    ]
    lines += [f"- {r['name']}: {r['mode'] if 'mode' in r else r['modes']}: {r['reason']}" for r in rows]
    if straggler is None:
        straggler = {"without": float("nan"), "with": float("nan"), "ratio": float("nan"),
                     "backups": float("nan")}
    lines += ["", "## Injected straggler (strict plan with history, the critical chain's worker "
              "slowed 5x after the chain's first step; median of "
              f"{args.reps} alternated pairs)", "",
              "| without backup (s) | with backup=True (s) | ratio with/without | backups per run |",
              "|---|---|---|---|",
              f"| {straggler['without']:.2f} | {straggler['with']:.2f} | {straggler['ratio']:.2f} "
              f"| {straggler['backups']:.0f} |"]
    if scale:
        lines += ["", "## Scale (one pair each: cold `oag.compute` then plain, same cluster)", "",
                  "| tasks | plain (s) | oag cold (s) | mode | overhead (oag - plain) / plain | "
                  "of which graph load + estimate (s) |", "|---|---|---|---|---|---|"]
        for s in scale:
            lines.append(f"| {s['tasks']} | {s['plain']:.1f} | {s['oag']:.1f} | {s['mode']} | "
                         f"{(s['oag'] - s['plain']) / s['plain']:+.1%} | {s['plan_s']:.2f} |")
    lines += [""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
