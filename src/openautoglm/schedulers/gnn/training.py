"""Train the scheduler GCN from nothing: search targets, imitation, policy-gradient fine-tuning.

::

    generated DAGs (families x CCR 0.1..10 x workers) [+ real traces, some families held out]
        |  the teacher search (schedulers.gnn.targets): the full candidate set + local
        |  search with the untrained control model; its winning plan gives the targets
        v
    per graph: realised order, co-location per edge, shares
        --ListMLE + cross-entropy + squared error (imitation)--> SchedulerGCN
        --REINFORCE on makespan (optional; Gaussian noise on the priorities)-->
    weights file (state_dict + feature names, loaded with weights_only=True)

The kept epoch is the one whose one-shot plans (``schedulers.gnn.decode.decode``: the
decoder the scheduler uses) have the least simulated makespan on every fifth graph.

The graphs and their targets (``FAMILIES``, ``holdout``, real traces with ``trace_dir`` and
``exclude_families``) come from ``schedulers.gnn.examples``.

Reproducible, precisely: training runs with one torch thread and
``torch.use_deterministic_algorithms(True)`` (both restored afterwards), iterates lists and
dicts only (no set order), and seeds torch and numpy from ``seed``; so the same arguments give
bit-identical weights on one machine with the same torch and numpy builds, also in a fresh
process (``tests/schedulers/gnn/test_decode.py`` checks two CLI runs in two processes). The
targets are float64 numpy and the deterministic simulator; across CPUs and library builds float
kernels may round differently, so weights from another machine are expected to be close, not
identical. The CLI is ``openautoglm train-scheduler`` (:func:`main`); the Python API is
:func:`train_scheduler`. Tests: ``tests/schedulers/gnn/test_gnn.py`` (a tiny training smoke run).
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openautoglm.core.costs import ranks
from openautoglm.schedulers.gnn.decode import EDGE_FEATURE_NAMES, decode, edge_features
from openautoglm.schedulers.gnn.examples import DEFAULT_HOLDOUT, FAMILIES, Example, make_examples
from openautoglm.schedulers.gnn.features import FEATURE_NAMES, graph_features
from openautoglm.schedulers.gnn.weights import save_model
from openautoglm.simulate.list_scheduler import list_schedule

if TYPE_CHECKING:
    import torch

    from openautoglm.schedulers.gnn.model import SchedulerGCN

__all__ = ["train_scheduler", "main"]

def _list_mle(score: torch.Tensor, target: np.ndarray, temperature: float) -> torch.Tensor:
    """Plackett-Luce negative log-likelihood of the target order (ListMLE), per task."""
    import torch

    order = torch.from_numpy(np.argsort(-target, kind="stable").copy())
    s = score[order] / temperature
    tail = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (tail - s).mean()


#: What one graph is to the model: x, edge_index, edge_weight, edge src, edge dst, edge features.
_Feats = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor",
               "torch.Tensor"]


def _features(examples: Sequence[Example]) -> list[_Feats]:
    import torch

    out = []
    for ex in examples:
        f = graph_features(ex.graph, ex.cluster)
        out.append((f.x, f.edge_index, f.edge_weight,
                    torch.from_numpy(np.array(ex.graph.edge_src, dtype=np.int64)),
                    torch.from_numpy(np.array(ex.graph.edge_dst, dtype=np.int64)),
                    torch.from_numpy(edge_features(ex.graph, ex.cluster, f.ranks))))
    return out


def _edge_loss(logits: torch.Tensor, ex: Example) -> torch.Tensor:
    """Cross-entropy of the co-location logits, each edge weighted by how much its data
    matters (0.1 + transfer time / lighter endpoint's cost, capped at 1.1)."""
    import torch

    r_comm = np.asarray(ex.graph.edge_size, dtype=np.float64) / ex.cluster.bandwidth
    w = np.asarray(ex.graph.exec_time(ex.cluster)).mean(axis=1)
    lighter = np.minimum(w[ex.graph.edge_src], w[ex.graph.edge_dst])
    weight = 0.1 + np.clip(np.nan_to_num(r_comm / np.maximum(lighter, 1e-12)), 0.0, 1.0)
    target = torch.from_numpy(np.asarray(ex.colocated, dtype=np.float32))
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, weight=torch.from_numpy(weight.astype(np.float32)))


def train_scheduler(
    seed: int = 0,
    graphs: int = 200,
    samples: int = 64,
    epochs: int = 12,
    pg_epochs: int = 0,
    pg_samples: int = 8,
    hidden: int = 32,
    lr: float = 3e-3,
    temperature: float = 0.02,
    share_weight: float = 10.0,
    multicore: float = 0.3,
    sizes: tuple[int, int] = (30, 150),
    holdout: Sequence[str] = DEFAULT_HOLDOUT,
    trace_dir: str | Path | None = None,
    exclude_families: Sequence[str] = (),
    out: str | Path | None = None,
    log: Callable[[str], None] | None = print,
    edge_weight: float = 1.0,
    cache_dir: str | Path | None = None,
) -> SchedulerGCN:
    """Train a :class:`~openautoglm.schedulers.gnn.model.SchedulerGCN` from a fresh initialisation.

    Args:
        seed: Seeds torch, the graphs and the searches.
        graphs: Number of generated training graphs.
        samples: Share vectors tried per graph on multi-core workers (share targets).
        epochs: Imitation epochs (ListMLE on the search winners).
        pg_epochs: Policy-gradient epochs on simulated makespan (0 to skip).
        pg_samples: Noisy priority vectors sampled per graph per policy-gradient step.
        hidden: Width of the GCN.
        lr: Adam learning rate.
        temperature: Score scale of the ListMLE loss (priorities live in about [0, 1]).
        edge_weight: Weight of the co-location loss (cross-entropy to the teacher's plan).
        cache_dir: Folder caching the teacher's targets between runs (``None``: none).
        share_weight: Weight of the share loss (mean squared error to the searched shares).
        multicore: Fraction of generated graphs on multi-core workers with parallel tasks.
        sizes: (min, max) tasks per generated graph.
        holdout: Generated families left out of training.
        trace_dir: Folder of real traces to add (``None``: generated graphs only).
        exclude_families: Trace families left out.
        out: Where to save the weights (``None``: do not save).
        log: Progress callback (``None``: silent).

    Returns:
        The trained model in eval mode.

    Raises:
        ValueError: On a non-positive ``graphs``, ``epochs`` < 0 or ``pg_epochs`` < 0.
    """
    import torch

    if graphs < 1 or epochs < 0 or pg_epochs < 0 or samples < 1:
        raise ValueError(f"need graphs >= 1, samples >= 1, epochs >= 0, pg_epochs >= 0; got "
                         f"graphs={graphs}, samples={samples}, epochs={epochs}, pg_epochs={pg_epochs}")
    say = log or (lambda _msg: None)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        model = _train(seed, graphs, samples, epochs, pg_epochs, pg_samples, hidden, lr,
                       temperature, share_weight, edge_weight, multicore, sizes, holdout,
                       trace_dir, exclude_families, cache_dir, say, log)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    if out is not None:
        save_model(model, out, {"seed": seed, "graphs": graphs, "samples": samples,
                                "epochs": epochs, "pg_epochs": pg_epochs, "hidden": hidden,
                                "holdout": ",".join(holdout),
                                "exclude_families": ",".join(exclude_families),
                                "traces": "" if trace_dir is None else Path(trace_dir).name,
                                "torch": str(torch.__version__), "numpy": str(np.__version__)})
        say(f"wrote {out}")
    return model


def _train(seed: int, graphs: int, samples: int, epochs: int, pg_epochs: int, pg_samples: int,
           hidden: int, lr: float, temperature: float, share_weight: float, edge_weight: float,
           multicore: float, sizes: tuple[int, int], holdout: Sequence[str],
           trace_dir: str | Path | None, exclude_families: Sequence[str],
           cache_dir: str | Path | None, say: Callable[[str], None],
           log: Callable[[str], None] | None) -> SchedulerGCN:
    """:func:`train_scheduler`'s body (one thread, deterministic algorithms)."""
    import torch

    from openautoglm.schedulers.gnn.model import SchedulerGCN

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    examples = make_examples(graphs, seed, sizes, holdout, samples, trace_dir, exclude_families,
                             multicore=multicore, log=log, cache_dir=cache_dir)
    gain = np.exp(np.mean([math.log(e.best / e.heft) for e in examples if e.heft > 0]))
    say(f"seed {seed}: {len(examples)} graphs, search/heft geomean {gain:.4f} "
        f"({time.perf_counter() - t0:.0f} s)")
    # Every fifth graph validates: of the epochs in the second half of imitation (and the
    # policy-gradient ones), the kept weights are those whose one-shot plans have the smallest
    # simulated makespan on it.
    val = [k for k in range(len(examples)) if k % 5 == 4] if len(examples) >= 5 else []
    train = [k for k in range(len(examples)) if k % 5 != 4 or len(examples) < 5]
    feats = _features(examples)
    model = SchedulerGCN(len(FEATURE_NAMES), hidden, base_feature=FEATURE_NAMES.index("rank_u"),
                         edge_channels=len(EDGE_FEATURE_NAMES))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed + 1)
    best_score, best_state = _validate(model, examples, feats, val), None
    say(f"  validation one-shot/heft before training: {best_score:.4f}")
    if epochs == 0:
        best_state = copy.deepcopy(model.state_dict())
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for k in rng.permutation(train).tolist():
            x, ei, ew, src, dst, ea = feats[k]
            h = model.embed(x, ei, ew)
            priority, share = model.heads(h, x)
            loss = _list_mle(priority, examples[k].target, temperature)
            if len(src) and examples[k].colocated is not None:
                loss = loss + edge_weight * _edge_loss(model.colocation(h, src, dst, ea),
                                                       examples[k])
            if examples[k].share is not None:
                target = torch.from_numpy(examples[k].share).float()
                loss = loss + share_weight * torch.mean((share - target) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        score = _validate(model, examples, feats, val)
        # Only the second half competes: earlier epochs have not fitted the shares yet.
        if epoch + 1 >= epochs // 2 and (score < best_score or best_state is None):
            best_score, best_state = score, copy.deepcopy(model.state_dict())
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            say(f"  imitation epoch {epoch + 1}/{epochs}: ListMLE {total / max(len(train), 1):.4f}, "
                f"validation one-shot/heft {score:.4f}")
    # A smaller step for the noisy policy gradient: at the imitation rate it drifts away.
    pg_opt = torch.optim.Adam(model.parameters(), lr=lr / 10)
    for epoch in range(pg_epochs):
        ratio = _policy_gradient_epoch(model, pg_opt, [examples[k] for k in train],
                                       [feats[k] for k in train], pg_samples, rng)
        score = _validate(model, examples, feats, val)
        if score < best_score or best_state is None:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
        say(f"  policy-gradient epoch {epoch + 1}/{pg_epochs}: sampled makespan/heft {ratio:.4f}, "
            f"validation {score:.4f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    say(f"  kept the weights with validation one-shot/heft {best_score:.4f}")
    model.eval()
    say(f"seed {seed}: trained in {time.perf_counter() - t0:.0f} s")
    return model


def _policy_gradient_epoch(model: SchedulerGCN, opt: torch.optim.Optimizer, examples: Sequence[Example],
                           feats: Sequence[_Feats],
                           n_samples: int, rng: np.random.Generator, sigma: float = 0.02) -> float:
    """REINFORCE with Gaussian priority noise; reward = -makespan / HEFT's, baseline = mean."""
    import torch

    model.train()
    ratios = []
    for k in rng.permutation(len(examples)).tolist():
        ex = examples[k]
        x, ei, ew = feats[k][:3]
        mu, _share = model(x, ei, ew)
        noise = torch.from_numpy(rng.standard_normal((n_samples, len(mu))).astype(np.float32)) * sigma
        prios = (mu.detach()[None, :] + noise).double().numpy()
        shares = _share.detach().double().numpy() if ex.share is not None else None
        r = np.array([list_schedule(ex.graph, ex.cluster, p, shares=shares).makespan
                      for p in prios]) / ex.heft
        ratios.extend(r.tolist())
        adv = torch.from_numpy(-(r - r.mean()) / (r.std() + 1e-9)).float()
        # d/dmu log N(p; mu, sigma) = (p - mu) / sigma^2: push mu towards the better samples.
        logp = -((mu[None, :] - (mu.detach()[None, :] + noise)) ** 2).sum(dim=1) / (2 * sigma**2)
        loss = -(adv * logp).mean() / len(mu)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(np.exp(np.mean(np.log(ratios))))


def _validate(model: SchedulerGCN, examples: Sequence[Example],
              feats: Sequence[_Feats], val: Sequence[int]) -> float:
    """Geometric mean of the one-shot plan's makespan / HEFT's over the validation graphs
    (the decoder the scheduler uses: free placement and the edge head's clusters)."""
    import torch

    if not val:
        return 1.0
    model.eval()
    logs = []
    with torch.no_grad():
        for k in val:
            x, ei, ew, src, dst, ea = feats[k]
            h = model.embed(x, ei, ew)
            priority, share = model.heads(h, x)
            ex = examples[k]
            prob = (torch.sigmoid(model.colocation(h, src, dst, ea)).double().numpy()
                    if len(src) else None)
            m = decode(ex.graph, ex.cluster, ranks(ex.graph, ex.cluster), priority.double().numpy(),
                       share.double().numpy(), prob).result.makespan
            logs.append(math.log(m / ex.heft) if ex.heft > 0 else 0.0)
    model.train()
    return float(math.exp(np.mean(logs)))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="openautoglm train-scheduler",
        description="Train the GNN scheduler from nothing (search targets, imitation, policy gradient).")
    ap.add_argument("--out", default="gnn.pt", help="weights file to write (default: gnn.pt)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--graphs", type=int, default=200, help="generated training graphs")
    ap.add_argument("--samples", type=int, default=64, help="rankings per graph in the target search")
    ap.add_argument("--epochs", type=int, default=12, help="imitation epochs")
    ap.add_argument("--pg-epochs", type=int, default=0, help="policy-gradient epochs (0 to skip)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--min-tasks", type=int, default=30)
    ap.add_argument("--max-tasks", type=int, default=150)
    ap.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT),
                    help=f"generated families kept out, comma-separated, from {','.join(FAMILIES)}")
    ap.add_argument("--traces", default=None, help="folder of <family>/*.json traces to train on too")
    ap.add_argument("--exclude-family", action="append", default=[],
                    help="trace family kept out of training (repeatable)")
    ap.add_argument("--cache", default=None,
                    help="folder caching the teacher's targets between runs (default: none)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``openautoglm train-scheduler``: train and write a weights file.

    Args:
        argv: Arguments without the program name (``None``: ``sys.argv[1:]``).

    Returns:
        The exit status (0).
    """
    import torch

    args = _parser().parse_args(argv)
    if args.min_tasks < 2 or args.max_tasks < args.min_tasks:
        _parser().error(f"need 2 <= --min-tasks <= --max-tasks, got {args.min_tasks}, {args.max_tasks}")
    holdout = tuple(h for h in args.holdout.split(",") if h)
    train_scheduler(seed=args.seed, graphs=args.graphs, samples=args.samples, epochs=args.epochs,
                    pg_epochs=args.pg_epochs, hidden=args.hidden,
                    sizes=(args.min_tasks, args.max_tasks), holdout=holdout,
                    trace_dir=args.traces, exclude_families=args.exclude_family, out=args.out,
                    cache_dir=args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
