""":func:`register_op`: one call declares a custom operator's schema, kernels, fake kernel and
backward; :func:`registered_ops` and :func:`get_op` list what is known.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

__all__ = ["register_op", "OpInfo", "registered_ops", "get_op"]


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
