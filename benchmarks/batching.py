"""Adaptive batching vs fixed batch sizes 1/4/16 for GLM inference under open-loop loads.

A small GLM (2 layers, hidden 64, trained briefly here) serves greedy continuations of
``--tokens`` characters through :func:`openautoglm.glm.glm_server`. For each offered load a
Poisson arrival schedule (seeded: the same arrivals for every policy) is replayed against
each server; a request's latency runs from its scheduled arrival to its result, so a queue
that builds up counts in full. Policies and loads alternate within each repeat; the table
reports medians over ``--reps`` repeats.

Regenerate the table (about 8 minutes on 2 cores):

    nice python benchmarks/batching.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from _header import header

from openautoglm.glm import (
    DEFAULT_TABLE,
    generate_batch,
    glm_server,
    load_corpus,
    train,
)
from openautoglm.glm.serving import fixed_table

RESULTS = Path(__file__).resolve().parent / "results" / "batching.md"


def policies(max_wait: float) -> dict[str, dict]:
    return {
        "adaptive": {"table": DEFAULT_TABLE, "max_wait": max_wait},
        "fixed 1": {"table": fixed_table(1), "max_wait": max_wait},
        "fixed 4": {"table": fixed_table(4), "max_wait": max_wait},
        "fixed 16": {"table": fixed_table(16), "max_wait": max_wait},
    }


def arrivals(rate: float, duration: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0 / rate, size=int(rate * duration * 2) + 16))
    return times[times < duration]


def replay(model, tok, prompts, schedule: np.ndarray, tokens: int, server_kw: dict) -> dict:
    """Submits one request per scheduled arrival; returns latencies, throughput, batch sizes."""
    finished = [0.0] * len(schedule)
    server = glm_server(model, tok, max_new_tokens=tokens, **server_kw)
    futures = []
    t0 = time.perf_counter()
    for k, at in enumerate(schedule):
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        future = server.submit(prompts[k % len(prompts)])
        future.add_done_callback(lambda f, k=k: finished.__setitem__(k, time.perf_counter()))
        futures.append(future)
    for f in futures:
        f.result()
    server.close()
    latency = np.array(finished) - (t0 + schedule)
    stats = server.stats()
    return {
        "p50": float(np.percentile(latency, 50)) * 1e3,
        "p95": float(np.percentile(latency, 95)) * 1e3,
        "throughput": len(schedule) / (max(finished) - t0),
        "batch": stats["mean_batch_size"],
        "n": len(schedule),
    }


def service_times(model, tok, prompts, tokens: int, reps: int = 5) -> dict[int, float]:
    """Median seconds of one generate_batch call per batch size (no queueing)."""
    out = {}
    for b in (1, 4, 16):
        times = []
        for r in range(reps):
            batch = [prompts[(r * b + i) % len(prompts)] for i in range(b)]
            start = time.perf_counter()
            generate_batch(model, tok, batch, tokens)
            times.append(time.perf_counter() - start)
        out[b] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=float, nargs="+", default=[20, 100, 300, 500],
                        help="offered loads in requests per second")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of arrivals per run")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=16, help="max new characters per request")
    parser.add_argument("--max-wait", type=float, default=0.01)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    torch.set_num_threads(1)
    text = load_corpus(max_chars=200_000)
    model, tok, history = train({"n_layers": 2, "hidden": 64, "heads": 4, "max_len": 128}, text,
                                steps=args.train_steps, batch_size=16, seq_len=64,
                                eval_every=args.train_steps, seed=0)
    val = text[-20_000:]
    prompts = [val[i : i + 24 + (i % 17)] for i in range(0, 19_000, 131)]
    load_before = os.getloadavg()[0]
    service = service_times(model, tok, prompts, args.tokens)

    results: dict[tuple[float, str], list[dict]] = {}
    pols = policies(args.max_wait)
    for rep in range(args.reps):
        for load in args.loads:
            schedule = arrivals(load, args.duration, seed=1000 * rep + int(load))
            for name, kw in pols.items():
                r = replay(model, tok, prompts, schedule, args.tokens, kw)
                results.setdefault((load, name), []).append(r)
                print(f"rep {rep} load {load:g} {name:9s} p50 {r['p50']:8.1f} ms  p95 "
                      f"{r['p95']:8.1f} ms  {r['throughput']:6.1f} req/s  batch {r['batch']:.2f}",
                      flush=True)
    load_after = os.getloadavg()[0]
    write_table(args, results, service, history, load_before, load_after)


def write_table(args, results, service, history, load_before, load_after) -> None:
    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    lines = header("Adaptive batching vs fixed batch sizes: GLM inference", load_before=load_before)
    lines += [
        f"Model: 2 layers, hidden 64, 4 heads (trained {args.train_steps} steps, val loss "
        f"{history[0]['val_loss']:.2f} -> {history[-1]['val_loss']:.2f}); each request asks for "
        f"up to {args.tokens} greedy characters (stops at [eop]). One torch thread, "
        f"max_wait {args.max_wait * 1e3:g} ms, rate window 1 s, adaptive table "
        "< 50 req/s: 1, 50-200: 4, > 200: 16. Poisson arrivals for "
        f"{args.duration:g} s per run, the same arrivals for every policy; latency from the "
        "scheduled arrival to the result (queueing included). Medians of "
        f"{args.reps} repeats, policies alternated within each repeat.",
        "",
        f"Load average {load_after:.1f} after the runs: absolute numbers are noisy; compare rows "
        "of one load.",
        "",
        "Service time of one batch without queueing (median of 5): "
        + ", ".join(f"batch {b}: {t * 1e3:.1f} ms ({b / t:.0f} req/s)" for b, t in service.items()),
        "",
        "| offered load (req/s) | policy | p50 latency (ms) | p95 latency (ms) | "
        "throughput (req/s) | mean batch | p95 vs adaptive |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for load in args.loads:
        adaptive_p95 = med(results[(load, "adaptive")], "p95")
        for name in policies(args.max_wait):
            rows = results[(load, name)]
            lines.append(
                f"| {load:g} | {name} | {med(rows, 'p50'):.1f} | {med(rows, 'p95'):.1f} | "
                f"{med(rows, 'throughput'):.1f} | {med(rows, 'batch'):.2f} | "
                f"{med(rows, 'p95') / adaptive_p95:.2f}x |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
