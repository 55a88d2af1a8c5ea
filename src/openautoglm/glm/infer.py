"""Inference with a GLM: fill blanks and generate, one request or a batch at a time.

Both are autoregressive blank infilling. ``fill_blank("a [MASK] b")`` puts the text in Part A
and decodes each blank in turn into Part B (``[sop]`` + tokens, position id = the blank's
index, block positions 1, 2, ...) until ``[eop]``. ``generate(prompt)`` is the same with one
blank appended after the prompt (GLM's generation objective). Decoding runs the prompt through
the model once; later steps feed one token per row over cached keys and values
(Part A never attends Part B, and Part B is causal, so earlier keys and values never change).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import attention_mask_from_sep
from .model import GLMModel
from .tokenizer import SPECIAL_TOKENS, CharTokenizer


def _check_budget(model: GLMModel, max_new_tokens: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if max_new_tokens > model.config.max_len - 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} exceeds the model's longest span "
            f"(GLMConfig.max_len - 1 = {model.config.max_len - 1})"
        )


def _banned(model: GLMModel, tokenizer: CharTokenizer) -> torch.Tensor:
    """Ids never produced: specials other than [eop], and ids beyond the tokenizer's vocab."""
    banned = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    banned[: len(SPECIAL_TOKENS)] = True
    banned[tokenizer.eop] = False
    banned[tokenizer.vocab_size :] = True
    return banned


def _pick(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _layout(
    tokenizer: CharTokenizer,
    prefixes: Sequence[tuple[list[int], list[int], list[int]]],
    mask_index: Sequence[int],
    slots: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and 2D positions: each prefix, then ``[sop]`` and ``slots - 1`` slots."""
    b = len(prefixes)
    width = max(len(ids) for ids, _, _ in prefixes) + slots
    input_ids = torch.full((b, width), tokenizer.pad, dtype=torch.long)
    position_ids = torch.zeros((b, 2, width), dtype=torch.long)
    for i, ((ids, pos, block), m) in enumerate(zip(prefixes, mask_index)):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids, dtype=torch.long)
        input_ids[i, n] = tokenizer.sop
        position_ids[i, 0, :n] = torch.tensor(pos, dtype=torch.long)
        position_ids[i, 1, :n] = torch.tensor(block, dtype=torch.long)
        position_ids[i, 0, n : n + slots] = m
        position_ids[i, 1, n : n + slots] = torch.arange(1, slots + 1)
    return input_ids, position_ids


def _accept(chosen: list[int], out: list[list[int]], done: list[bool], eop: int) -> bool:
    """Appends each row's token (until its [eop]); returns whether every row is done."""
    for i, token in enumerate(chosen):
        if done[i]:
            continue
        if token == eop:
            done[i] = True
        else:
            out[i].append(token)
    return all(done)


@torch.no_grad()
def _decode_spans(
    model: GLMModel,
    tokenizer: CharTokenizer,
    prefixes: Sequence[tuple[list[int], list[int], list[int]]],
    sep: Sequence[int],
    mask_index: Sequence[int],
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator | None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Decodes one span per sequence, in a batch.

    ``prefixes[i]`` is (ids, positions, block positions) of Part A plus any Part B spans
    already decoded; the new span starts with ``[sop]`` at position ``mask_index[i]``.
    With ``use_cache`` the prefixes run once and each step feeds one token per row over the
    cached keys/values; without, each step re-runs the whole sequence (the reference).
    """
    banned = _banned(model, tokenizer)
    b = len(prefixes)
    plen = torch.tensor([len(ids) for ids, _, _ in prefixes], dtype=torch.long)
    sep_t = torch.tensor(list(sep), dtype=torch.long)
    rows = torch.arange(b)
    out: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    slots = 1 if use_cache else max_new_tokens
    input_ids, position_ids = _layout(tokenizer, prefixes, mask_index, slots)
    width0 = int(plen.max()) + 1
    mask = attention_mask_from_sep(sep_t, input_ids.shape[1])
    if use_cache:
        logits, past = model.forward_cached(input_ids, position_ids, mask)
        # New tokens see each row's prefix and [sop] (never its padding) and all new tokens.
        visible = torch.arange(width0)[None, :] <= plen[:, None]
        new_pos = torch.stack([torch.tensor(list(mask_index)), torch.zeros(b, dtype=torch.long)], 1)
    else:
        logits = model(input_ids[:, :width0], position_ids[:, :, :width0],
                       mask[:, :width0, :width0])
    last = plen.clone()  # each row's latest position: its [sop] first
    for step in range(max_new_tokens):
        step_logits = (logits[rows, last] if step == 0 or not use_cache else logits[:, -1])
        step_logits = step_logits.float().masked_fill(banned, float("-inf"))
        chosen = _pick(step_logits, temperature, generator)
        if _accept(chosen.tolist(), out, done, tokenizer.eop) or step == max_new_tokens - 1:
            break
        if use_cache:
            new_pos[:, 1] = step + 2  # block position of the token just chosen
            visible = torch.cat([visible, torch.ones(b, 1, dtype=torch.bool)], 1)
            logits, past = model.forward_cached(chosen.view(b, 1), new_pos.view(b, 2, 1),
                                                visible.view(b, 1, -1), past)
        else:
            last = last + 1
            input_ids[rows, last] = chosen
            length = width0 + step + 1
            logits = model(input_ids[:, :length], position_ids[:, :, :length],
                           mask[:, :length, :length])
    return out


def _generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _prompt_part_a(model: GLMModel, tokenizer: CharTokenizer, prompt: str) -> list[int]:
    ids = tokenizer.encode(prompt)
    tokenizer.warn_unknown(prompt)
    if tokenizer.mask in ids:
        raise ValueError("generate: the prompt contains [MASK]; use fill_blank for blanks")
    # Keep the end of a long prompt: Part A may hold at most max_len positions.
    return ids[-(model.config.max_len - 1) :] + [tokenizer.mask] if ids else [tokenizer.mask]


def generate_batch(
    model: GLMModel,
    tokenizer: CharTokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    seed: int | None = None,
    use_cache: bool = True,
) -> list[str]:
    """Continues each prompt; one forward pass per new token for the whole batch.

    Greedy results (``temperature=0``) equal those of :func:`generate` one prompt at a time
    (padding is masked out), so a server may batch requests freely.

    Args:
        model: a trained :class:`GLMModel`.
        tokenizer: its tokenizer.
        prompts: the prompts (a prompt longer than ``max_len - 1`` keeps its end).
        max_new_tokens: the most characters generated per prompt (stops earlier at ``[eop]``).
        temperature: 0 for greedy decoding, else the sampling temperature.
        seed: seeds sampling (``None``: torch's global generator).
        use_cache: decode over cached keys/values (one token per step); ``False`` re-runs
            the whole sequence each step (the reference the cache is tested against).

    Returns:
        The continuations, without the prompts, in the order of ``prompts``.
    """
    _check_budget(model, max_new_tokens)
    if isinstance(prompts, str):
        raise TypeError("generate_batch takes a list of prompts; use generate for one prompt")
    if not prompts:
        return []
    parts = [_prompt_part_a(model, tokenizer, p) for p in prompts]
    prefixes = [(a, list(range(len(a))), [0] * len(a)) for a in parts]
    spans = _decode_spans(
        model, tokenizer, prefixes, [len(a) for a in parts], [len(a) - 1 for a in parts],
        max_new_tokens, temperature, _generator(seed), use_cache,
    )
    return [tokenizer.decode(s) for s in spans]


def generate(
    model: GLMModel,
    tokenizer: CharTokenizer,
    prompt: str,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    seed: int | None = None,
    use_cache: bool = True,
) -> str:
    """Continues ``prompt`` (GLM generation: a blank after the prompt, decoded in Part B).

    Args:
        model: a trained :class:`GLMModel`.
        tokenizer: its tokenizer.
        prompt: text without ``[MASK]``.
        max_new_tokens: the most characters generated (stops earlier at ``[eop]``).
        temperature: 0 for greedy decoding, else the sampling temperature.
        seed: seeds sampling.
        use_cache: decode over cached keys/values (see :func:`generate_batch`).

    Returns:
        The continuation, without the prompt.
    """
    return generate_batch(model, tokenizer, [prompt], max_new_tokens, temperature, seed,
                          use_cache)[0]


def fill_blank(
    model: GLMModel,
    tokenizer: CharTokenizer,
    text: str,
    max_new_tokens: int = 16,
    temperature: float = 0.0,
    seed: int | None = None,
    use_cache: bool = True,
) -> str:
    """Fills every ``[MASK]`` in ``text``, left to right, and returns the completed text.

    Each blank is decoded into Part B after the blanks before it, as in GLM.

    Args:
        model: a trained :class:`GLMModel`.
        tokenizer: its tokenizer.
        text: text with at least one ``[MASK]``.
        max_new_tokens: the most characters per blank.
        temperature: 0 for greedy decoding, else the sampling temperature.
        seed: seeds sampling.
        use_cache: decode over cached keys/values (see :func:`generate_batch`).

    Raises:
        ValueError: if ``text`` has no ``[MASK]`` or is longer than ``max_len`` tokens.
    """
    _check_budget(model, max_new_tokens)
    part_a = tokenizer.encode(text)
    tokenizer.warn_unknown(text, what="text")
    masks = [i for i, t in enumerate(part_a) if t == tokenizer.mask]
    if not masks:
        raise ValueError(
            "fill_blank: the text has no [MASK] to fill; use generate to continue text"
        )
    if len(part_a) > model.config.max_len:
        raise ValueError(
            f"fill_blank: the text is {len(part_a)} tokens, more than GLMConfig.max_len="
            f"{model.config.max_len}"
        )
    ids, pos, block = list(part_a), list(range(len(part_a))), [0] * len(part_a)
    generator = _generator(seed)
    fills = []
    for m in masks:
        (span,) = _decode_spans(
            model, tokenizer, [(ids, pos, block)], [len(part_a)], [m],
            max_new_tokens, temperature, generator, use_cache,
        )
        fills.append(tokenizer.decode(span))
        ids = ids + [tokenizer.sop] + span
        pos = pos + [m] * (len(span) + 1)
        block = block + list(range(1, len(span) + 2))
    pieces = text.split("[MASK]")
    return pieces[0] + "".join(f + p for f, p in zip(fills, pieces[1:]))
