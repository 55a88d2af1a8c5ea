"""Fused ops vs eager PyTorch, and one GLM training step with vs without the fusion pass.

Regenerate the table (about 3 minutes on 2 cores):

    nice python benchmarks/ops.py

Every comparison runs eager and fused alternately in one process (one thread), ``--reps``
times each, and reports medians and their ratio. Goals (issue 5): bias+GELU forward >= 1.5x,
LayerNorm+GELU forward >= 1.25x, forward+backward >= 1.2x, GLM step with fusion not slower.
On a CUDA device the same ops are timed on the GPU with achieved memory bandwidth (goal >= 2x).
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from _header import header

from openautoglm import ops
from openautoglm.ops import fusion

SHAPE = (64, 512, 768)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def side_by_side(fns: dict[str, Callable[[], object]], reps: int, device: str = "cpu") -> dict[str, list[float]]:
    """Run each function once to warm up, then ``reps`` rounds alternating between them."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _inputs(shape, device, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    n = shape[-1]
    x = torch.randn(*shape, generator=g).to(device)
    w = (1 + 0.1 * torch.randn(n, generator=g)).to(device)
    b = (0.1 * torch.randn(n, generator=g)).to(device)
    grad = torch.randn(*shape, generator=g).to(device)
    if requires_grad:
        x, w, b = (t.requires_grad_() for t in (x, w, b))
    return x, w, b, grad


def op_cases(shape, device):
    """(name, goal, eager fn, fused fn, bytes the fused op must move) per comparison."""
    x, w, b, grad = _inputs(shape, device)
    xg, wg, bg, _ = _inputs(shape, device, requires_grad=True)
    nbytes = x.numel() * x.element_size()

    def fwd_bwd(fn):
        def run():
            xg.grad = wg.grad = bg.grad = None
            fn().backward(grad)
        return run

    cases = []
    for approx in ("none", "tanh"):
        cases.append((
            f"bias+GELU forward ({approx})", 1.5,
            lambda a=approx: F.gelu(x + b, approximate=a),
            lambda a=approx: ops.fused_bias_gelu(x, b, a),
            2 * nbytes,
        ))
        cases.append((
            f"LayerNorm+GELU forward ({approx})", 1.25,
            lambda a=approx: F.gelu(F.layer_norm(x, (shape[-1],), w, b), approximate=a),
            lambda a=approx: ops.fused_layernorm_gelu(x, w, b, 1e-5, a),
            2 * nbytes,
        ))
    for approx in ("none", "tanh"):
        cases.append((
            f"bias+GELU forward+backward ({approx})", 1.2,
            fwd_bwd(lambda a=approx: F.gelu(xg + bg, approximate=a)),
            fwd_bwd(lambda a=approx: ops.fused_bias_gelu(xg, bg, a)),
            5 * nbytes,
        ))
        cases.append((
            f"LayerNorm+GELU forward+backward ({approx})", 1.2,
            fwd_bwd(lambda a=approx: F.gelu(F.layer_norm(xg, (shape[-1],), wg, bg), approximate=a)),
            fwd_bwd(lambda a=approx: ops.fused_layernorm_gelu(xg, wg, bg, 1e-5, a)),
            5 * nbytes,
        ))
    return cases


def glm_case(hidden, n_layers, heads, batch_size, seq_len, seed=0):
    """Eager and fused training-step closures over two copies of the same GLM."""
    from openautoglm.glm import CharTokenizer, GLMConfig, GLMModel, glm_loss, load_corpus, make_batch

    text = load_corpus(max_chars=50_000)
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    windows = [ids[i * seq_len : (i + 1) * seq_len] for i in range(batch_size)]
    batch = make_batch(windows, tok, rng=seed)
    torch.manual_seed(seed)
    config = GLMConfig(vocab_size=tok.vocab_size, n_layers=n_layers, hidden=hidden, heads=heads, max_len=seq_len + 8)
    eager = GLMModel(config)
    fused = fusion.fuse(copy.deepcopy(eager))
    assert fused.meta["fusion_counts"]["bias_gelu"] == n_layers

    def step_fn(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(batch["input_ids"], batch["position_ids"], batch["attention_mask"])
            glm_loss(logits, batch["targets"], batch["loss_mask"]).backward()
            opt.step()
        return step

    name = f"GLM training step (hidden {hidden}, {n_layers} layers, batch {batch_size}x{batch['input_ids'].shape[1]})"
    return name, step_fn(eager), step_fn(fused)


def _spread(ts: list[float]) -> str:
    """Median with the interquartile range, in ms: how noisy the shared machine was."""
    q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
    return f"{q[1] * 1e3:.1f} ({q[0] * 1e3:.1f}-{q[2] * 1e3:.1f})"


def _row(name, goal, t_eager, t_fused, extra=""):
    ratio = statistics.median(t_eager) / statistics.median(t_fused)
    verdict = "met" if ratio >= goal else "**missed**"
    return f"| {name} | {_spread(t_eager)} | {_spread(t_fused)} | {ratio:.2f}x | >= {goal:g}x: {verdict} |{extra}", ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=11, help="timed rounds per comparison (default 11)")
    parser.add_argument("--glm-reps", type=int, default=31, help="timed training steps per variant")
    parser.add_argument("--quick", action="store_true", help="small shapes, few reps: a smoke test")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "ops.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ops.load()
    shape = (4, 64, 768) if args.quick else SHAPE
    reps = 3 if args.quick else args.reps
    glm_reps = 3 if args.quick else args.glm_reps

    script_argv = [__file__, *(sys.argv[1:] if argv is None else argv)]
    lines = header("Fused ops vs eager (benchmarks/ops.py)", argv=script_argv)
    lines += [
        f"CPU: {platform.processor() or platform.machine()}, "
        f"eager ATen kernels {torch.backends.cpu.get_cpu_capability()}, fused kernels "
        f"{ops.kernel_capability()} (`openautoglm.ops.kernel_capability()`), 1 thread. The machine "
        "is shared by several engineers and noisy: eager and fused run alternately in one process "
        "and the ratio is of medians.",
        "",
        f"## CPU ops, shape {tuple(shape)} float32, median of {reps} rounds",
        "",
        "| case | eager ms, median (IQR) | fused ms, median (IQR) | speed-up | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for name, goal, eager, fused, _ in op_cases(shape, "cpu"):
        times = side_by_side({"eager": eager, "fused": fused}, reps)
        row, _ = _row(name, goal, times["eager"], times["fused"])
        lines.append(row)
        print(row, flush=True)

    lines += [
        "",
        f"## GLM training step (forward, loss, backward, AdamW), median of {glm_reps} steps",
        "",
        "`fusion.fuse(model)` replaces each block's `fc_1 -> GELU(tanh)` with `mm + fused_bias_gelu`. "
        "Goal: not slower (ratio >= 1.0 within noise). The matrix products dominate this step; the "
        "fused op saves one pass over the MLP activation in backward (the bias gradient is summed in "
        "the GELU backward kernel), a few percent of the step at most.",
        "",
        "| case | eager ms, median (IQR) | fused ms, median (IQR) | speed-up | goal |",
        "|---|---:|---:|---:|---|",
    ]
    glm_shapes = [(64, 2, 4, 16, 64)] if args.quick else [(64, 2, 4, 16, 64), (256, 4, 4, 16, 128)]
    for shape_args in glm_shapes:
        name, eager, fused = glm_case(*shape_args)
        times = side_by_side({"eager": eager, "fused": fused}, glm_reps)
        row, _ = _row(name, 1.0, times["eager"], times["fused"])
        lines.append(row)
        print(row, flush=True)

    lines += ["", "## CUDA", ""]
    if torch.cuda.is_available() and torch._C._dispatch_has_kernel_for_dispatch_key(
        "openautoglm::fused_bias_gelu", "CUDA"
    ):
        lines += [
            f"Device: {torch.cuda.get_device_name()}; shape {SHAPE} float32, median of {reps} rounds. "
            "Bandwidth = bytes the fused op must read and write / its median time.",
            "",
            "| case | eager ms, median (IQR) | fused ms, median (IQR) | speed-up | goal | fused GB/s |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for name, _, eager, fused, nbytes in op_cases(SHAPE, "cuda"):
            times = side_by_side({"eager": eager, "fused": fused}, reps, device="cuda")
            gbs = nbytes / statistics.median(times["fused"]) / 1e9
            row, _ = _row(name, 2.0, times["eager"], times["fused"], f" {gbs:.0f} |")
            lines.append(row)
            print(row, flush=True)
    else:
        why = "torch has no CUDA" if torch.version.cuda is None else "no CUDA device or no CUDA kernels built"
        lines.append(
            f"Not run here ({why}). On a machine with a CUDA torch and a GPU the same command times "
            "every case above on the GPU and reports achieved memory bandwidth (goal >= 2x eager). "
            "The CUDA kernels are only compile-checked here (tests/integration/test_cuda_compile.py)."
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
