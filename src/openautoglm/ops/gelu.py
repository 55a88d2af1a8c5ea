"""The built-in fused GELU operators: their fake (meta) kernels, autograd formulas and double
backward (a pure-torch recomputation), registered with :func:`openautoglm.ops.register_op`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from openautoglm.ops.registry import register_op

#: What ``from openautoglm.ops.gelu import *`` gives; the ops themselves are public in
#: :mod:`openautoglm.ops` (``fused_bias_gelu``, ``fused_layernorm_gelu``).
__all__ = ["APPROXIMATE", "NAMESPACE"]

NAMESPACE = "openautoglm"
APPROXIMATE = ("none", "tanh")


# ------------------------------------------------------------------ built-in ops: checks and fakes


def _check_approximate(approximate: str) -> None:
    if approximate not in APPROXIMATE:
        raise ValueError(
            f"approximate must be 'none' or 'tanh' (as in torch.nn.functional.gelu), got {approximate!r}"
        )


def _check_feature_vector(x: torch.Tensor, v: torch.Tensor, op: str, name: str) -> None:
    if x.dim() < 1:
        raise ValueError(f"openautoglm.{op}: x must have at least one dimension")
    if v.dim() != 1 or v.shape[0] != x.shape[-1]:
        raise ValueError(
            f"openautoglm.{op}: {name} must be 1-D with x.size(-1) = {x.shape[-1]} elements, "
            f"got shape {tuple(v.shape)}"
        )
    if v.dtype != x.dtype:
        raise ValueError(
            f"openautoglm.{op}: {name} has dtype {v.dtype} but x has {x.dtype}; use the same dtype"
        )


def _check_float(x: torch.Tensor, op: str) -> None:
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"openautoglm.{op}: x must be float32 or float64, got {x.dtype}; convert it with .float()"
        )


def _validate_bias_gelu(x: torch.Tensor, bias: torch.Tensor, approximate: str) -> None:
    _check_approximate(approximate)
    _check_float(x, "fused_bias_gelu")
    _check_feature_vector(x, bias, "fused_bias_gelu", "bias")


def _bias_gelu_fake(x: torch.Tensor, bias: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    _validate_bias_gelu(x, bias, approximate)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _bias_gelu_backward_fake(
    grad: torch.Tensor, x: torch.Tensor, bias: torch.Tensor, approximate: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_approximate(approximate)
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(bias)


def _bias_gelu_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, bias, approximate = inputs
    ctx.save_for_backward(x, bias)
    ctx.approximate = approximate


def _bias_gelu_backward(ctx: Any, grad: torch.Tensor) -> tuple:
    x, bias = ctx.saved_tensors
    gx, gb = torch.ops.openautoglm.fused_bias_gelu_backward(grad, x, bias, ctx.approximate)
    return gx, gb, None


def _validate_layernorm_gelu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, approximate: str
) -> None:
    _check_approximate(approximate)
    _check_float(x, "fused_layernorm_gelu")
    _check_feature_vector(x, weight, "fused_layernorm_gelu", "weight")
    _check_feature_vector(x, bias, "fused_layernorm_gelu", "bias")
    if not (eps >= 0 and eps != float("inf")):
        raise ValueError(f"openautoglm.fused_layernorm_gelu: eps must be finite and >= 0, got {eps}")


def _layernorm_gelu_fake(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5, approximate: str = "none"
) -> torch.Tensor:
    _validate_layernorm_gelu(x, weight, bias, eps, approximate)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _layernorm_gelu_backward_fake(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float = 1e-5,
    approximate: str = "none",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_approximate(approximate)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        torch.empty_like(weight),
        torch.empty_like(bias),
    )


def _layernorm_gelu_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, weight, bias, eps, approximate = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.eps, ctx.approximate = eps, approximate


def _layernorm_gelu_backward(ctx: Any, grad: torch.Tensor) -> tuple:
    x, weight, bias = ctx.saved_tensors
    gx, gw, gb = torch.ops.openautoglm.fused_layernorm_gelu_backward(
        grad, x, weight, bias, ctx.eps, ctx.approximate
    )
    return gx, gw, gb, None, None


# Double backward: the backward ops are differentiated through a pure-torch recomputation (rarely
# needed, e.g. gradient penalties; correct rather than fused).


def _reference_bias_gelu_backward(grad, x, bias, approximate):
    h = x + bias
    (gx,) = torch.autograd.grad(torch.nn.functional.gelu(h, approximate=approximate), h, grad, create_graph=True)
    return gx, gx.reshape(-1, gx.shape[-1]).sum(0)


def _reference_layernorm_gelu_backward(grad, x, weight, bias, eps, approximate):
    h = torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    y = torch.nn.functional.gelu(h, approximate=approximate)
    return torch.autograd.grad(y, (x, weight, bias), grad, create_graph=True)


def _double_backward(reference: Callable[..., Any], n_tensors: int) -> tuple[Callable, Callable]:
    """(backward, setup_context) for a backward op whose first ``n_tensors`` inputs are tensors."""

    def setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.constants = inputs[n_tensors:]

    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple:
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_() for t in ctx.saved_tensors]
            outputs = reference(*leaves, *ctx.constants)
            used = [(o, g) for o, g in zip(outputs, grads) if g is not None]
            result = torch.autograd.grad(
                [o for o, _ in used], leaves, [g for _, g in used], allow_unused=True
            )
        return (*result, *([None] * len(ctx.constants)))

    return backward, setup_context


def _register_builtin_ops() -> None:
    specs: Sequence[tuple[str, Callable, Callable | None, Callable | None]] = (
        ("fused_bias_gelu", _bias_gelu_fake, _bias_gelu_backward, _bias_gelu_setup),
        ("fused_bias_gelu_backward", _bias_gelu_backward_fake,
         *_double_backward(_reference_bias_gelu_backward, 3)),
        ("fused_layernorm_gelu", _layernorm_gelu_fake, _layernorm_gelu_backward, _layernorm_gelu_setup),
        ("fused_layernorm_gelu_backward", _layernorm_gelu_backward_fake,
         *_double_backward(_reference_layernorm_gelu_backward, 4)),
    )
    for name, fake, backward, setup in specs:
        info = register_op(f"{NAMESPACE}::{name}", fake=fake, backward=backward, setup_context=setup)
        info.builtin = True
        info.devices = tuple(
            device
            for device, key in (("cpu", "CPU"), ("cuda", "CUDA"))
            if torch._C._dispatch_has_kernel_for_dispatch_key(info.name, key)
        )

