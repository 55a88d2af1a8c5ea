"""GLMModel: a small GLM (Du et al., ACL 2022; github.com/THUDM/GLM).

A pre-LayerNorm Transformer over 2D positions (position in Part A, block position in a span),
with the output projection tied to the word embeddings. Each block is::

    h = x + attn(ln_1(x), attention_mask)       # mask from data.attention_mask_from_sep
    y = h + fc_2(gelu_tanh(fc_1(ln_2(h))))      # fc_1: Linear(hidden, 4 * hidden)

``fc_1`` is an ``nn.Linear`` with bias followed by ``nn.GELU(approximate="tanh")``, the pattern
that :mod:`openautoglm.ops.fusion` rewrites to ``fused_bias_gelu``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Cached keys and values of one attention layer, each (B, heads, positions, head_dim).
KeyValue = tuple[torch.Tensor, torch.Tensor]


@dataclass
class GLMConfig:
    """Shape of a :class:`GLMModel`.

    Args:
        vocab_size: number of token ids (``tokenizer.vocab_size``).
        n_layers: Transformer blocks.
        hidden: model width; a multiple of ``heads``.
        heads: attention heads.
        max_len: the longest Part A (positions) and the longest span + 1 (block positions).
        dropout: dropout probability in attention and MLP outputs.
    """

    vocab_size: int
    n_layers: int = 2
    hidden: int = 64
    heads: int = 4
    max_len: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layers", "hidden", "heads", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GLMConfig.{name} must be a positive int, got {value!r}")
        if self.hidden % self.heads:
            raise ValueError(
                f"GLMConfig.hidden={self.hidden} must be a multiple of heads={self.heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GLMConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``GLMConfig(**d)`` restores it."""
        return asdict(self)


class SelfAttention(nn.Module):
    """Multi-head self-attention with an explicit boolean mask (True: may attend)."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.forward_cached(x, attention_mask)[0]

    def forward_cached(
        self, x: torch.Tensor, attention_mask: torch.Tensor, past: KeyValue | None = None
    ) -> tuple[torch.Tensor, KeyValue]:
        """Attention of the new positions ``x`` over ``past`` keys/values and their own.

        ``attention_mask`` is (B, T, P + T) for T new and P cached positions.
        Returns the output and the keys/values of all P + T positions.
        """
        # Shape-free code (no unpacking of x.shape) so that torch.fx.symbolic_trace works.
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, -1))  # (B, T, 3, heads, head_dim)
        q, k, v = (qkv.select(2, i).transpose(1, 2) for i in range(3))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask.unsqueeze(1),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.resid_dropout(self.proj(y.transpose(1, 2).flatten(2))), (k, v)


class MLP(nn.Module):
    """Linear(bias) -> GELU(tanh) -> Linear: the fusion pass's bias+GELU site."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc_1 = nn.Linear(hidden, 4 * hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc_2 = nn.Linear(4 * hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_2(self.act(self.fc_1(x))))


class Block(nn.Module):
    """A pre-LayerNorm Transformer block."""

    def __init__(self, config: GLMConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden)
        self.attn = SelfAttention(config.hidden, config.heads, config.dropout)
        self.ln_2 = nn.LayerNorm(config.hidden)
        self.mlp = MLP(config.hidden, config.dropout)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attention_mask)
        return x + self.mlp(self.ln_2(x))

    def forward_cached(
        self, x: torch.Tensor, attention_mask: torch.Tensor, past: KeyValue | None = None
    ) -> tuple[torch.Tensor, KeyValue]:
        """:meth:`forward` for new positions over cached keys/values (decoding)."""
        h, kv = self.attn.forward_cached(self.ln_1(x), attention_mask, past)
        x = x + h
        return x + self.mlp(self.ln_2(x)), kv


class GLMModel(nn.Module):
    """The GLM: token + 2D position embeddings, pre-LN blocks, tied output layer.

    Args:
        config: the model's shape.

    Example:
        >>> from openautoglm.glm.data import attention_mask_from_sep
        >>> model = GLMModel(GLMConfig(vocab_size=10, hidden=8, heads=2, max_len=6))
        >>> ids = torch.tensor([[5, 2, 7, 3, 6]])
        >>> pos = torch.tensor([[[0, 1, 2, 1, 1], [0, 0, 0, 1, 2]]])
        >>> model(ids, pos, attention_mask_from_sep(torch.tensor([3]), 5)).shape
        torch.Size([1, 5, 10])
    """

    def __init__(self, config: GLMConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden)
        self.position_embeddings = nn.Embedding(config.max_len, config.hidden)
        self.block_position_embeddings = nn.Embedding(config.max_len + 1, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 style initialisation: N(0, 0.02), residual projections scaled by depth."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp.fc_2):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.config.n_layers))

    def num_parameters(self) -> int:
        """Number of parameters (the tied output layer counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Returns logits (B, L, vocab_size).

        Args:
            input_ids: (B, L) token ids.
            position_ids: (B, 2, L): positions in Part A and block positions.
            attention_mask: (B, L, L) bool, True where query i may attend key j.
        """
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids[:, 0])
            + self.block_position_embeddings(position_ids[:, 1])
        )
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, attention_mask)
        return F.linear(self.ln_f(x), self.word_embeddings.weight)

    def forward_cached(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        past: list[KeyValue] | None = None,
    ) -> tuple[torch.Tensor, list[KeyValue]]:
        """Logits of T new positions given the keys/values of P earlier ones (for decoding).

        Part B is causal and Part A never attends it, so the keys and values of earlier
        positions do not change when a token is appended: decoding feeds one token per step.

        Args:
            input_ids: (B, T) new token ids.
            position_ids: (B, 2, T) their 2D positions.
            attention_mask: (B, T, P + T) bool over the cached and the new positions.
            past: per block, the keys/values returned by the previous call (``None``: P = 0).

        Returns:
            Logits (B, T, vocab_size) and the keys/values of all P + T positions.
        """
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids[:, 0])
            + self.block_position_embeddings(position_ids[:, 1])
        )
        x = self.dropout(x)
        cache: list[KeyValue] = []
        for i, block in enumerate(self.blocks):
            x, kv = block.forward_cached(x, attention_mask, None if past is None else past[i])
            cache.append(kv)
        return F.linear(self.ln_f(x), self.word_embeddings.weight), cache


def glm_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the Part B tokens (``loss_mask`` 1).

    Args:
        logits: (B, L, V).
        targets: (B, L) ids; any value where ``loss_mask`` is 0.
        loss_mask: (B, L) 0/1.
    """
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.clamp(min=0).reshape(-1), reduction="none"
    )
    mask = loss_mask.reshape(-1).to(flat.dtype)
    return (flat * mask).sum() / mask.sum().clamp(min=1.0)


def check_inputs(config: GLMConfig, batch: dict[str, torch.Tensor]) -> None:
    """Raises ValueError if a batch does not fit ``config`` (positions beyond ``max_len``)."""
    pos = batch["position_ids"]
    if int(pos[:, 0].max()) >= config.max_len or int(pos[:, 1].max()) > config.max_len:
        raise ValueError(
            f"the batch needs positions up to {int(pos[:, 0].max())} and block positions up to "
            f"{int(pos[:, 1].max())}, beyond GLMConfig.max_len={config.max_len}: "
            "use a shorter seq_len or a larger max_len"
        )
    if int(batch["input_ids"].max()) >= config.vocab_size:
        raise ValueError(
            f"token id {int(batch['input_ids'].max())} >= GLMConfig.vocab_size="
            f"{config.vocab_size}: set vocab_size=tokenizer.vocab_size"
        )
