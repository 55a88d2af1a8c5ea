"""Train the scheduler GCN from nothing: search targets, imitation, policy-gradient fine-tuning.

::

    generated DAGs (families x CCR 0.1..10 x workers) [+ real traces, some families held out]
        |  perturbed_heft_search: best of `samples` rankings under the one list scheduler
        v
    target priority per graph --ListMLE (imitation)--> SchedulerGCN --REINFORCE on makespan-->
        |                                                              (Gaussian noise on the
        v                                                               priorities, per-graph
    weights file (state_dict + feature names, loaded with weights_only=True)   mean baseline)

Graph families (``FAMILIES``) are DAGGEN knob settings; ``holdout`` keeps some out of training
so the benchmark can report on unseen shapes. Real traces (``trace_dir``) join training
only when asked, and ``exclude_families`` keeps a trace family out (leave-one-family-out).

Everything is seeded: the same arguments give the same weights (on one machine and torch
build). The CLI is ``openautoglm train-scheduler`` (:func:`main`); the Python API is
:func:`train_scheduler`. Tests: ``tests/schedulers/gnn/test_gnn.py`` (a tiny training smoke run).
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import ranks
from openautoglm.core.loaders import load_wfcommons, random_dag
from openautoglm.schedulers.gnn.features import FEATURE_NAMES, graph_features
from openautoglm.schedulers.gnn.weights import save_model
from openautoglm.schedulers.heft_search import perturbed_heft_search
from openautoglm.simulate.list_scheduler import list_schedule

if TYPE_CHECKING:
    import torch

    from openautoglm.core.graph import TaskGraph
    from openautoglm.schedulers.gnn.model import SchedulerGCN

__all__ = ["train_scheduler", "main", "FAMILIES", "Example", "make_examples"]

#: DAGGEN knobs of each generated graph family.
FAMILIES: dict[str, dict[str, float]] = {
    "layered": {"fat": 0.5, "density": 0.5, "regularity": 0.5, "jump": 1},
    "narrow": {"fat": 0.3, "density": 0.3, "regularity": 0.8, "jump": 1},
    "wide": {"fat": 0.8, "density": 0.3, "regularity": 0.5, "jump": 1},
    "dense": {"fat": 0.5, "density": 0.9, "regularity": 0.2, "jump": 1},
    "jumpy": {"fat": 0.5, "density": 0.5, "regularity": 0.5, "jump": 3},
}
#: Families kept out of training by default (reported separately by the benchmark).
DEFAULT_HOLDOUT: tuple[str, ...] = ("jumpy",)
CCRS: tuple[float, ...] = (0.1, 1.0, 10.0)
WORKERS: tuple[int, ...] = (2, 4, 8, 16)


class Example(NamedTuple):
    """One training graph with its search target.

    Attributes:
        graph: The task graph.
        cluster: The cluster it is planned on.
        target: Best priority found by the search (indexed like ``graph.tasks``).
        share: Best shares found by the search, or ``None`` on one-core workers (no choice).
        heft: HEFT's makespan (the reward scale).
        best: The search's makespan.
        source: Family name (``"layered"``, ..., or ``"trace:<family>"``).
    """

    graph: TaskGraph
    cluster: Cluster
    target: np.ndarray
    share: np.ndarray | None
    heft: float
    best: float
    source: str


def _clusters(rng: np.random.Generator) -> Cluster:
    w = int(rng.choice(WORKERS))
    if rng.random() < 0.5:
        return Cluster.homogeneous(w)
    return Cluster(speeds=rng.choice([1.0, 2.0, 4.0], size=w).tolist())


def make_examples(
    n_graphs: int,
    seed: int = 0,
    sizes: tuple[int, int] = (30, 150),
    holdout: Sequence[str] = DEFAULT_HOLDOUT,
    samples: int = 64,
    trace_dir: str | Path | None = None,
    exclude_families: Sequence[str] = (),
    max_trace_tasks: int = 400,
    multicore: float = 0.3,
    log: Callable[[str], None] | None = None,
) -> list[Example]:
    """Generate training graphs and their search targets.

    Args:
        n_graphs: Number of generated graphs.
        seed: Seed of everything drawn here.
        sizes: (min, max) number of tasks of a generated graph.
        holdout: Generated families left out.
        samples: Rankings tried by the target search per graph.
        trace_dir: Folder of WfFormat traces (``<family>/*.json``) to add, or ``None``.
        exclude_families: Trace families left out (e.g. the one a benchmark tests on).
        max_trace_tasks: Traces larger than this are skipped (search cost).
        multicore: Fraction of generated graphs given parallel fractions and multi-core
            workers (where the share head has something to learn).
        log: Progress callback.

    Returns:
        The examples, generated graphs first.

    Raises:
        ValueError: If every family is held out, or ``trace_dir`` is not a folder.
    """
    unknown = set(holdout) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown holdout families {sorted(unknown)}; choose from {sorted(FAMILIES)}")
    families = [f for f in FAMILIES if f not in set(holdout)]
    if not families:
        raise ValueError(f"every family is held out ({list(holdout)}); keep at least one of {list(FAMILIES)}")
    rng = np.random.default_rng(seed)
    pairs: list[tuple[TaskGraph, Cluster, str]] = []
    for _ in range(n_graphs):
        fam = families[int(rng.integers(len(families)))]
        knobs = FAMILIES[fam]
        n = int(rng.integers(sizes[0], sizes[1] + 1))
        ccr = float(10 ** rng.uniform(-1, 1)) if rng.random() < 0.4 else float(rng.choice(CCRS))
        g = random_dag(n, fat=knobs["fat"], density=knobs["density"], regularity=knobs["regularity"],
                       jump=int(knobs["jump"]), ccr=ccr, seed=int(rng.integers(2**31)))
        cl = _clusters(rng)
        if rng.random() < multicore:
            G = g.nx.copy()
            for key, p in zip(g.tasks, rng.beta(0.7, 0.7, size=len(g)).tolist()):
                G.nodes[key]["parallel"] = p
            g = g.from_networkx(G)
            cl = Cluster(speeds=cl.speeds, bandwidth=cl.bandwidth,
                         cores=int(rng.choice([2, 4, 8])))
        pairs.append((g, cl, fam))
    if trace_dir is not None:
        root = Path(trace_dir)
        if not root.is_dir():
            raise ValueError(f"trace_dir {root} is not a folder of <family>/*.json WfFormat traces")
        for fam_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if fam_dir.name in set(exclude_families):
                continue
            for path in sorted(fam_dir.glob("*.json")):
                g = load_wfcommons(path)
                if len(g) > max_trace_tasks or len(g.edge_src) == 0:
                    continue
                for ccr in (1.0, 10.0):
                    pairs.append((g.with_ccr(ccr), Cluster.homogeneous(4), f"trace:{fam_dir.name}"))
    out = []
    t0 = time.perf_counter()
    for k, (g, c, src) in enumerate(pairs):
        out.append(_search(g, c, samples, int(rng.integers(2**31)), src))
        if log and (k + 1) % 50 == 0:
            log(f"  targets {k + 1}/{len(pairs)} ({time.perf_counter() - t0:.0f} s)")
    return out


def _search(g: TaskGraph, c: Cluster, samples: int, seed: int, source: str) -> Example:
    """Search targets: perturbed HEFT rankings; on multi-core workers also random shares."""
    if int(c.cores.max()) <= 1:
        res = perturbed_heft_search(g, c, samples=samples, seed=seed)
        return Example(g, c, res.priority, None, float(res.makespans[0]),
                       float(res.schedule.makespan), source)
    rng = np.random.default_rng(seed)
    base = ranks(g, c).rank_u
    one_core = np.full(len(g), 0.05)
    heft = list_schedule(g, c, base, shares=one_core).makespan
    best = (heft, base, one_core)
    for k in range(1, samples):
        prio = base if k < samples // 2 else base * np.exp(0.3 * rng.standard_normal(len(g)))
        if k == 1:
            share = np.ones(len(g))
        elif rng.random() < 0.5:  # structured: more cores for more parallel tasks
            share = np.clip(g.parallel ** rng.uniform(0.3, 3.0) * rng.uniform(0.3, 1.5), 0.05, 1.0)
        else:
            share = rng.uniform(0.05, 1.0, size=len(g))
        m = list_schedule(g, c, prio, shares=share).makespan
        if m < best[0]:
            best = (m, prio, share)
    return Example(g, c, best[1], best[2], float(heft), float(best[0]), source)


def _list_mle(score: torch.Tensor, target: np.ndarray, temperature: float) -> torch.Tensor:
    """Plackett-Luce negative log-likelihood of the target order (ListMLE), per task."""
    import torch

    order = torch.from_numpy(np.argsort(-target, kind="stable").copy())
    s = score[order] / temperature
    tail = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (tail - s).mean()


def _features(examples: Sequence[Example]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    out = []
    for ex in examples:
        f = graph_features(ex.graph, ex.cluster)
        out.append((f.x, f.edge_index, f.edge_weight))
    return out


def train_scheduler(
    seed: int = 0,
    graphs: int = 200,
    samples: int = 64,
    epochs: int = 30,
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
) -> SchedulerGCN:
    """Train a :class:`~openautoglm.schedulers.gnn.model.SchedulerGCN` from a fresh initialisation.

    Args:
        seed: Seeds torch, the graphs and the searches.
        graphs: Number of generated training graphs.
        samples: Rankings tried per graph by the target search.
        epochs: Imitation epochs (ListMLE on the search winners).
        pg_epochs: Policy-gradient epochs on simulated makespan (0 to skip).
        pg_samples: Noisy priority vectors sampled per graph per policy-gradient step.
        hidden: Width of the GCN.
        lr: Adam learning rate.
        temperature: Score scale of the ListMLE loss (priorities live in about [0, 1]).
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

    from openautoglm.schedulers.gnn.model import SchedulerGCN

    if graphs < 1 or epochs < 0 or pg_epochs < 0 or samples < 1:
        raise ValueError(f"need graphs >= 1, samples >= 1, epochs >= 0, pg_epochs >= 0; got "
                         f"graphs={graphs}, samples={samples}, epochs={epochs}, pg_epochs={pg_epochs}")
    say = log or (lambda _msg: None)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    examples = make_examples(graphs, seed, sizes, holdout, samples, trace_dir, exclude_families,
                             multicore=multicore, log=log)
    gain = np.exp(np.mean([math.log(e.best / e.heft) for e in examples if e.heft > 0]))
    say(f"seed {seed}: {len(examples)} graphs, search/heft geomean {gain:.4f} "
        f"({time.perf_counter() - t0:.0f} s)")
    # Every fifth graph validates: of the epochs in the second half of imitation (and the
    # policy-gradient ones), the kept weights are those whose one-shot plans have the smallest
    # simulated makespan on it.
    val = [k for k in range(len(examples)) if k % 5 == 4] if len(examples) >= 5 else []
    train = [k for k in range(len(examples)) if k not in set(val)]
    feats = _features(examples)
    model = SchedulerGCN(len(FEATURE_NAMES), hidden, base_feature=FEATURE_NAMES.index("rank_u"))
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
            x, ei, ew = feats[k]
            priority, share = model(x, ei, ew)
            loss = _list_mle(priority, examples[k].target, temperature)
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
    if out is not None:
        save_model(model, out, {"seed": seed, "graphs": graphs, "samples": samples,
                                "epochs": epochs, "pg_epochs": pg_epochs,
                                "holdout": ",".join(holdout),
                                "exclude_families": ",".join(exclude_families)})
        say(f"wrote {out}")
    return model


def _policy_gradient_epoch(model: SchedulerGCN, opt: torch.optim.Optimizer, examples: Sequence[Example],
                           feats: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                           n_samples: int, rng: np.random.Generator, sigma: float = 0.02) -> float:
    """REINFORCE with Gaussian priority noise; reward = -makespan / HEFT's, baseline = mean."""
    import torch

    model.train()
    ratios = []
    for k in rng.permutation(len(examples)).tolist():
        ex = examples[k]
        x, ei, ew = feats[k]
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
              feats: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], val: Sequence[int]) -> float:
    """Geometric mean of the one-shot plan's makespan / HEFT's over the validation graphs."""
    import torch

    if not val:
        return 1.0
    model.eval()
    logs = []
    with torch.no_grad():
        for k in val:
            x, ei, ew = feats[k]
            priority, share = model(x, ei, ew)
            ex = examples[k]
            m = list_schedule(ex.graph, ex.cluster, priority.double().numpy(),
                              shares=share.double().numpy()).makespan
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
    ap.add_argument("--epochs", type=int, default=30, help="imitation epochs")
    ap.add_argument("--pg-epochs", type=int, default=0, help="policy-gradient epochs (0 to skip)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--min-tasks", type=int, default=30)
    ap.add_argument("--max-tasks", type=int, default=150)
    ap.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT),
                    help=f"generated families kept out, comma-separated, from {','.join(FAMILIES)}")
    ap.add_argument("--traces", default=None, help="folder of <family>/*.json traces to train on too")
    ap.add_argument("--exclude-family", action="append", default=[],
                    help="trace family kept out of training (repeatable)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
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
    torch.set_num_threads(max(1, args.threads))
    holdout = tuple(h for h in args.holdout.split(",") if h)
    train_scheduler(seed=args.seed, graphs=args.graphs, samples=args.samples, epochs=args.epochs,
                    pg_epochs=args.pg_epochs, hidden=args.hidden,
                    sizes=(args.min_tasks, args.max_tasks), holdout=holdout,
                    trace_dir=args.traces, exclude_families=args.exclude_family, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
