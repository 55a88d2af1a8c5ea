"""The lazy numba JIT every compiled kernel shares.

``HAVE_NUMBA`` says whether numba is importable (and not disabled with
``OPENAUTOGLM_NO_NUMBA=1``); nothing imports numba before a kernel's first call, so
``import openautoglm`` stays fast. A kernel module lists its helpers in dependency order in a :class:`Kernels`
(``_KERNELS = Kernels(globals(), ("_helper", ...))``): ``_KERNELS.compiled(name)`` compiles them
all on first use (:func:`jit`) and ``_KERNELS.python(name)`` is the uncompiled function (the
fallback loop, :func:`python`).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["HAVE_NUMBA", "SMALL", "Kernels", "jit", "python", "worth_compiling"]

#: numba is importable (and not disabled with OPENAUTOGLM_NO_NUMBA=1).
HAVE_NUMBA = (importlib.util.find_spec("numba") is not None
              and not os.environ.get("OPENAUTOGLM_NO_NUMBA"))


#: Below this many tasks, one call's Python loop takes milliseconds while importing numba and
#: loading the cached kernels takes about a second (several on a loaded machine).
SMALL = 256


def worth_compiling(n: int) -> bool:
    """Whether a one-off kernel call over ``n`` tasks should run compiled.

    True when numba is there and the call is large or numba is loaded already (then the
    compiled call is cheap). Both paths give the same numbers (the tests compare them); this
    only keeps ``oag.schedule(small_graph, cluster, "heft")`` from paying numba's import.
    Searches that call a kernel thousands of times (``ListEvaluator``) compile regardless.
    """
    return HAVE_NUMBA and (n >= SMALL or "numba" in sys.modules)


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


class Kernels:
    """The compiled helpers of one kernel module, JIT-compiled together on first use.

    Args:
        namespace: the module's ``globals()``.
        helpers: the helpers' names, in dependency order (see :func:`jit`).
    """

    def __init__(self, namespace: dict[str, Any], helpers: Sequence[str]) -> None:
        self._namespace = namespace
        self._helpers = tuple(helpers)
        self._compiled = False

    def compiled(self, name: str) -> Any:
        """The numba dispatcher of helper ``name`` (compiling every helper once per process)."""
        if not self._compiled:
            jit(self._namespace, self._helpers)
            self._compiled = True
        return self._namespace[name]

    def python(self, name: str) -> Any:
        """The uncompiled function of helper ``name``."""
        return python(self._namespace, name)
