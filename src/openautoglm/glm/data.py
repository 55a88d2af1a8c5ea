"""Corpus, span sampling, and GLM's blank-infilling inputs (Du et al., ACL 2022, Figure 2).

Cast of characters:

- ``x``: a window of token ids, ``x[0..n)``.
- span: a half-open range ``(start, end)`` of ``x`` that is blanked out. Span lengths are drawn
  from Poisson(``poisson_lambda``) until ``mask_ratio`` of the tokens are covered.
- Part A: ``x`` with each span replaced by a single ``[MASK]``; it attends bidirectionally.
- Part B: the spans in a random order, each as ``[sop] + span`` (inputs) and ``span + [eop]``
  (targets). A Part B token attends all of Part A and the Part B tokens up to itself (causal).
  The loss is taken on Part B only.
- ``sep``: the length of Part A. Query ``i`` may attend key ``j`` iff ``j < sep or j <= i``.
- 2D positions: the first row is the position in Part A (for a span token: the index of its
  ``[MASK]``); the second row is the block position (0 in Part A, 1..len+1 inside a span).

The paper's example, 0-indexed here (x1..x6, spans {x3} and {x5, x6}, Part B order [x5, x6]
then [x3])::

    input    x1 x2 [M] x4 [M] | [S] x5 x6 | [S] x3
    target    -  -  -   -  -  |  x5 x6 [E]|  x3 [E]
    position  0  1  2   3  4  |  4  4  4  |  2  2
    block     0  0  0   0  0  |  1  2  3  |  1  2

Tests: ``tests/glm/test_glm.py::test_figure2_*``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .tokenizer import CharTokenizer

CORPORA = ("pydoc",)


def load_corpus(name: str = "pydoc", max_chars: int | None = None) -> str:
    """Returns a text corpus that ships with Python (no download).

    ``"pydoc"`` is CPython's ``pydoc_data.topics``: 79 help topics, about 465k characters of
    English prose and code, concatenated in sorted topic order.

    Args:
        name: the corpus; one of :data:`CORPORA`.
        max_chars: keep only the first ``max_chars`` characters (``None``: all).

    Raises:
        ValueError: for an unknown name or a non-positive ``max_chars``.

    Example:
        >>> text = load_corpus(max_chars=22)
        >>> text
        'The "assert" statement'
    """
    if name != "pydoc":
        raise ValueError(f"unknown corpus {name!r}; choose one of {CORPORA}")
    if max_chars is not None and max_chars <= 0:
        raise ValueError(f"max_chars must be positive or None, got {max_chars}")
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))
    return text if max_chars is None else text[:max_chars]


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Splits ``text`` into a training head and a validation tail.

    Raises:
        ValueError: if ``val_fraction`` is not in (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


def _as_rng(rng: np.random.Generator | torch.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(2**62, (1,), generator=rng)))
    if rng is not None and (isinstance(rng, bool) or not isinstance(rng, (int, np.integer))):
        raise TypeError(
            f"rng must be a numpy Generator, a torch Generator, an int seed or None, got {rng!r}"
        )
    return np.random.default_rng(rng)


def sample_spans(
    n: int,
    rng: np.random.Generator | torch.Generator | int | None = None,
    mask_ratio: float = 0.15,
    poisson_lambda: float = 3.0,
) -> list[tuple[int, int]]:
    """Samples non-overlapping, non-adjacent spans of ``range(n)`` as GLM does.

    Lengths are drawn from Poisson(``poisson_lambda``) (at least 1) until they cover
    ``round(mask_ratio * n)`` tokens (at least one); the spans are then placed uniformly at
    random, with at least one kept token between two spans.

    Args:
        n: the window length (at least 2).
        rng: a numpy Generator, a torch Generator or a seed.
        mask_ratio: the fraction of tokens to blank out, in (0, 1).
        poisson_lambda: the mean span length.

    Returns:
        Sorted ``(start, end)`` pairs.

    Example:
        >>> spans = sample_spans(100, rng=0)
        >>> sum(e - s for s, e in spans)
        15
    """
    if n < 2:
        raise ValueError(f"need a window of at least 2 tokens to blank out a span, got {n}")
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda must be positive, got {poisson_lambda}")
    rng = _as_rng(rng)
    budget = min(max(1, round(mask_ratio * n)), n - 1)
    lengths: list[int] = []
    while sum(lengths) < budget:
        length = max(1, int(rng.poisson(poisson_lambda)))
        lengths.append(min(length, budget - sum(lengths)))
    kept = n - budget
    # Each span goes into its own gap between kept tokens (kept + 1 gaps): spans never touch.
    while len(lengths) > kept + 1:
        lengths[-2] += lengths.pop()
    rng.shuffle(lengths)
    gaps = np.sort(rng.choice(kept + 1, size=len(lengths), replace=False))
    spans: list[tuple[int, int]] = []
    for k, (gap, length) in enumerate(zip(gaps.tolist(), lengths)):
        start = gap + sum(lengths[:k])
        spans.append((start, start + length))
    return spans


def blank_infilling(
    tokens: Sequence[int],
    spans: Sequence[tuple[int, int]],
    tokenizer: CharTokenizer,
    order: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Builds one GLM example (unpadded lists) from a window and its spans.

    Args:
        tokens: the window's token ids.
        spans: sorted, non-overlapping ``(start, end)`` ranges of ``tokens``.
        tokenizer: supplies the ``mask``, ``sop`` and ``eop`` ids.
        order: the Part B order as indices into ``spans`` (default: as given).

    Returns:
        ``input_ids``, ``position_ids`` (two lists), ``targets`` (``-100`` in Part A),
        ``loss_mask`` (1 on Part B) and ``sep`` (the length of Part A).

    Example (the paper's Figure 2, with ids 11..16 standing for x1..x6):
        >>> tok = CharTokenizer("abcdefghijklmnop")
        >>> ex = blank_infilling([11, 12, 13, 14, 15, 16], [(2, 3), (4, 6)], tok, order=[1, 0])
        >>> ex["position_ids"]
        [[0, 1, 2, 3, 4, 4, 4, 4, 2, 2], [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]]
        >>> ex["sep"]
        5
    """
    tokens = list(tokens)
    order = list(range(len(spans))) if order is None else list(order)
    if sorted(order) != list(range(len(spans))):
        raise ValueError(f"order {order} must be a permutation of range({len(spans)})")
    part_a: list[int] = []
    mask_index: list[int] = []
    prev = 0
    for start, end in spans:
        if not prev <= start < end <= len(tokens):
            raise ValueError(f"spans must be sorted, non-empty and inside the window: {spans}")
        part_a.extend(tokens[prev:start])
        mask_index.append(len(part_a))
        part_a.append(tokenizer.mask)
        prev = end
    part_a.extend(tokens[prev:])
    sep = len(part_a)
    input_ids = list(part_a)
    pos = list(range(sep))
    block = [0] * sep
    targets = [-100] * sep
    for k in order:
        start, end = spans[k]
        span = tokens[start:end]
        input_ids += [tokenizer.sop] + span
        targets += span + [tokenizer.eop]
        pos += [mask_index[k]] * (len(span) + 1)
        block += list(range(1, len(span) + 2))
    loss_mask = [0] * sep + [1] * (len(input_ids) - sep)
    return {
        "input_ids": input_ids,
        "position_ids": [pos, block],
        "targets": targets,
        "loss_mask": loss_mask,
        "sep": sep,
    }


def attention_mask_from_sep(sep: torch.Tensor, length: int) -> torch.Tensor:
    """GLM's self-attention mask: query ``i`` attends key ``j`` iff ``j < sep or j <= i``.

    Padding placed after Part B is never attended by a real token (it lies after it and after
    ``sep``), and every row attends at least itself, so no row is empty.

    Args:
        sep: (B,) lengths of Part A.
        length: the padded sequence length L.

    Returns:
        (B, L, L) bool, True where attention is allowed.

    Example:
        >>> attention_mask_from_sep(torch.tensor([2]), 4)[0].int().tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    """
    idx = torch.arange(length, device=sep.device)
    causal = idx[None, :] <= idx[:, None]  # (L, L): key j <= query i
    part_a = idx[None, None, :] < sep.view(-1, 1, 1)  # (B, 1, L)
    return causal[None] | part_a


def collate(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pads :func:`blank_infilling` examples on the right into a batch of tensors."""
    length = max(len(e["input_ids"]) for e in examples)
    b = len(examples)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((b, 2, length), dtype=torch.long)
    targets = torch.full((b, length), -100, dtype=torch.long)
    loss_mask = torch.zeros((b, length), dtype=torch.float32)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = torch.tensor(e["input_ids"])
        position_ids[i, :, :n] = torch.tensor(e["position_ids"])
        targets[i, :n] = torch.tensor(e["targets"])
        loss_mask[i, :n] = torch.tensor(e["loss_mask"], dtype=torch.float32)
    sep = torch.tensor([e["sep"] for e in examples], dtype=torch.long)
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": attention_mask_from_sep(sep, length),
        "targets": targets,
        "loss_mask": loss_mask,
        "sep": sep,
    }


def make_batch(
    token_lists: Sequence[Sequence[int]],
    tokenizer: CharTokenizer,
    rng: np.random.Generator | torch.Generator | int | None = None,
    mask_ratio: float = 0.15,
    poisson_lambda: float = 3.0,
    generation_ratio: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Turns windows of token ids into a padded GLM batch.

    Each window gets Poisson spans (:func:`sample_spans`) in a random Part B order; with
    probability ``generation_ratio`` it instead gets GLM's generation objective: one span
    covering a suffix of 50-100% of the window, so the model also learns to continue a prompt.

    Args:
        token_lists: B windows of token ids, each at least 2 long.
        tokenizer: supplies the special ids.
        rng: a numpy Generator, a torch Generator or a seed (same seed, same batch).
        mask_ratio: fraction of tokens blanked out per window.
        poisson_lambda: mean span length.
        generation_ratio: probability of the suffix (generation) objective per window.

    Returns:
        ``input_ids`` (B, L), ``position_ids`` (B, 2, L), ``attention_mask`` (B, L, L) bool,
        ``targets`` (B, L; ``-100`` where no loss), ``loss_mask`` (B, L) float, ``sep`` (B,).

    Example:
        >>> tok = CharTokenizer.from_text("abcdefgh")
        >>> batch = make_batch([tok.encode("abcdefgh")] * 3, tok, rng=0)
        >>> batch["input_ids"].shape[0], batch["position_ids"].shape[1]
        (3, 2)
    """
    if len(token_lists) == 0:
        raise ValueError("make_batch needs at least one window of token ids")
    if not 0.0 <= generation_ratio <= 1.0:
        raise ValueError(f"generation_ratio must be in [0, 1], got {generation_ratio}")
    rng = _as_rng(rng)
    examples = []
    for tokens in token_lists:
        n = len(tokens)
        if generation_ratio > 0 and rng.random() < generation_ratio and n >= 2:
            length = int(rng.integers((n + 1) // 2, n)) if n > 2 else 1
            spans = [(n - length, n)]
        else:
            spans = sample_spans(n, rng, mask_ratio, poisson_lambda)
        order = rng.permutation(len(spans)).tolist()
        examples.append(blank_infilling(tokens, spans, tokenizer, order))
    return collate(examples, tokenizer.pad)


def sample_windows(
    ids: Sequence[int] | np.ndarray, count: int, seq_len: int, rng: np.random.Generator
) -> list[list[int]]:
    """Draws ``count`` random windows of ``seq_len`` ids from ``ids``.

    Raises:
        ValueError: if ``ids`` is shorter than ``seq_len``.
    """
    ids = np.asarray(ids)
    if len(ids) < seq_len:
        raise ValueError(
            f"text of {len(ids)} tokens is shorter than seq_len={seq_len}: "
            "use more text or a smaller seq_len"
        )
    starts = rng.integers(0, len(ids) - seq_len + 1, size=count)
    return [ids[s : s + seq_len].tolist() for s in starts]
