"""Data-parallel GLM training as a gang task: 2 ranks (gloo DDP) vs 1 process, on Dask.

One embedded Engine with 2 worker processes of 1 thread each. Per GLM size, in one run,
alternating: the same ``glm.train`` call (same seed, same global batch) as a plain task on one
worker, and as a ``Task(gang=2)`` whose ranks run ``train(..., world_size=2)`` on both workers.
Reported: medians of the whole ``engine.run`` (wall, with the gang's rendezvous) and of the
training loop alone (``history[-1]["elapsed"]``), their ratios (2 ranks / 1 process: below 1
is a speed-up), and the largest loss difference between the two curves.

Regenerate the table:

    PYTHONPATH=src nice .venv/bin/python benchmarks/ddp_train.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from _header import header

from openautoglm.engine import Engine
from openautoglm.glm import load_corpus, train
from openautoglm.pipeline import Pipeline, Task

OUT = Path(__file__).resolve().parent / "results" / "ddp_train.md"
SIZES = {
    "tiny (1 layer, hidden 32, batch 8 x 32)": (
        {"n_layers": 1, "hidden": 32, "heads": 2, "max_len": 32},
        {"steps": 50, "batch_size": 8, "seq_len": 32, "eval_every": 50}),
    "small (2 layers, hidden 128, batch 32 x 64)": (
        {"n_layers": 2, "hidden": 128, "heads": 4, "max_len": 64},
        {"steps": 50, "batch_size": 32, "seq_len": 64, "eval_every": 50}),
}


def one_process(text: str, config: dict, args: dict) -> list[dict]:
    return train(config, text, **args)[2]


def two_ranks(text: str, config: dict, args: dict, *, gang) -> list[dict]:
    return train(config, text, world_size=gang.world_size, **args)[2]


def measure(engine: Engine, text: str, config: dict, args: dict, repeats: int) -> dict:
    single = Pipeline("ddp-1", [Task("train", func=one_process, input_keys=["text", "c", "a"],
                                     output_key="h")])
    gang = Pipeline("ddp-2", [Task("train", func=two_ranks, input_keys=["text", "c", "a"],
                                   output_key="h", gang=2)])
    rows: dict[str, list] = {"wall1": [], "wall2": [], "loop1": [], "loop2": [], "diff": []}
    for _ in range(repeats):
        out = {}
        for label, p in (("1", single), ("2", gang)):
            t = time.perf_counter()
            out[label] = engine.run(p, inputs={"text": text, "c": config, "a": args})["h"]
            rows[f"wall{label}"].append(time.perf_counter() - t)
            rows[f"loop{label}"].append(out[label][-1]["elapsed"])
        rows["diff"].append(max(max(abs(a["train_loss"] - b["train_loss"]),
                                    abs(a["val_loss"] - b["val_loss"]))
                                for a, b in zip(out["1"], out["2"])))
    return {k: (max(v) if k == "diff" else statistics.median(v)) for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    load_before = os.getloadavg()[0]
    text = load_corpus(max_chars=40_000)
    results = {}
    with Engine(n_workers=2, threads_per_worker=1, processes=True, dashboard=False,
                progress=False) as engine:
        for name, (config, args) in SIZES.items():
            results[name] = measure(engine, text, config, args, opts.repeats)
            print(name, results[name], flush=True)
    lines = header("DDP GLM training: a 2-rank gang vs 1 process (Dask worker processes)",
                   load_before=load_before)
    lines += [f"50 steps, same seed and global batch; medians of {opts.repeats} alternating "
              "runs; 2 Dask worker processes of 1 thread, gloo on 127.0.0.1. Ratio = 2 ranks "
              "/ 1 process (below 1: faster). On a shared 2-core machine the numbers are noisy.",
              "",
              "| GLM | 1 process run (s) | 2-rank gang run (s) | run ratio "
              "| 1 process loop (s) | 2-rank loop (s) | loop ratio | max loss diff |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['wall1']:.2f} | {r['wall2']:.2f} | "
                     f"{r['wall2'] / r['wall1']:.2f} | {r['loop1']:.2f} | {r['loop2']:.2f} | "
                     f"{r['loop2'] / r['loop1']:.2f} | {r['diff']:.1e} |")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
