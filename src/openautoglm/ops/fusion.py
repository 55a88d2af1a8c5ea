"""The fusion pass: rewrite LayerNorm -> GELU and Linear(bias) -> GELU into openautoglm's fused ops.

::

    x -> LayerNorm(w, b, eps) -> GELU(approximate)   ==>   x -> fused_layernorm_gelu(w, b, eps, approximate)
    x -> Linear(W, b)         -> GELU(approximate)   ==>   x -> Linear(W, no bias) -> fused_bias_gelu(b, approximate)
    x + b (b 1-D)             -> GELU(approximate)   ==>   x -> fused_bias_gelu(b, approximate)

The pass walks the nodes of a ``torch.fx`` graph (``torch.fx.subgraph_rewriter`` cannot see
through ``call_module`` nodes, and needs literal arguments to match) and recognises each step in
three forms:

- module calls: ``nn.LayerNorm``, ``nn.GELU``, ``nn.Linear`` (``torch.fx.symbolic_trace``);
- functional calls: ``F.layer_norm``/``torch.layer_norm``, ``F.gelu``, ``F.linear`` (Dynamo graphs);
- aten ops: ``aten.layer_norm``/``aten.native_layer_norm``, ``aten.gelu``, ``aten.linear`` and
  ``aten.addmm`` (optionally followed by a ``view``) from ``torch.export`` and AOT graphs;
- an explicit ``x + bias`` before a GELU, where the graph records shapes (Dynamo, export, AOT).

A pair is fused only when the intermediate (the LayerNorm or Linear output) has no other user,
the LayerNorm normalises the last dimension only and has both weight and bias, the Linear has a
1-D bias, and, where the graph knows it, the dtype is float32/float64 and the device has a
kernel. Everything else is left as it was: fusion never changes results beyond rounding.

The patterns themselves (reading nodes, rewriting one pair) are in :mod:`._match`.

Entry points: :func:`fuse` (a module in, a ``GraphModule`` out), :func:`fuse_graph_module`
(in place, returns counts) and :func:`backend` / ``torch.compile(m, backend="openautoglm")``.
Read ``tests/ops/test_fusion.py`` for each form and for the cases that must not fuse.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import fx, nn

from openautoglm import ops
from openautoglm.ops._match import FUSED_OPS, gelu_input, match_layernorm_gelu, rewrite_linear_gelu

__all__ = ["fuse", "fuse_graph_module", "backend", "make_backend", "FUSED_OPS"]


def _fused_ops() -> tuple[Any, Any]:
    ops.load()
    return (
        torch.ops.openautoglm.fused_layernorm_gelu.default,
        torch.ops.openautoglm.fused_bias_gelu.default,
    )


# ------------------------------------------------------------------ the pass


def fuse_graph_module(gm: fx.GraphModule) -> dict[str, int]:
    """Rewrite ``gm`` in place; returns how many pairs of each kind were fused.

    Args:
        gm: any ``torch.fx.GraphModule`` (symbolic trace, Dynamo, ``torch.export`` or AOT graph).

    Returns:
        ``{"layernorm_gelu": k, "bias_gelu": m}``; also stored in ``gm.meta["fusion_counts"]``.

    Raises:
        openautoglm.ops.OpsUnavailableError: when the compiled operators cannot load here.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.GELU())
        >>> gm = torch.fx.symbolic_trace(m)
        >>> fuse_graph_module(gm)
        {'layernorm_gelu': 1, 'bias_gelu': 1}
    """
    fused_layernorm_gelu, fused_bias_gelu = _fused_ops()
    counts = {"layernorm_gelu": 0, "bias_gelu": 0}
    graph = gm.graph
    for gelu in list(graph.nodes):
        if gelu.graph is not graph or gelu not in graph.nodes:
            continue
        if gelu_input(gm, gelu) is None:
            continue
        match = match_layernorm_gelu(gm, gelu)
        if match is not None:
            x, weight, bias, eps, approximate, erase = match
            with graph.inserting_before(gelu):
                fused = graph.call_function(fused_layernorm_gelu, (x, weight, bias, eps, approximate))
            gelu.replace_all_uses_with(fused)
            graph.erase_node(gelu)
            for node in erase:
                graph.erase_node(node)
            counts["layernorm_gelu"] += 1
        elif rewrite_linear_gelu(gm, gelu, fused_bias_gelu):
            counts["bias_gelu"] += 1
    # get_attr nodes added for a pattern that then did not match have no users: drop them.
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)
    graph.lint()
    gm.recompile()
    gm.meta["fusion_counts"] = dict(counts)
    return counts


def fuse(
    module: nn.Module | fx.GraphModule,
    example_inputs: Sequence[Any] | None = None,
) -> fx.GraphModule:
    """Fuse LayerNorm->GELU and Linear(bias)->GELU in a module; outputs and gradients unchanged.

    Args:
        module: an ``nn.Module`` (captured with ``torch.fx.symbolic_trace``; the result shares the
            module's parameters, so training it trains the original) or a ``GraphModule``,
            rewritten in place.
        example_inputs: when given, a module that ``symbolic_trace`` cannot capture (data-dependent
            control flow) is captured with ``torch.export`` on these inputs instead.

    Returns:
        The rewritten ``GraphModule``; ``result.meta["fusion_counts"]`` says what was fused.

    Raises:
        TypeError: when ``module`` is not an ``nn.Module``.
        ValueError: when the module cannot be traced and no ``example_inputs`` were given.
        openautoglm.ops.OpsUnavailableError: when the compiled operators cannot load here.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = nn.Sequential(nn.LayerNorm(8), nn.GELU(approximate="tanh"))
        >>> x = torch.randn(2, 8)
        >>> fm = fuse(m)
        >>> fm.meta["fusion_counts"]
        {'layernorm_gelu': 1, 'bias_gelu': 0}
        >>> torch.allclose(fm(x), m(x), atol=1e-6)
        True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"fuse() takes an nn.Module or torch.fx.GraphModule, got {type(module).__name__}")
    ops.load()
    if isinstance(module, fx.GraphModule):
        gm = module
    else:
        try:
            gm = fx.symbolic_trace(module)
        except Exception as exc:  # fx raises many kinds (TraceError, TypeError, ...)
            if example_inputs is None:
                raise ValueError(
                    f"torch.fx.symbolic_trace cannot capture {type(module).__name__} ({exc}); "
                    "pass example_inputs=(...) to capture it with torch.export instead"
                ) from exc
            gm = torch.export.export(module, tuple(example_inputs)).module()
    fuse_graph_module(gm)
    return gm


# ------------------------------------------------------------------ torch.compile backend


def make_backend(inner: str | Callable[..., Any] = "aot_eager") -> Callable[..., Any]:
    """A ``torch.compile`` backend that fuses the Dynamo graph, then hands it to ``inner``.

    Args:
        inner: a registered backend name (``"aot_eager"``, ``"inductor"``, ...) or a backend
            callable ``(gm, example_inputs) -> callable``.

    Returns:
        The backend callable, for ``torch.compile(model, backend=make_backend("inductor"))``.
    """
    if isinstance(inner, str):
        from torch._dynamo.backends.registry import lookup_backend

        inner_fn = lookup_backend(inner)
    elif callable(inner):
        inner_fn = inner
    else:
        raise TypeError(f"inner must be a backend name or callable, got {type(inner).__name__}")

    def fusing_backend(gm: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        fuse_graph_module(gm)
        return inner_fn(gm, example_inputs)

    return fusing_backend


def backend(gm: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
    """``torch.compile(model, backend=openautoglm.ops.fusion.backend)``: fuse, then ``aot_eager``.

    Also registered under the name ``"openautoglm"`` (``torch.compile(m, backend="openautoglm")``)
    once this module is imported.
    """
    global _default_backend
    if _default_backend is None:
        _default_backend = make_backend("aot_eager")
    return _default_backend(gm, example_inputs)


_default_backend: Callable[..., Any] | None = None


def _register_named_backend() -> None:
    from torch._dynamo.backends.registry import _BACKENDS, register_backend

    if "openautoglm" not in _BACKENDS:
        register_backend(compiler_fn=backend, name="openautoglm")


_register_named_backend()
