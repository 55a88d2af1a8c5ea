"""``openautoglm serve`` under load: fixed-1, fixed-16 and adaptive batching over HTTP, and the
overhead of ``/v1/plan`` against the in-process planner.

A real service process on 127.0.0.1 serves three versions of one GLM checkpoint (2 layers,
hidden 64; random weights: the cost of a forward pass is what batching changes), one per
batching policy. For each offered load, Poisson arrivals (seeded: the same for every policy)
are sent by an asyncio httpx client with at most ``--concurrency`` requests in flight;
latency runs from the scheduled arrival to the answer, so client-side waiting counts too.
Every answer is checked against what the checkpoint generates in-process: the table reports
lost (no 200) and mismatched answers. Policies alternate within each load.

Then ``/v1/plan`` of a 1,000-task DAG with HEFT on 4 workers, against the same work done
in-process (node-link JSON -> TaskGraph -> HEFT -> lower bound), alternating, medians.

Regenerate the table (about 5 minutes on 2 shared cores):

    PYTHONPATH=src nice python benchmarks/serving.py
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "serving.md"
COMMAND = "PYTHONPATH=src nice python benchmarks/serving.py"
POLICIES = {"fixed-1": {"policy": "fixed", "max_batch_size": 1},
            "fixed-16": {"policy": "fixed", "max_batch_size": 16},
            "adaptive": {"policy": "adaptive", "max_batch_size": 16}}


def start_service(registry: Path, model_dir: Path) -> tuple[subprocess.Popen, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.pop("OPENAUTOGLM_SERVE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "openautoglm", "serve", "--port", "0",
                             "--registry", str(registry), "--model-dir", str(model_dir),
                             "--engine-workers", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    url = re.search(r"(http://\S+)", line).group(1)
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(1200):
            try:
                if c.get("/v2/health/ready").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the service did not get ready")


async def replay(url: str, version: str, schedule: np.ndarray, prompts: list[str],
                 want: dict[str, str], tokens: int, concurrency: int) -> dict:
    """Open-loop arrivals, at most ``concurrency`` in flight; returns latency stats."""
    latency = np.full(len(schedule), np.nan)
    lost = mismatched = 0
    why: dict[str, int] = {}
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        t0 = time.perf_counter()

        async def one(k: int) -> None:
            nonlocal lost, mismatched
            await asyncio.sleep(max(0.0, t0 + schedule[k] - time.perf_counter()))
            prompt = prompts[k % len(prompts)]
            body = {"id": str(k), "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                              "data": [prompt]}],
                    "parameters": {"max_new_tokens": tokens}}
            async with slots:
                try:
                    r = await client.post(f"/v2/models/glm/versions/{version}/infer", json=body)
                except httpx.HTTPError as exc:
                    lost += 1
                    why[type(exc).__name__] = why.get(type(exc).__name__, 0) + 1
                    return
            latency[k] = time.perf_counter() - (t0 + schedule[k])
            if r.status_code != 200:
                lost += 1
                why[str(r.status_code)] = why.get(str(r.status_code), 0) + 1
                return
            out = r.json()
            if out["id"] != str(k) or out["model_version"] != version \
                    or out["outputs"][0]["data"] != [want[prompt]]:
                mismatched += 1

        await asyncio.gather(*(one(k) for k in range(len(schedule))))
        wall = time.perf_counter() - t0
    ok = latency[~np.isnan(latency)]
    return {"n": len(schedule), "lost": lost, "mismatched": mismatched, "why": why,
            "p50": float(np.percentile(ok, 50)) * 1e3, "p99": float(np.percentile(ok, 99)) * 1e3,
            "throughput": len(ok) / wall}


def plan_overhead(url: str, n: int, reps: int) -> dict:
    """Median ms of /v1/plan over HTTP and of the same work in-process, alternating."""
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.loaders import random_dag
    from openautoglm.schedulers import schedule as plan
    from openautoglm.serve.plans import build_graph
    from openautoglm.serve.schemas import PlanRequest
    from openautoglm.simulate.schedule import lower_bound

    g = random_dag(n, seed=0)
    doc = {"nodes": [{"id": k, "cost": float(c)} for k, c in zip(g.tasks, g.cost)],
           "links": [{"source": g.tasks[u], "target": g.tasks[v], "size": float(s)}
                     for u, v, s in zip(g.edge_src, g.edge_dst, g.edge_size)]}
    body = {"graph": doc, "cluster": {"workers": 4}, "policy": "heft"}
    http, local, sched_only = [], [], []
    with httpx.Client(base_url=url, timeout=120) as c:
        c.post("/v1/plan", json=body).raise_for_status()  # warm both sides
        for _ in range(reps):
            start = time.perf_counter()
            r = c.post("/v1/plan", json=body)
            http.append(time.perf_counter() - start)
            r.raise_for_status()
            start = time.perf_counter()
            req = PlanRequest.model_validate(body)
            graph = build_graph(req, 10**6, 10**7)
            cluster = Cluster.homogeneous(4)
            s0 = time.perf_counter()
            makespan = plan(graph, cluster, policy="heft").makespan
            sched_only.append(time.perf_counter() - s0)
            lower_bound(graph, cluster)
            local.append(time.perf_counter() - start)
            assert abs(makespan - r.json()["makespan"]) < 1e-6 * makespan
    med = {k: statistics.median(v) * 1e3 for k, v in
           (("http", http), ("local", local), ("schedule", sched_only))}
    med["overhead"] = med["http"] - med["local"]
    med["tasks"], med["edges"] = n, len(g.edge_src)
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=float, nargs="+", default=[20, 200, 500])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of arrivals")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--plan-tasks", type=int, default=1000)
    parser.add_argument("--plan-reps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from openautoglm.glm import CharTokenizer, GLMConfig, GLMModel, generate, load_corpus
    from openautoglm.glm.checkpoint import save_glm

    text = load_corpus(max_chars=50_000)
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = GLMModel(GLMConfig(vocab_size=tok.vocab_size, n_layers=2, hidden=64, heads=4,
                               max_len=128)).eval()
    prompts = [text[i: i + 24 + (i % 17)] for i in range(0, 40_000, 797)]
    want = {p: generate(model, tok, p, max_new_tokens=args.tokens) for p in prompts}
    tmp = Path(tempfile.mkdtemp(prefix="openautoglm-bench-"))
    save_glm(tmp / "models" / "glm.safetensors", model, tok)
    load_before = os.getloadavg()[0]
    proc, url = start_service(tmp / "registry.sqlite", tmp / "models")
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            for name, batching in POLICIES.items():
                c.put(f"/v2/repository/models/glm/versions/{name}",
                      json={"source": "checkpoint:glm.safetensors", "max_new_tokens": args.tokens,
                            "batching": {**batching, "max_queue": 4096}}).raise_for_status()
        results: dict[tuple[float, str], dict] = {}
        for load in args.loads:
            rng = np.random.default_rng(int(load))
            times = np.cumsum(rng.exponential(1 / load, int(load * args.duration * 2) + 16))
            schedule = times[times < args.duration]
            for name in POLICIES:
                r = asyncio.run(replay(url, name, schedule, prompts, want, args.tokens,
                                       args.concurrency))
                results[(load, name)] = r
                print(f"load {load:g} {name:9s} n {r['n']} lost {r['lost']} {r['why']} mismatched "
                      f"{r['mismatched']} p50 {r['p50']:8.1f} ms p99 {r['p99']:8.1f} ms "
                      f"{r['throughput']:6.1f} req/s", flush=True)
        overhead = plan_overhead(url, args.plan_tasks, args.plan_reps)
        print(overhead, flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    write_table(args, results, overhead, load_before, os.getloadavg()[0])


def write_table(args, results, overhead, load_before, load_after) -> None:
    total = sum(r["n"] for r in results.values())
    lines = [
        "# openautoglm serve under load: batching policies over HTTP, and /v1/plan overhead",
        "", "Regenerate: `" + " ".join([COMMAND, *sys.argv[1:]]) + "`", "",
        f"A real service process on 127.0.0.1; one GLM checkpoint (2 layers, hidden 64, random "
        f"weights) registered as three versions, one per batching policy (max_wait 10 ms; "
        f"adaptive: the default rate table capped at 16). Poisson arrivals for "
        f"{args.duration:g} s per load (the same for every policy), at most "
        f"{args.concurrency} requests in flight from one asyncio httpx client in another "
        f"process on the same cores; {args.tokens} greedy characters per request; latency from "
        f"the scheduled arrival to the answer. {total} requests in all; every answer checked "
        "against in-process generation.", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {load_before:.1f} before, {load_after:.1f} after): compare rows of one load.",
        "", "| offered load (req/s) | policy | requests | lost | mismatched | p50 (ms) | "
        "p99 (ms) | throughput (req/s) | p99 vs better fixed |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for load in args.loads:
        best = min(results[(load, "fixed-1")]["p99"], results[(load, "fixed-16")]["p99"])
        for name in POLICIES:
            r = results[(load, name)]
            lost = f"{r['lost']}" + (f" ({r['why']})" if r["why"] else "")
            lines.append(f"| {load:g} | {name} | {r['n']} | {lost} | {r['mismatched']} | "
                         f"{r['p50']:.1f} | {r['p99']:.1f} | {r['throughput']:.1f} | "
                         f"{r['p99'] / best:.2f}x |")
    o = overhead
    lines += ["", f"## /v1/plan: {o['tasks']} tasks, {o['edges']} edges, HEFT, 4 workers "
              f"(medians of {args.plan_reps}, alternating)", "",
              "| what | ms |", "|---|---:|",
              f"| POST /v1/plan round trip (JSON out and back, validation, plan) | {o['http']:.1f} |",
              f"| in-process: validate the same JSON, build the graph, HEFT, lower bound | "
              f"{o['local']:.1f} |",
              f"| of which HEFT alone | {o['schedule']:.1f} |",
              f"| server overhead (round trip - in-process) | {o['overhead']:.1f} |"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
