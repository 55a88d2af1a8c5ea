"""Text metrics: corpus BLEU (sacrebleu) and ROUGE-1/2/L (rouge-score) over sets of references.

Glossary:
    hypotheses: the texts a model produced, one per example.
    references: for each hypothesis, one reference text or a list of them. Hypothesis ``i`` is
        scored against ``references[i]``; examples may have different numbers of references.

BLEU is sacrebleu's corpus BLEU (0-100) with its default 13a tokenisation, computed over all
hypotheses at once. ROUGE is rouge-score's F-measure (0-1), taking for each hypothesis the best
reference (``score_multi``) and averaging over hypotheses. Both are usable as plain functions
and, through :func:`evaluation_task`, as a pipeline :class:`~openautoglm.pipeline.Task`.

Tests: tests/auto/test_evaluate.py checks both libraries' own published examples.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["bleu", "rouge", "score"]

#: Metric names accepted everywhere, mapped to their canonical spelling.
METRIC_ALIASES: dict[str, str] = {
    "bleu": "bleu",
    "rouge1": "rouge1",
    "rouge-1": "rouge1",
    "rouge2": "rouge2",
    "rouge-2": "rouge2",
    "rougel": "rougeL",
    "rouge-l": "rougeL",
}
_ROUGE = ("rouge1", "rouge2", "rougeL")


def canonical_metric(name: str) -> str:
    """Return the canonical name of a metric (``"rouge-l"`` -> ``"rougeL"``).

    Args:
        name: a metric name, any case, with or without a dash.

    Raises:
        ValueError: unknown metric; the message lists the allowed names.

    >>> canonical_metric("ROUGE-L")
    'rougeL'
    """
    key = str(name).strip().lower()
    if key not in METRIC_ALIASES:
        allowed = ", ".join(sorted({"bleu", "rouge-1", "rouge-2", "rouge-l"}))
        raise ValueError(f"unknown metric {name!r}; use one of: {allowed}")
    return METRIC_ALIASES[key]


def _normalise(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    if isinstance(hypotheses, str):
        raise TypeError("hypotheses must be a list of strings, not one string: wrap it as [text]")
    hyps = list(hypotheses)
    if isinstance(references, str):
        raise TypeError("references must be a list (one entry per hypothesis), not one string")
    refs: list[list[str]] = []
    for i, r in enumerate(references):
        one = [r] if isinstance(r, str) else list(r)
        if not one or not all(isinstance(x, str) for x in one):
            raise TypeError(
                f"references[{i}] must be a string or a non-empty list of strings, got {r!r}"
            )
        refs.append(one)
    if not hyps:
        raise ValueError("no hypotheses to score: pass at least one")
    if len(refs) != len(hyps):
        raise ValueError(
            f"got {len(hyps)} hypotheses but {len(refs)} reference entries: "
            "give one reference (or a list of references) per hypothesis"
        )
    for i, h in enumerate(hyps):
        if not isinstance(h, str):
            raise TypeError(f"hypotheses[{i}] must be a string, got {type(h).__name__}")
    return hyps, refs


def bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu, 0-100) of ``hypotheses`` against their references.

    Args:
        hypotheses: one text per example.
        references: per example, one reference or a list of references.

    Returns:
        The corpus BLEU score.

    >>> round(bleu(["the cat sat on the mat"], [["the cat sat on the mat", "a cat sat"]]), 2)
    100.0
    """
    from sacrebleu.metrics import BLEU

    hyps, refs = _normalise(hypotheses, references)
    width = max(len(r) for r in refs)
    # sacrebleu wants reference *streams*; None pads examples with fewer references.
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(width)]
    return float(BLEU().corpus_score(hyps, streams).score)


def rouge(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    types: Sequence[str] = _ROUGE,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """Mean ROUGE F-measures (rouge-score, 0-1), best reference per hypothesis.

    Args:
        hypotheses: one text per example.
        references: per example, one reference or a list of references.
        types: which of ``rouge1``, ``rouge2``, ``rougeL`` to compute.
        use_stemmer: Porter stemming, as in rouge-score's own example.

    Returns:
        ``{type: mean F-measure}``.

    >>> rouge(["the cat sat"], ["the cat sat"], types=["rouge-l"])
    {'rougeL': 1.0}
    """
    from rouge_score import rouge_scorer

    hyps, refs = _normalise(hypotheses, references)
    kinds = [canonical_metric(t) for t in types]
    if "bleu" in kinds:
        raise ValueError("rouge() computes ROUGE only; call bleu() for BLEU")
    scorer = rouge_scorer.RougeScorer(kinds, use_stemmer=use_stemmer)
    totals = dict.fromkeys(kinds, 0.0)
    for h, r in zip(hyps, refs):
        # rouge-score's argument order is (targets, prediction).
        scores = scorer.score_multi(r, h)
        for k in kinds:
            totals[k] += scores[k].fmeasure
    return {k: totals[k] / len(hyps) for k in kinds}


def score(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    metrics: Sequence[str] = ("bleu", "rouge1", "rouge2", "rougeL"),
) -> dict[str, float]:
    """Several metrics at once, keyed by canonical name.

    Args:
        hypotheses: one text per example.
        references: per example, one reference or a list of references.
        metrics: any of ``bleu``, ``rouge-1``, ``rouge-2``, ``rouge-l``.

    Returns:
        ``{metric: value}`` (BLEU on 0-100, ROUGE on 0-1), keyed by each metric as you named
        it: ``metrics=["rouge-l"]`` gives ``"rouge-l"``, ``metrics=["rougeL"]`` gives ``"rougeL"``.

    >>> sorted(score(["a b c"], ["a b c"], metrics=["bleu", "rouge-1"]).items())
    [('bleu', 0.0), ('rouge-1', 1.0)]
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    kinds = {m: canonical_metric(m) for m in metrics}
    values: dict[str, float] = {}
    if "bleu" in kinds.values():
        values["bleu"] = bleu(hypotheses, references)
    wanted = list(dict.fromkeys(k for k in kinds.values() if k != "bleu"))
    if wanted:
        values.update(rouge(hypotheses, references, types=wanted))
    return {name: values[kind] for name, kind in kinds.items()}


def evaluation_task(
    name: str = "evaluate",
    hypotheses_key: str = "hypotheses",
    references_key: str = "references",
    output_key: str = "scores",
    metrics: Sequence[str] = ("bleu", "rouge1", "rouge2", "rougeL"),
    cost: float = 0.01,
) -> Any:
    """A pipeline :class:`~openautoglm.pipeline.Task` that scores hypotheses against references.

    The task reads ``hypotheses_key`` and ``references_key`` from the pipeline's data and writes
    the dict of :func:`score` to ``output_key``.

    Args:
        name: the task's name.
        hypotheses_key: input key holding the list of hypotheses.
        references_key: input key holding the references (one entry per hypothesis).
        output_key: key the scores are written to.
        metrics: metric names (checked now, not when the pipeline runs).
        cost: cost hint in seconds.

    Returns:
        A ``Task``.
    """
    from openautoglm.pipeline import Task

    kinds = tuple(canonical_metric(m) for m in metrics)

    def _evaluate(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> dict[str, float]:
        return score(hyps, refs, metrics=kinds)

    return Task(
        name=name,
        func=_evaluate,
        input_keys=[hypotheses_key, references_key],
        output_key=output_key,
        cost=cost,
    )
