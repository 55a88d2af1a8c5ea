"""Tests for openautoglm.ops: every op against a pure-torch reference, gradcheck, opcheck, compile.

The compiled module openautoglm._C must be built (`pip install --no-build-isolation -e .` or
`python setup.py build_ext --inplace`); without it every test here fails with that instruction.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from openautoglm import ops


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
        ],
    ),
]
APPROXIMATE = ["none", "tanh"]
# Shapes of x: empty, one row, odd sizes, a single feature, a long row with a vector tail.
SHAPES = [(0, 8), (1, 7), (3, 5, 13), (5, 1), (2, 1031), (4, 16)]
TOL = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.float64: dict(atol=1e-12, rtol=1e-12)}


@pytest.fixture(autouse=True)
def _built() -> None:
    """Fail (not skip) with the build instruction when openautoglm._C is missing."""
    try:
        ops.load()
    except ops.OpsUnavailableError as exc:
        pytest.fail(str(exc))


def ref_bias_gelu(x: torch.Tensor, bias: torch.Tensor, approximate: str) -> torch.Tensor:
    return F.gelu(x + bias, approximate=approximate)


def ref_layernorm_gelu(x, weight, bias, eps, approximate):
    return F.gelu(F.layer_norm(x, (x.shape[-1],), weight, bias, eps), approximate=approximate)


def _inputs(shape, dtype, device, seed=0, noncontiguous=False):
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    if noncontiguous:
        # Same values, transposed storage: x.stride(-1) != 1.
        x = torch.randn(n, *shape[:-1], generator=g, dtype=dtype).movedim(0, -1)
        assert not x.is_contiguous()
    else:
        x = torch.randn(*shape, generator=g, dtype=dtype)
    weight = 1 + 0.3 * torch.randn(n, generator=g, dtype=dtype)
    bias = 0.5 * torch.randn(n, generator=g, dtype=dtype)
    grad = torch.randn(*shape, generator=g, dtype=dtype)
    return [t.to(device) for t in (x, weight, bias, grad)]


def _grads(fn, x, params, grad):
    leaves = [t.detach().clone().requires_grad_() for t in (x, *params)]
    out = fn(*leaves)
    out.backward(grad)
    return out.detach(), [t.grad for t in leaves]


# ------------------------------------------------------------------ reference checks


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("approximate", APPROXIMATE)
@pytest.mark.parametrize("shape", SHAPES + ["noncontiguous"])
def test_bias_gelu_matches_reference(shape, approximate, dtype, device):
    noncontig = shape == "noncontiguous"
    shape = (6, 3, 13) if noncontig else shape
    x, _, bias, grad = _inputs(shape, dtype, device, noncontiguous=noncontig)
    out, grads = _grads(lambda x, b: ops.fused_bias_gelu(x, b, approximate), x, [bias], grad)
    ref, ref_grads = _grads(lambda x, b: ref_bias_gelu(x, b, approximate), x, [bias], grad)
    assert out.shape == ref.shape and out.dtype == dtype and out.is_contiguous()
    torch.testing.assert_close(out, ref, **TOL[dtype])
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("approximate", APPROXIMATE)
@pytest.mark.parametrize("shape", SHAPES + ["noncontiguous"])
def test_layernorm_gelu_matches_reference(shape, approximate, dtype, device):
    noncontig = shape == "noncontiguous"
    shape = (6, 3, 13) if noncontig else shape
    x, weight, bias, grad = _inputs(shape, dtype, device, noncontiguous=noncontig)
    eps = 1e-5
    out, grads = _grads(
        lambda x, w, b: ops.fused_layernorm_gelu(x, w, b, eps, approximate), x, [weight, bias], grad
    )
    ref, ref_grads = _grads(
        lambda x, w, b: ref_layernorm_gelu(x, w, b, eps, approximate), x, [weight, bias], grad
    )
    assert out.shape == ref.shape and out.is_contiguous()
    # A one-feature LayerNorm is x - mean = 0 everywhere: grads are tiny differences of rounding.
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else TOL[dtype]
    torch.testing.assert_close(out, ref, **tol)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, **tol)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 9),
    n=st.integers(1, 40),
    approximate=st.sampled_from(APPROXIMATE),
    scale=st.floats(0.1, 20.0),
)
def test_fused_ops_agree_with_reference_on_random_shapes(rows, n, approximate, scale):
    """Both ops match eager on any (rows, n), including inputs far into GELU's tails."""
    torch.manual_seed(rows * 41 + n)
    x = scale * torch.randn(rows, n, dtype=torch.float64)
    w, b = torch.randn(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(ops.fused_bias_gelu(x, b, approximate), ref_bias_gelu(x, b, approximate))
    torch.testing.assert_close(
        ops.fused_layernorm_gelu(x, w, b, 1e-5, approximate), ref_layernorm_gelu(x, w, b, 1e-5, approximate)
    )


def test_float32_column_sums_stay_accurate_over_many_rows():
    """grad_bias and grad_weight sum 2^16 rows; float32 must stay close to a float64 sum."""
    x, weight, bias, grad = _inputs((1 << 16, 24), torch.float32, "cpu", seed=3)
    _, (_, gw, gb) = _grads(
        lambda x, w, b: ops.fused_layernorm_gelu(x, w, b, 1e-5, "tanh"), x, [weight, bias], grad
    )
    _, (_, rw, rb) = _grads(
        lambda x, w, b: ref_layernorm_gelu(x, w, b, 1e-5, "tanh"),
        x.double(), [weight.double(), bias.double()], grad.double(),
    )
    torch.testing.assert_close(gw.double(), rw, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(gb.double(), rb, atol=1e-3, rtol=1e-5)


def test_two_threads_give_the_same_result_as_one():
    """Per-thread partial sums are reduced correctly when at::parallel_for splits the rows."""
    x, weight, bias, grad = _inputs((512, 96), torch.float64, "cpu", seed=5)

    def run():
        return _grads(lambda x, w, b: ops.fused_layernorm_gelu(x, w, b, 1e-5, "none"), x, [weight, bias], grad)

    one = run()
    torch.set_num_threads(2)
    try:
        two = run()
    finally:
        torch.set_num_threads(1)
    torch.testing.assert_close(one[0], two[0], atol=0, rtol=0)
    for a, b in zip(one[1], two[1]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


# ------------------------------------------------------------------ gradcheck, opcheck, compile


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("approximate", APPROXIMATE)
@pytest.mark.parametrize("noncontiguous", [False, True])
def test_gradcheck_float64(approximate, noncontiguous, device):
    x, weight, bias, _ = _inputs((4, 3, 5), torch.float64, device, noncontiguous=noncontiguous)
    x, weight, bias = (t.requires_grad_() for t in (x, weight, bias))
    assert torch.autograd.gradcheck(lambda x, b: ops.fused_bias_gelu(x, b, approximate), (x, bias))
    assert torch.autograd.gradcheck(
        lambda x, w, b: ops.fused_layernorm_gelu(x, w, b, 1e-5, approximate), (x, weight, bias)
    )


@pytest.mark.parametrize("approximate", APPROXIMATE)
def test_gradgradcheck_float64(approximate):
    """Second derivatives go through the backward ops' own autograd formulas."""
    x, weight, bias, _ = _inputs((3, 6), torch.float64, "cpu", seed=2)
    x, weight, bias = (t.requires_grad_() for t in (x, weight, bias))
    assert torch.autograd.gradgradcheck(lambda x, b: ops.fused_bias_gelu(x, b, approximate), (x, bias))
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: ops.fused_layernorm_gelu(x, w, b, 1e-5, approximate), (x, weight, bias)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("approximate", APPROXIMATE)
def test_opcheck(approximate, device):
    x, weight, bias, grad = _inputs((3, 4, 7), torch.float32, device)
    lib = torch.ops.openautoglm
    for requires_grad in (False, True):
        xs, ws, bs = (t.clone().requires_grad_(requires_grad) for t in (x, weight, bias))
        torch.library.opcheck(lib.fused_bias_gelu, (xs, bs, approximate))
        torch.library.opcheck(lib.fused_layernorm_gelu, (xs, ws, bs, 1e-5, approximate))
    for requires_grad in (False, True):
        gs, xs, ws, bs = (t.clone().requires_grad_(requires_grad) for t in (grad, x, weight, bias))
        torch.library.opcheck(lib.fused_bias_gelu_backward, (gs, xs, bs, approximate))
        torch.library.opcheck(lib.fused_layernorm_gelu_backward, (gs, xs, ws, bs, 1e-5, approximate))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("approximate", APPROXIMATE)
def test_compile_fullgraph(approximate, device):
    """The ops trace through Dynamo + AOT autograd (fake kernels) and keep their gradients."""
    torch._dynamo.reset()
    x, weight, bias, grad = _inputs((2, 5, 12), torch.float32, device)

    def block(x, w, b):
        h = ops.fused_layernorm_gelu(x, w, b, 1e-5, approximate)
        return ops.fused_bias_gelu(h * 2.0, b, approximate)

    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    out, grads = _grads(compiled, x, [weight, bias], grad)
    ref, ref_grads = _grads(
        lambda x, w, b: ref_bias_gelu(ref_layernorm_gelu(x, w, b, 1e-5, approximate) * 2.0, b, approximate),
        x, [weight, bias], grad,
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compile_fullgraph_inductor():
    """Inductor keeps the custom op as an extern kernel and matches eager."""
    torch._dynamo.reset()
    x, weight, bias, grad = _inputs((3, 16), torch.float32, "cpu")
    compiled = torch.compile(
        lambda x, w, b: ops.fused_layernorm_gelu(x, w, b, 1e-5, "tanh") + 1.0, fullgraph=True
    )
    out, grads = _grads(compiled, x, [weight, bias], grad)
    ref, ref_grads = _grads(lambda x, w, b: ref_layernorm_gelu(x, w, b, 1e-5, "tanh") + 1.0, x, [weight, bias], grad)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ bad input


def test_bad_input_is_refused_with_a_clear_error():
    x, b = torch.randn(3, 4), torch.randn(4)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        ops.fused_bias_gelu(x, b, "erf")
    with pytest.raises(ValueError, match=r"bias must be 1-D with x.size\(-1\) = 4"):
        ops.fused_bias_gelu(x, torch.randn(5))
    with pytest.raises(ValueError, match="must be float32 or float64"):
        ops.fused_bias_gelu(x.half(), b.half())
    with pytest.raises(ValueError, match="same dtype"):
        ops.fused_layernorm_gelu(x, b.double(), b)
    with pytest.raises(ValueError, match="eps must be finite"):
        ops.fused_layernorm_gelu(x, b, b, -1.0)
    with pytest.raises(ValueError, match="at least one dimension"):
        ops.fused_bias_gelu(torch.tensor(1.0), b)


def test_raw_op_checks_its_arguments_in_cpp():
    """Calling torch.ops.openautoglm.* directly bypasses Python checks; the C++ TORCH_CHECKs hold."""
    x = torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="approximate must be 'none' or 'tanh'"):
        torch.ops.openautoglm.fused_bias_gelu(x, torch.randn(4), "erf")
    with pytest.raises(RuntimeError, match="weight must be 1-D"):
        torch.ops.openautoglm.fused_layernorm_gelu(x, torch.randn(2), torch.randn(4), 1e-5, "none")
    with pytest.raises(RuntimeError, match="grad must match x"):
        torch.ops.openautoglm.fused_bias_gelu_backward(torch.randn(2, 4), x, torch.randn(4), "none")


def test_cpu_check_agrees_with_torch():
    assert ops.cpu_supports_avx2() == (torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"))


def test_avx512_kernels_are_used_where_aten_uses_avx512():
    import importlib.util

    built = importlib.util.find_spec("openautoglm._C_avx512") is not None
    aten512 = torch.backends.cpu.get_cpu_capability() == "AVX512" and torch.version.cuda is None
    assert ops.kernel_capability() == ("AVX512" if built and aten512 else "AVX2")


_AVX2_CHECK = """
import torch, torch.nn.functional as F
from openautoglm import ops
assert ops.kernel_capability() == "AVX2", ops.kernel_capability()
for shape in [(0, 8), (1, 7), (3, 5, 13), (2, 1031)]:
    for approximate in ("none", "tanh"):
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        w, b = torch.randn(shape[-1], dtype=torch.float64), torch.randn(shape[-1], dtype=torch.float64)
        torch.testing.assert_close(ops.fused_bias_gelu(x.float(), b.float(), approximate),
                                   F.gelu(x.float() + b.float(), approximate=approximate), atol=2e-5, rtol=2e-5)
        torch.testing.assert_close(ops.fused_layernorm_gelu(x, w, b, 1e-5, approximate),
                                   F.gelu(F.layer_norm(x, (shape[-1],), w, b), approximate=approximate))
        if x.numel():
            assert torch.autograd.gradcheck(lambda x: ops.fused_layernorm_gelu(x, w, b, 1e-5, approximate), (x[:2],))
            assert torch.autograd.gradcheck(lambda x: ops.fused_bias_gelu(x, b, approximate), (x[:2],))
print("ok")
"""


def _run_with_capability(value: str, code: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, OPENAUTOGLM_CPU_CAPABILITY=value, OMP_NUM_THREADS="1")
    src = str(Path(ops.__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_avx2_build_matches_reference_when_forced():
    """The AVX2 module (the baseline every x86-64 CPU with AVX2 loads) is checked even here."""
    result = _run_with_capability("AVX2", _AVX2_CHECK)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_bad_capability_override_is_refused():
    code = "from openautoglm import ops\ntry:\n    ops.load()\nexcept ops.OpsUnavailableError as e:\n    print(e)\n"
    result = _run_with_capability("SSE4", code)
    assert "OPENAUTOGLM_CPU_CAPABILITY must be AVX2 or AVX512" in result.stdout, result.stderr[-3000:]


# ------------------------------------------------------------------ users' ops


def _scaled_tanh_cpu(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.tanh(x) * scale


def _scaled_tanh_fake(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.empty_like(x)


def _scaled_tanh_setup(ctx, inputs, output):
    x, scale = inputs
    ctx.save_for_backward(output)
    ctx.scale = scale


def _scaled_tanh_backward(ctx, grad):
    (y,) = ctx.saved_tensors
    return grad * (ctx.scale - y * y / ctx.scale), None


def test_register_op_adds_a_working_user_op():
    """A user op registered through ops.register_op passes opcheck, gradcheck and compile."""
    info = ops.register_op(
        "openautoglm_test::scaled_tanh",
        schema="(Tensor x, float scale) -> Tensor",
        cpu=_scaled_tanh_cpu,
        fake=_scaled_tanh_fake,
        backward=_scaled_tanh_backward,
        setup_context=_scaled_tanh_setup,
    )
    assert "openautoglm_test::scaled_tanh" in ops.registered_ops()
    assert ops.get_op("openautoglm_test::scaled_tanh") is info and info.has_autograd
    assert info.devices == ("cpu",) and not info.builtin
    assert info.schema.startswith("openautoglm_test::scaled_tanh(Tensor x, float scale)")
    op = info.op
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(op(x, 2.5), torch.tanh(x) * 2.5)
    assert torch.autograd.gradcheck(lambda x: op(x, 2.5), (x,))
    torch.library.opcheck(op, (x, 2.5))
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: op(x, 0.5) + 1, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), torch.tanh(x) * 0.5 + 1)

    with pytest.raises(ValueError, match="already registered"):
        ops.register_op("openautoglm_test::scaled_tanh", fake=_scaled_tanh_fake)


def test_register_op_refuses_malformed_requests():
    with pytest.raises(ValueError, match="namespace::name"):
        ops.register_op("scaled_tanh", fake=_scaled_tanh_fake)
    with pytest.raises(ValueError, match="both backward= and setup_context="):
        ops.register_op("openautoglm_test::x1", fake=_scaled_tanh_fake, backward=_scaled_tanh_backward)
    with pytest.raises(ValueError, match="signature without the op's name"):
        ops.register_op("openautoglm_test::x3", schema="x3(Tensor x) -> Tensor", fake=_scaled_tanh_fake)
    with pytest.raises(ValueError, match="needs schema="):
        ops.register_op("openautoglm_test::x2", fake=_scaled_tanh_fake, cpu=_scaled_tanh_cpu)
    with pytest.raises(ValueError, match="is not defined"):
        ops.register_op("openautoglm_test::never_declared", fake=_scaled_tanh_fake)
    with pytest.raises(KeyError, match="registered:"):
        ops.get_op("openautoglm_test::missing")


def test_builtin_ops_are_listed():
    names = ops.registered_ops()
    for name in ("fused_bias_gelu", "fused_bias_gelu_backward", "fused_layernorm_gelu", "fused_layernorm_gelu_backward"):
        assert ops.get_op(f"openautoglm::{name}").builtin
        assert "cpu" in ops.get_op(f"openautoglm::{name}").devices
        assert f"openautoglm::{name}" in names
    assert ops.get_op("openautoglm::fused_bias_gelu").has_autograd


@pytest.mark.parametrize("approximate", APPROXIMATE)
def test_float32_tails_match_eager(approximate):
    """The float32 kernels use fast exp/erf polynomials: check them where GELU saturates."""
    x = torch.linspace(-40, 40, 8001, dtype=torch.float32).reshape(1, -1)
    zero = torch.zeros(x.shape[-1])
    out, (gx, _) = _grads(lambda x, b: ops.fused_bias_gelu(x, b, approximate), x, [zero], torch.ones_like(x))
    ref, (rx, _) = _grads(lambda x, b: ref_bias_gelu(x, b, approximate), x, [zero], torch.ones_like(x))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx, rx, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_benchmark_script_runs(tmp_path, monkeypatch):
    """benchmarks/ops.py --quick writes a table with every case (keeps the script from rotting)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ops.py"
    # As `python benchmarks/ops.py` would: its folder first on sys.path (for benchmarks/_header.py).
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location("benchmark_ops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "ops.md"
    assert module.main(["--quick", "--output", str(out)]) == 0
    table = out.read_text()
    assert "benchmarks/ops.py --quick" in table
    for case in ("bias+GELU forward (none)", "LayerNorm+GELU forward+backward (tanh)", "GLM training step"):
        assert case in table
    assert "## CUDA" in table
