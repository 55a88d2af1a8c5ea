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

Read ``tests/test_ops.py`` for the reference implementations each op is checked against.

Example:
    >>> import torch
    >>> from openautoglm import ops
    >>> x, b = torch.randn(4, 8), torch.randn(8)
    >>> y = ops.fused_bias_gelu(x, b, approximate="tanh")
    >>> torch.allclose(y, torch.nn.functional.gelu(x + b, approximate="tanh"), atol=1e-5)
    True
"""
from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

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

NAMESPACE = "openautoglm"
APPROXIMATE = ("none", "tanh")

BUILD_HINT = (
    "Build it from the source tree with `pip install --no-build-isolation -e .` "
    "(torch==2.13.0, setuptools, wheel and ninja installed first) or "
    "`python setup.py build_ext --inplace`."
)


class OpsUnavailableError(RuntimeError):
    """The compiled operators cannot be used here (not built, or the CPU lacks AVX2/FMA)."""


# ------------------------------------------------------------------ loading


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def cpu_supports_avx2() -> bool:
    """Whether this CPU runs the AVX2 + FMA code that ``openautoglm._C`` is compiled to.

    Reads ``/proc/cpuinfo`` on Linux and falls back to PyTorch's own CPU capability elsewhere.

    Returns:
        True when both AVX2 and FMA are present.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    flags = _cpu_flags()
    if flags is not None:
        return {"avx2", "fma"} <= flags
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


_AVX512_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


def _extension_candidates() -> list[str]:
    """Modules to try, best first: the AVX-512 build only where ATen itself runs AVX-512.

    ``OPENAUTOGLM_CPU_CAPABILITY=AVX2`` (or ``AVX512``) overrides the choice. With a CUDA torch
    only ``_C`` carries the CUDA kernels, so it is the one loaded.
    """
    override = os.environ.get("OPENAUTOGLM_CPU_CAPABILITY", "").strip().upper()
    if override not in ("", "AVX2", "AVX512"):
        raise OpsUnavailableError(
            f"OPENAUTOGLM_CPU_CAPABILITY must be AVX2 or AVX512, got {override!r}; unset it to choose automatically"
        )
    if override == "AVX512":
        flags = _cpu_flags()
        if flags is not None and not _AVX512_FLAGS <= flags:
            raise OpsUnavailableError(
                "OPENAUTOGLM_CPU_CAPABILITY=AVX512 but this CPU lacks "
                f"{', '.join(sorted(_AVX512_FLAGS - flags))}; unset it or use AVX2"
            )
        return ["openautoglm._C_avx512"]
    if override == "" and torch.version.cuda is None and torch.backends.cpu.get_cpu_capability() == "AVX512":
        return ["openautoglm._C_avx512", "openautoglm._C"]
    return ["openautoglm._C"]


_load_error: OpsUnavailableError | None = None
_loaded_module: str | None = None


def load() -> None:
    """Load the compiled operators (once) and register fake and autograd kernels for them.

    Loads ``openautoglm._C_avx512`` where ATen runs AVX-512 kernels (and it was built), else
    ``openautoglm._C`` (AVX2 + FMA, and the CUDA kernels where torch has CUDA).

    Raises:
        OpsUnavailableError: when the CPU lacks AVX2/FMA (the module would crash with an illegal
            instruction) or the extension is not built; the message says how to fix it.
    """
    global _load_error, _loaded_module
    if _loaded_module is not None:
        return
    if _load_error is not None:
        raise _load_error
    if not cpu_supports_avx2():
        _load_error = OpsUnavailableError(
            f"openautoglm._C is compiled for x86-64 with AVX2 and FMA, which this CPU "
            f"({platform.machine()}, torch capability {torch.backends.cpu.get_cpu_capability()}) "
            "lacks; use the eager PyTorch modules instead (do not apply openautoglm.fusion)."
        )
        raise _load_error
    try:
        candidates = _extension_candidates()
    except OpsUnavailableError as exc:
        _load_error = exc
        raise
    errors = []
    for name in candidates:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        _loaded_module = name
        break
    else:
        _load_error = OpsUnavailableError(
            f"the compiled operators could not be imported ({'; '.join(errors)}). {BUILD_HINT}"
        )
        raise _load_error
    _register_builtin_ops()


def kernel_capability() -> str:
    """``"AVX512"`` or ``"AVX2"``: the instruction set of the CPU kernels in use.

    Raises:
        OpsUnavailableError: when the operators cannot load (see :func:`load`).
    """
    load()
    return "AVX512" if _loaded_module == "openautoglm._C_avx512" else "AVX2"


def is_available() -> bool:
    """True when the compiled operators load on this machine (see :func:`load` for why not)."""
    try:
        load()
    except OpsUnavailableError:
        return False
    return True


# ------------------------------------------------------------------ registry


@dataclass
class OpInfo:
    """One operator known to openautoglm.

    Attributes:
        name: the qualified name, ``"namespace::op"``.
        schema: its schema string (as ``torch.library`` prints it).
        has_autograd: whether a backward formula is registered.
        builtin: True for the ops compiled into ``openautoglm._C``.
        devices: the devices with a kernel (``"cpu"``, ``"cuda"``).
    """

    name: str
    schema: str
    has_autograd: bool
    builtin: bool = False
    devices: tuple[str, ...] = field(default_factory=tuple)

    @property
    def op(self) -> Any:
        """The ``torch.ops`` overload packet to call."""
        ns, name = self.name.split("::")
        return getattr(getattr(torch.ops, ns), name)


_REGISTRY: dict[str, OpInfo] = {}


def _op_packet(qualname: str) -> Any:
    ns, name = qualname.split("::")
    try:
        return getattr(getattr(torch.ops, ns), name)
    except (AttributeError, RuntimeError) as exc:
        raise ValueError(
            f"operator {qualname} is not defined: pass `schema=` to define it from Python, or "
            "declare it in C++ with TORCH_LIBRARY and import the extension first"
        ) from exc


def register_op(
    qualname: str,
    *,
    fake: Callable[..., Any],
    schema: str | None = None,
    cpu: Callable[..., Any] | None = None,
    cuda: Callable[..., Any] | None = None,
    backward: Callable[..., Any] | None = None,
    setup_context: Callable[..., Any] | None = None,
) -> OpInfo:
    """Register an operator with the same pattern as openautoglm's own ops.

    The pattern: a schema declared once (``TORCH_LIBRARY`` in C++ or ``schema=`` here), a kernel
    per device, a fake kernel (shapes and dtypes only, used by ``torch.compile`` and
    ``torch.export``) and an autograd formula (``backward`` + ``setup_context``, as
    ``torch.library.register_autograd`` takes them). Test the result with
    ``torch.library.opcheck``.

    Args:
        qualname: ``"namespace::name"``, e.g. ``"mylib::scaled_tanh"``.
        fake: the fake kernel: same signature as the op, returns empty tensors of the right shape.
        schema: the schema without the name, e.g. ``"(Tensor x, float scale) -> Tensor"``; omit it
            when the op is already declared in C++.
        cpu: a Python CPU kernel (needs ``schema``); C++ ops register theirs in C++.
        cuda: a Python CUDA kernel (e.g. Triton-backed), optional.
        backward: ``backward(ctx, *grads) -> one gradient (or None) per input``.
        setup_context: ``setup_context(ctx, inputs, output)`` saving what ``backward`` needs;
            required with ``backward``.

    Returns:
        The :class:`OpInfo` now listed by :func:`registered_ops`.

    Raises:
        ValueError: on a malformed name, a kernel without a schema, an op registered twice, or a
            backward without ``setup_context``.
    """
    if qualname.count("::") != 1 or not all(qualname.split("::")):
        raise ValueError(f"qualname must look like 'namespace::name', got {qualname!r}")
    if qualname in _REGISTRY:
        raise ValueError(f"operator {qualname} is already registered; pick another name")
    if (backward is None) != (setup_context is None):
        raise ValueError(
            "pass both backward= and setup_context= (setup_context saves what backward reads)"
        )
    if schema is not None:
        if not schema.lstrip().startswith("("):
            raise ValueError(
                f"schema= is the signature without the op's name, e.g. '(Tensor x, float scale) -> Tensor', "
                f"got {schema!r}"
            )
        torch.library.define(qualname, schema)
    elif cpu is not None or cuda is not None:
        raise ValueError(
            "a Python kernel needs schema= (e.g. '(Tensor x) -> Tensor'); C++ kernels are "
            "registered in C++ with TORCH_LIBRARY_IMPL"
        )
    packet = _op_packet(qualname)
    devices = []
    for device, kernel in (("cpu", cpu), ("cuda", cuda)):
        if kernel is not None:
            torch.library.impl(qualname, device, kernel)
            devices.append(device)
    torch.library.register_fake(qualname, fake)
    if backward is not None:
        torch.library.register_autograd(qualname, backward, setup_context=setup_context)
    info = OpInfo(
        name=qualname,
        schema=str(packet.default._schema),
        has_autograd=backward is not None,
        devices=tuple(devices),
    )
    _REGISTRY[qualname] = info
    return info


def registered_ops() -> list[str]:
    """Names of the operators registered through :func:`register_op` (built-ins included once loaded)."""
    return sorted(_REGISTRY)


def get_op(qualname: str) -> OpInfo:
    """The :class:`OpInfo` of a registered operator.

    Raises:
        KeyError: naming the registered operators when ``qualname`` is not one of them.
    """
    try:
        return _REGISTRY[qualname]
    except KeyError:
        raise KeyError(f"no operator {qualname!r}; registered: {registered_ops()}") from None


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


# ------------------------------------------------------------------ public functions


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
