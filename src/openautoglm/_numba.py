"""The lazy numba JIT every compiled kernel shares.

``HAVE_NUMBA`` says whether numba is importable (and not disabled with
``OPENAUTOGLM_NO_NUMBA=1``); nothing imports numba before a kernel's first call, so
``import openautoglm`` stays fast. A kernel module lists its helpers in dependency order and calls
:func:`jit` once; :func:`python` returns a helper's uncompiled function (the fallback loop).
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["HAVE_NUMBA", "jit", "python"]

#: numba is importable (and not disabled with OPENAUTOGLM_NO_NUMBA=1).
HAVE_NUMBA = (importlib.util.find_spec("numba") is not None
              and not os.environ.get("OPENAUTOGLM_NO_NUMBA"))


def jit(namespace: dict[str, Any], helpers: Sequence[str]) -> None:
    """Replace each of ``helpers`` in ``namespace`` (a module's globals) by its numba dispatcher.

    In dependency order, since a compiled helper calls the dispatchers of those before it; cached
    on disk by numba where it can write, else compiled per process.
    """
    from numba import njit

    for name in helpers:
        try:
            namespace[name] = njit(cache=True)(namespace[name])
        except RuntimeError:  # no writable cache location: compile per process instead
            namespace[name] = njit(namespace[name])


def python(namespace: dict[str, Any], name: str) -> Any:
    """The uncompiled function of a helper (after :func:`jit` the global is a numba dispatcher)."""
    f = namespace[name]
    return getattr(f, "py_func", f)
