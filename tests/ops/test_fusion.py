"""Tests for openautoglm.ops.fusion: each graph form fuses, outputs and gradients are unchanged, and
patterns that must not fuse are left alone."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from openautoglm import ops
from openautoglm.ops import fusion


FUSED_LN = torch.ops.openautoglm.fused_layernorm_gelu.default if ops.is_available() else None
FUSED_BIAS = torch.ops.openautoglm.fused_bias_gelu.default if ops.is_available() else None


@pytest.fixture(autouse=True)
def _built() -> None:
    """Fail (not skip) with the build instruction when openautoglm._C is missing."""
    try:
        ops.load()
    except ops.OpsUnavailableError as exc:
        pytest.fail(str(exc))


def fused_calls(gm: fx.GraphModule) -> list[tuple]:
    """(op name, approximate) of every fused call in a graph, in order."""
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in (FUSED_LN, FUSED_BIAS):
            out.append((node.target.name().split("::")[1].split(".")[0], node.args[-1]))
    return out


def assert_same_outputs_and_grads(original: nn.Module, fused: nn.Module, *inputs: torch.Tensor) -> None:
    """Same outputs, input gradients and parameter gradients (parameters are shared)."""
    results = []
    for module in (original, fused):
        module.zero_grad(set_to_none=True)
        xs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
        out = module(*xs)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads = {n: p.grad.clone() for n, p in original.named_parameters() if p.grad is not None}
        results.append((out.detach(), [x.grad for x in xs if x.requires_grad], grads))
    (o1, x1, p1), (o2, x2, p2) = results
    torch.testing.assert_close(o2, o1, atol=1e-5, rtol=1e-5)
    for a, b in zip(x2, x1):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert p1.keys() == p2.keys() and p1
    for name in p1:
        # Parameter gradients sum over rows in a different order: scale atol by their size.
        atol = 1e-5 * max(1.0, float(p1[name].abs().max()))
        torch.testing.assert_close(p2[name], p1[name], atol=atol, rtol=1e-5)


class Functional(nn.Module):
    """LayerNorm -> GELU and Linear -> GELU written with torch.nn.functional."""

    def __init__(self, n: int = 12, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate
        self.w = nn.Parameter(torch.randn(n, n) / n**0.5)
        self.b = nn.Parameter(torch.randn(n))
        self.ln_w = nn.Parameter(1 + 0.1 * torch.randn(n))
        self.ln_b = nn.Parameter(0.1 * torch.randn(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(F.linear(x, self.w, self.b), approximate=self.approximate)
        return F.gelu(F.layer_norm(h, (h.shape[-1],), self.ln_w, self.ln_b, 1e-6), approximate="tanh")


def mlp(approximate: str = "none") -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.LayerNorm(12), nn.GELU(approximate=approximate),
        nn.Linear(12, 20), nn.GELU(approximate="tanh"), nn.Linear(20, 12),
    )


# ------------------------------------------------------------------ forms


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_module_form_fuses_and_keeps_outputs_and_gradients(approximate):
    model = mlp(approximate)
    fused = fusion.fuse(model)
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 1, "bias_gelu": 1}
    assert fused_calls(fused) == [("fused_layernorm_gelu", approximate), ("fused_bias_gelu", "tanh")]
    # The Linear before the GELU now runs without its bias; the fused op adds it.
    assert_same_outputs_and_grads(model, fused, torch.randn(4, 3, 12))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_functional_form(approximate):
    torch.manual_seed(1)
    model = Functional(approximate=approximate)
    fused = fusion.fuse(model)
    assert fused_calls(fused) == [("fused_bias_gelu", approximate), ("fused_layernorm_gelu", "tanh")]
    eps = [n.args[3] for n in fused.graph.nodes if n.target is FUSED_LN]
    assert eps == [1e-6]
    assert_same_outputs_and_grads(model, fused, torch.randn(2, 5, 12))


def test_export_aten_form():
    """torch.export graphs hold aten.layer_norm / aten.linear / aten.gelu."""
    model = mlp("tanh")
    x = torch.randn(3, 12)
    gm = torch.export.export(model, (x,)).module()
    assert any(n.target is torch.ops.aten.gelu.default for n in gm.graph.nodes)
    counts = fusion.fuse_graph_module(gm)
    assert counts == {"layernorm_gelu": 1, "bias_gelu": 1}
    assert not any(n.target is torch.ops.aten.gelu.default for n in gm.graph.nodes)
    torch.testing.assert_close(gm(x), model(x), atol=1e-5, rtol=1e-5)


def test_aot_inference_graph_form():
    """AOT graphs lower Linear to addmm (+ view) and LayerNorm to native_layer_norm."""
    from torch._dynamo.backends.common import aot_autograd

    model = mlp("none")
    seen = []

    def fw_compiler(gm, example_inputs):
        seen.append(fusion.fuse_graph_module(gm))
        return gm

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=fw_compiler), fullgraph=True)
    x = torch.randn(2, 3, 12)
    with torch.no_grad():
        out = compiled(x)
        torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-5)
    assert seen == [{"layernorm_gelu": 1, "bias_gelu": 1}]


def test_aot_training_graph_is_left_alone():
    """In a joint training graph the intermediates are saved for backward: nothing may fuse."""
    from torch._dynamo.backends.common import aot_autograd

    model = mlp("none")
    seen = []

    def fw_compiler(gm, example_inputs):
        seen.append(fusion.fuse_graph_module(gm))
        return gm

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=fw_compiler), fullgraph=True)
    x = torch.randn(2, 3, 12, requires_grad=True)
    torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert seen == [{"layernorm_gelu": 0, "bias_gelu": 0}]


# ------------------------------------------------------------------ what must not fuse


class SharedIntermediate(nn.Module):
    """The Linear output feeds the GELU *and* the residual: fusing would lose it.

    x -> fc -> h -> GELU -> + -> out
                \\__________/
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)
        self.act = nn.GELU()

    def forward(self, x):
        h = self.fc(x)
        n = self.ln(h)
        return self.act(h) + h + self.act(n) * n


def test_intermediate_with_other_users_is_not_fused():
    model = SharedIntermediate()
    fused = fusion.fuse(model)
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 0, "bias_gelu": 0}
    assert_same_outputs_and_grads(model, fused, torch.randn(3, 8))


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.LayerNorm(8, elementwise_affine=False), nn.GELU()),
        nn.Sequential(nn.LayerNorm(8, bias=False), nn.GELU()),
        nn.Sequential(nn.LayerNorm((2, 4)), nn.GELU()),
        nn.Sequential(nn.Linear(8, 8, bias=False), nn.GELU()),
        nn.Sequential(nn.Linear(8, 8), nn.ReLU()),
        nn.Sequential(nn.Linear(8, 8).double(), nn.GELU()).to(torch.bfloat16),
    ],
    ids=["ln-no-affine", "ln-no-bias", "ln-two-dims", "linear-no-bias", "relu", "bfloat16"],
)
def test_unsupported_patterns_are_left_alone(model):
    fused = fusion.fuse(model)
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 0, "bias_gelu": 0}
    shape = (3, 2, 4) if isinstance(model[0], nn.LayerNorm) and len(model[0].normalized_shape) == 2 else (3, 8)
    x = torch.randn(*shape, dtype=next(model.parameters(), torch.empty(0)).dtype)
    torch.testing.assert_close(fused(x), model(x))


# ------------------------------------------------------------------ torch.compile backend


@pytest.mark.parametrize("backend", ["openautoglm", fusion.backend])
def test_compile_backend_fuses_and_keeps_gradients(backend):
    torch._dynamo.reset()
    model = mlp("tanh")
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    assert_same_outputs_and_grads(model, compiled, torch.randn(4, 12))


@pytest.mark.slow
def test_make_backend_with_inductor():
    torch._dynamo.reset()
    model = mlp("none")
    compiled = torch.compile(model, backend=fusion.make_backend("inductor"), fullgraph=True)
    assert_same_outputs_and_grads(model, compiled, torch.randn(4, 12))


def test_make_backend_hands_the_fused_graph_to_the_inner_backend():
    seen = []

    def inner(gm, example_inputs):
        seen.append(fused_calls(gm))
        return gm.forward

    torch._dynamo.reset()
    model = Functional(approximate="tanh")
    compiled = torch.compile(model, backend=fusion.make_backend(inner), fullgraph=True)
    x = torch.randn(3, 12)
    torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert seen == [[("fused_bias_gelu", "tanh"), ("fused_layernorm_gelu", "tanh")]]


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module or torch.fx.GraphModule"):
        fusion.fuse(lambda x: x)
    with pytest.raises(TypeError, match="backend name or callable"):
        fusion.make_backend(3)


class ShapeBranch(nn.Module):
    """Control flow on a shape: symbolic_trace cannot capture it, torch.export can."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x):
        if x.shape[0] > 1:
            return self.act(self.fc(x))
        return x


def test_untraceable_module_is_captured_with_export_given_example_inputs():
    model = ShapeBranch()
    with pytest.raises(ValueError, match="pass example_inputs"):
        fusion.fuse(model)
    x = torch.randn(3, 6)
    fused = fusion.fuse(model, example_inputs=(x,))
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 0, "bias_gelu": 1}
    assert_same_outputs_and_grads(model, fused, x)


# ------------------------------------------------------------------ the GLM


def _glm_and_batch():
    from openautoglm.glm import CharTokenizer, GLMConfig, GLMModel, make_batch

    text = "the quick brown fox jumps over the lazy dog. " * 4
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    # float64, so that only a real difference (not summation order) can fail the comparison.
    model = GLMModel(GLMConfig(vocab_size=tok.vocab_size, n_layers=3, hidden=32, heads=4, max_len=64)).double()
    batch = make_batch([tok.encode(text[i : i + 40]) for i in (0, 7, 19)], tok, rng=0)
    return model, (batch["input_ids"], batch["position_ids"], batch["attention_mask"])


def test_fusion_applies_to_the_glm():
    """Every block's fc_1 -> GELU(tanh) becomes mm + fused_bias_gelu; logits and grads unchanged."""
    model, inputs = _glm_and_batch()
    fused = fusion.fuse(model)
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 0, "bias_gelu": 3}
    assert fused_calls(fused) == [("fused_bias_gelu", "tanh")] * 3
    assert_same_outputs_and_grads(model, fused, *inputs)
    # Same parameters, same names: a fused model saves and loads the same checkpoints.
    assert fused.state_dict().keys() == model.state_dict().keys()


def test_glm_under_the_compile_backend():
    from torch._dynamo.backends.registry import lookup_backend

    model, inputs = _glm_and_batch()
    seen = []

    def inner(gm, example_inputs):
        seen.extend(fused_calls(gm))
        return lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=fusion.make_backend(inner))
    assert_same_outputs_and_grads(model, compiled, *inputs)
    assert seen == [("fused_bias_gelu", "tanh")] * 3


class KeywordCalls(nn.Module):
    """Modules and functions called with keyword arguments only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = nn.GELU()
        self.ln = nn.LayerNorm(8)

    def forward(self, x):
        h = self.act(input=self.fc(input=x))
        return F.gelu(input=self.ln(input=h), approximate="tanh")


def test_keyword_arguments_are_recognised():
    model = KeywordCalls()
    fused = fusion.fuse(model)
    assert fused.meta["fusion_counts"] == {"layernorm_gelu": 1, "bias_gelu": 1}
    assert_same_outputs_and_grads(model, fused, torch.randn(3, 8))


class ExplicitBias(nn.Module):
    """gelu(x @ W.T + b): the bias added by hand, as Megatron-style code does.

    x -> linear(no bias) -> + b -> GELU         (fusable where shapes are known)
    y ------------------------> + z -> GELU      (z is (3, 1) but y's last dim is 1: broadcast, not a bias)
    """

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(10, 10) / 3)
        self.b = nn.Parameter(torch.randn(10))

    def forward(self, x, y, z):
        return F.gelu(F.linear(x, self.w) + self.b, approximate="tanh").sum() + F.gelu(y + z).sum()


def test_explicit_bias_add_fuses_where_shapes_are_known():
    model = ExplicitBias()
    inputs = (torch.randn(4, 10), torch.randn(3, 1), torch.randn(3))
    gm = torch.export.export(model, inputs).module()
    assert fusion.fuse_graph_module(gm) == {"layernorm_gelu": 0, "bias_gelu": 1}
    assert fused_calls(gm) == [("fused_bias_gelu", "tanh")]
    torch.testing.assert_close(gm(*inputs), model(*inputs), atol=1e-5, rtol=1e-5)

    seen = []

    def inner(gm, example_inputs):
        seen.extend(fused_calls(gm))
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=fusion.make_backend(inner), fullgraph=True)
    assert_same_outputs_and_grads(model, compiled, *inputs)
    assert seen == [("fused_bias_gelu", "tanh")]
    # A symbolic trace records no shapes: the add is left alone rather than guessed.
    assert fusion.fuse(model).meta["fusion_counts"]["bias_gelu"] == 0
