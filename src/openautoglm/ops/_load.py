"""Loading the compiled operators: the CPU check (AVX2 + FMA, AVX-512) and the choice of
``openautoglm._C`` or ``openautoglm._C_avx512``.
"""
from __future__ import annotations

import importlib
import os
import platform

import torch

from openautoglm.ops.gelu import _register_builtin_ops

__all__ = ["OpsUnavailableError", "load", "is_available", "cpu_supports_avx2", "kernel_capability"]


BUILD_HINT = (
    "Build it from the source tree with `pip install --no-build-isolation -e .` "
    "(torch==2.13.0, setuptools, wheel and ninja installed first) or "
    "`python setup.py build_ext --inplace`."
)


class OpsUnavailableError(RuntimeError):
    """The compiled operators cannot be used here (not built, or the CPU lacks AVX2/FMA)."""
_AVX512_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


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
            "lacks; use the eager PyTorch modules instead (do not apply openautoglm.ops.fusion)."
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
