"""The patterns of :mod:`openautoglm.ops.fusion`: reading fx nodes in their three forms
(module calls, functional calls, aten ops) and rewriting one matched pair in place.

Split from ``fusion.py`` (which keeps the pass, :func:`~openautoglm.ops.fusion.fuse` and the
``torch.compile`` backends) so each file holds one idea; nothing here is public.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from openautoglm import ops

__all__ = ["FUSED_OPS", "gelu_input", "match_layernorm_gelu", "rewrite_linear_gelu"]

#: The operators the pass inserts (a node already calling one is left alone).
FUSED_OPS = ("openautoglm::fused_layernorm_gelu", "openautoglm::fused_bias_gelu")

aten = torch.ops.aten

_GELU_FUNCTIONS = {F.gelu, aten.gelu.default, aten.gelu}
_LAYER_NORM_FUNCTIONS = {F.layer_norm, torch.layer_norm, aten.layer_norm.default, aten.layer_norm}
_LINEAR_FUNCTIONS = {F.linear, aten.linear.default, aten.linear}
_VIEW_FUNCTIONS = {aten.view.default, aten._unsafe_view.default, aten.reshape.default}
_ADD_FUNCTIONS = {operator.add, torch.add, aten.add.Tensor}
_FLOAT_DTYPES = (torch.float32, torch.float64)


# ------------------------------------------------------------------ reading nodes


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _input(node: fx.Node) -> Any:
    """The first (tensor) argument, positional or by keyword (``input=`` / aten's ``self=``)."""
    if node.args:
        return node.args[0]
    return node.kwargs.get("input", node.kwargs.get("self"))


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    try:
        return gm.get_submodule(str(node.target))
    except AttributeError:
        return None


def _tensor_of(gm: fx.GraphModule, node: Any) -> torch.Tensor | None:
    """The tensor (real or fake) a node stands for, when the graph records it."""
    if not isinstance(node, fx.Node):
        return None
    for key in ("val", "example_value"):
        value = node.meta.get(key)
        if isinstance(value, torch.Tensor):
            return value
    if node.op == "get_attr":
        try:
            value = gm.get_parameter(str(node.target))
        except AttributeError:
            try:
                value = gm.get_buffer(str(node.target))
            except AttributeError:
                value = getattr(gm, str(node.target), None)
        return value if isinstance(value, torch.Tensor) else None
    return None


def _supported(*tensors: torch.Tensor | None) -> bool:
    """False when a known tensor has a dtype or device the fused kernels do not cover."""
    for t in tensors:
        if t is None:
            continue
        if t.dtype not in _FLOAT_DTYPES:
            return False
        key = "CUDA" if t.device.type == "cuda" else "CPU" if t.device.type in ("cpu", "meta") else None
        if key is None:
            return False
        for name in FUSED_OPS:
            if not torch._C._dispatch_has_kernel_for_dispatch_key(name, key):
                return False
    return True


def gelu_input(gm: fx.GraphModule, node: fx.Node) -> tuple[fx.Node, str] | None:
    """(input, approximate) when ``node`` is a GELU in any form."""
    mod = _module(gm, node)
    if isinstance(mod, nn.GELU):
        return (_input(node), mod.approximate) if isinstance(_input(node), fx.Node) else None
    if node.op == "call_function" and node.target in _GELU_FUNCTIONS:
        approximate = _arg(node, 1, "approximate", "none")
        if approximate in ops.APPROXIMATE and isinstance(_input(node), fx.Node):
            return _input(node), approximate
    return None


def _only_user(producer: Any, consumer: fx.Node) -> bool:
    return isinstance(producer, fx.Node) and set(producer.users) == {consumer}


# ------------------------------------------------------------------ LayerNorm -> GELU


def _layer_norm_args(gm: fx.GraphModule, node: fx.Node, graph: fx.Graph) -> tuple | None:
    """(x, weight, bias, eps, nodes to erase) when ``node`` is a last-dim affine LayerNorm."""
    mod = _module(gm, node)
    if isinstance(mod, nn.LayerNorm):
        if len(mod.normalized_shape) != 1 or mod.weight is None or mod.bias is None:
            return None
        if not _supported(mod.weight):
            return None
        with graph.inserting_before(node):
            weight = graph.get_attr(f"{node.target}.weight")
            bias = graph.get_attr(f"{node.target}.bias")
        return _input(node), weight, bias, float(mod.eps), [node]
    if node.op != "call_function":
        return None
    erase = [node]
    if node.target is aten.native_layer_norm.default:
        pass
    elif node.target not in _LAYER_NORM_FUNCTIONS:
        return None
    shape = _arg(node, 1, "normalized_shape")
    weight, bias = _arg(node, 2, "weight"), _arg(node, 3, "bias")
    eps = _arg(node, 4, "eps", 1e-5)
    if not isinstance(shape, (list, tuple, torch.Size)) or len(shape) != 1:
        return None
    if not isinstance(weight, fx.Node) or not isinstance(bias, fx.Node) or not isinstance(eps, (int, float)):
        return None
    if not _supported(_tensor_of(gm, _input(node)), _tensor_of(gm, weight), _tensor_of(gm, bias)):
        return None
    return _input(node), weight, bias, float(eps), erase


def match_layernorm_gelu(gm: fx.GraphModule, gelu: fx.Node) -> tuple | None:
    found = gelu_input(gm, gelu)
    if found is None:
        return None
    ln, approximate = found
    if not _only_user(ln, gelu):
        return None
    # aten.native_layer_norm returns (out, mean, rstd): GELU reads getitem 0, and mean/rstd
    # must be unused (they are saved for backward in training graphs: then leave it alone).
    if ln.op == "call_function" and ln.target is operator.getitem and ln.args[1] == 0:
        native = ln.args[0]
        if not (isinstance(native, fx.Node) and native.target is aten.native_layer_norm.default):
            return None
        if any(u is not ln and u.users for u in native.users):
            return None
        args = _layer_norm_args(gm, native, gelu.graph)
        if args is None:
            return None
        *head, erase = args
        return (*head, approximate, [ln, *[u for u in native.users if u is not ln], native])
    args = _layer_norm_args(gm, ln, gelu.graph)
    if args is None:
        return None
    return (*args[:4], approximate, args[4])


# ------------------------------------------------------------------ Linear(bias) -> GELU


def _linear_args(gm: fx.GraphModule, node: fx.Node, graph: fx.Graph) -> tuple | None:
    """(x, weight, bias) when ``node`` is a Linear with a 1-D bias, inserting get_attr nodes."""
    mod = _module(gm, node)
    if isinstance(mod, nn.Linear):
        if mod.bias is None or not _supported(mod.weight):
            return None
        with graph.inserting_before(node):
            weight = graph.get_attr(f"{node.target}.weight")
            bias = graph.get_attr(f"{node.target}.bias")
        return _input(node), weight, bias
    if node.op == "call_function" and node.target in _LINEAR_FUNCTIONS:
        weight, bias = _arg(node, 1, "weight"), _arg(node, 2, "bias")
        if not isinstance(bias, fx.Node):
            return None
        bias_t = _tensor_of(gm, bias)
        if bias_t is not None and bias_t.dim() != 1:
            return None
        if not _supported(_tensor_of(gm, _input(node)), _tensor_of(gm, weight), bias_t):
            return None
        return _input(node), weight, bias
    return None


def _rewrite_add_gelu(gm: fx.GraphModule, gelu: fx.Node, add: fx.Node, approximate: str, fused_bias_gelu: Any) -> bool:
    """``gelu(x + bias)`` with a 1-D ``bias`` over x's last dimension, where the graph knows shapes."""
    if len(add.args) != 2 or add.kwargs.get("alpha", 1) != 1:
        return False
    for x, bias in (add.args, add.args[::-1]):
        x_t, b_t = _tensor_of(gm, x), _tensor_of(gm, bias)
        if x_t is None or b_t is None or b_t.dim() != 1 or x_t.dim() < 1:
            continue
        n, m = x_t.shape[-1], b_t.shape[0]
        # Only static sizes: a symbolic comparison would add guards to a Dynamo graph.
        if not (isinstance(n, int) and isinstance(m, int) and n == m and x_t.dtype == b_t.dtype):
            continue
        if not _supported(x_t, b_t):
            continue
        graph = gelu.graph
        with graph.inserting_before(gelu):
            fused = graph.call_function(fused_bias_gelu, (x, bias, approximate))
        gelu.replace_all_uses_with(fused)
        graph.erase_node(gelu)
        graph.erase_node(add)
        return True
    return False


def rewrite_linear_gelu(gm: fx.GraphModule, gelu: fx.Node, fused_bias_gelu: Any) -> bool:
    found = gelu_input(gm, gelu)
    if found is None:
        return False
    lin, approximate = found
    if not _only_user(lin, gelu):
        return False
    graph = gelu.graph
    if lin.op == "call_function" and lin.target in _ADD_FUNCTIONS:
        return _rewrite_add_gelu(gm, gelu, lin, approximate, fused_bias_gelu)
    # aten.addmm(bias, x2d, w_t) [-> view]: AOT and export graphs of nn.Linear on 3-D input.
    view = None
    if lin.op == "call_function" and lin.target in _VIEW_FUNCTIONS:
        view, source = lin, lin.args[0]
        if not isinstance(source, fx.Node) or not _only_user(source, view):
            return False
        if source.target is not aten.addmm.default:
            return False
        lin = source
    if lin.op == "call_function" and lin.target is aten.addmm.default:
        if lin.kwargs.get("beta", 1) != 1 or lin.kwargs.get("alpha", 1) != 1:
            return False
        bias, mat1, mat2 = lin.args[:3]
        bias_t = _tensor_of(gm, bias)
        if bias_t is None or bias_t.dim() != 1 or not _supported(bias_t, _tensor_of(gm, mat1)):
            return False
        with graph.inserting_before(lin):
            mm = graph.call_function(aten.mm.default, (mat1, mat2))
        mm.meta.update({k: v for k, v in lin.meta.items() if k != "val"})
        lin.replace_all_uses_with(mm)
        graph.erase_node(lin)
        pre = view if view is not None else mm
    elif view is None:
        args = _linear_args(gm, lin, graph)
        if args is None:
            return False
        x, weight, bias = args
        with graph.inserting_before(lin):
            pre = graph.call_function(
                aten.linear.default if lin.target in (aten.linear.default, aten.linear) else F.linear,
                (x, weight, None),
            )
        lin.replace_all_uses_with(pre)
        graph.erase_node(lin)
    else:
        return False
    with graph.inserting_after(pre):
        fused = graph.call_function(fused_bias_gelu, (pre, bias, approximate))
    gelu.replace_all_uses_with(fused)
    graph.erase_node(gelu)
    return True
