"""The only Python door to ``torch.ops.openautoglm.*``: fused GELU operators from ``cuda_ext/``.

Glossary:
    ``fused_bias_gelu(x, bias, approximate)``: ``gelu(x + bias)`` in one pass over ``x``.
    ``fused_layernorm_gelu(x, weight, bias, eps, approximate)``:
    ``gelu(layer_norm(x, (x.size(-1),), weight, bias, eps))`` in one pass per row.
    ``approximate``: ``"none"`` (the erf GELU) or ``"tanh"``, as in ``torch.nn.functional.gelu``.

The kernels are C++ (``cuda_ext/ops.cpp``, float32/float64) and CUDA (``cuda_ext/cuda/ops.cu``,
built where torch has CUDA), compiled into ``openautoglm._C`` (AVX2 + FMA, the baseline) and
``openautoglm._C_avx512`` (the same CPU kernels for AVX-512). Importing this module checks the CPU,
loads one of the two (:func:`kernel_capability` says which), then registers for every op a fake (meta) kernel, so
``torch.compile`` can trace it, and an autograd formula: the forward ops' gradients are their fused
backward ops; the backward ops' own gradients (double backward) come from a pure-torch
recomputation.

The same pattern is open to users: :func:`register_op` declares a schema, a CPU (and optional
CUDA) kernel, a fake kernel and a backward in one call, and lists the op in :func:`registered_ops`.

Layout: ``_load`` (CPU check, the choice of ``_C`` or ``_C_avx512``), ``registry``
(:func:`register_op`), ``gelu`` (the built-in ops' fakes and autograd), ``fusion`` (the torch.fx
pass and the torch.compile backend).

Read ``tests/ops/test_ops.py`` for the reference implementations each op is checked against.

Example:
    >>> import torch
    >>> from openautoglm import ops
    >>> x, b = torch.randn(4, 8), torch.randn(8)
    >>> y = ops.fused_bias_gelu(x, b, approximate="tanh")
    >>> torch.allclose(y, torch.nn.functional.gelu(x + b, approximate="tanh"), atol=1e-5)
    True
"""
from __future__ import annotations

import torch

from openautoglm.ops._load import (
    OpsUnavailableError,
    cpu_supports_avx2,
    is_available,
    kernel_capability,
    load,
)
from openautoglm.ops.gelu import APPROXIMATE, NAMESPACE, _validate_bias_gelu, _validate_layernorm_gelu
from openautoglm.ops.registry import OpInfo, get_op, register_op, registered_ops

__all__ = [
    "OpsUnavailableError",
    "OpInfo",
    "load",
    "is_available",
    "cpu_supports_avx2",
    "kernel_capability",
    "fused_bias_gelu",
    "fused_layernorm_gelu",
    "register_op",
    "registered_ops",
    "get_op",
]


def fused_bias_gelu(x: torch.Tensor, bias: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu(x + bias)`` in one pass, differentiable in ``x`` and ``bias``.

    Args:
        x: float32 or float64 tensor of shape ``(..., n)``, any strides.
        bias: shape ``(n,)``, same dtype and device as ``x``.
        approximate: ``"none"`` (erf) or ``"tanh"``.

    Returns:
        A contiguous tensor shaped like ``x``.

    Raises:
        ValueError: on a wrong ``approximate``, dtype or bias shape (before anything runs).
        OpsUnavailableError: when ``openautoglm._C`` is not built or the CPU lacks AVX2.
    """
    load()
    _validate_bias_gelu(x, bias, approximate)
    return torch.ops.openautoglm.fused_bias_gelu(x, bias, approximate)


def fused_layernorm_gelu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float = 1e-5,
    approximate: str = "none",
) -> torch.Tensor:
    """``gelu(layer_norm(x) * weight + bias)`` over the last dimension, differentiable in all tensors.

    Args:
        x: float32 or float64 tensor of shape ``(..., n)``, any strides.
        weight: the LayerNorm scale, shape ``(n,)``.
        bias: the LayerNorm shift, shape ``(n,)``.
        eps: added to the variance, as ``nn.LayerNorm.eps``.
        approximate: ``"none"`` (erf) or ``"tanh"``.

    Returns:
        A contiguous tensor shaped like ``x``.

    Raises:
        ValueError: on a wrong ``approximate``, dtype or parameter shape (before anything runs).
        OpsUnavailableError: when ``openautoglm._C`` is not built or the CPU lacks AVX2.
    """
    load()
    _validate_layernorm_gelu(x, weight, bias, eps, approximate)
    return torch.ops.openautoglm.fused_layernorm_gelu(x, weight, bias, eps, approximate)


# Register at import when possible, so torch.ops.openautoglm.* works under torch.compile as soon
# as this module is imported; the error, if any, is raised by the first call instead.
try:
    load()
except OpsUnavailableError:
    pass
