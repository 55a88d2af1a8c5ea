"""Keep a user's source lines in remote tracebacks, whatever cloudpickle does to code objects.

A task function that is not importable on a worker (a lambda, a function of a test module or a
notebook) travels by value. cloudpickle >= 3.1.3 sets ``co_filename = "<dynamic-code>"`` on
every code object it pickles that way, so a worker's traceback reads
``File "<dynamic-code>", line 77, in <lambda>`` and loses the line that raised.

:class:`SourcedFunction` fixes that at the cause: it pickles the function together with its
file name and the source lines of that file (read here, where the file exists), and when it is
unpickled it puts the file name back on the code objects and the lines into :mod:`linecache`.
Tracebacks formatted on the worker, and those rebuilt on the client, then show the user's line.

Read ``tests/integration/test_faults.py::test_process_cluster_failure_keeps_partial``.
"""
from __future__ import annotations

import linecache
import os
import types
from typing import Any, Callable

__all__ = ["SourcedFunction", "MAX_SOURCE_BYTES"]

#: Source files larger than this travel without their lines (tracebacks still name the file).
MAX_SOURCE_BYTES = 256 * 1024


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and every code object nested in it, renamed to ``filename``."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


class SourcedFunction:
    """A callable that travels with the file name and source lines of the function it wraps.

    Args:
        func: Any callable; only Python functions carry source (others are called as they are).

    Example:
        >>> import pickle
        >>> f = SourcedFunction(len)
        >>> pickle.loads(pickle.dumps(f))("abc")
        3
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        code = getattr(func, "__code__", None)
        self.filename: str | None = code.co_filename if code is not None else None
        self.lines: list[str] = []
        if self.filename and not self.filename.startswith("<"):
            lines = linecache.getlines(self.filename)
            if sum(map(len, lines)) <= MAX_SOURCE_BYTES:
                self.lines = lines

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {"func": self.func, "filename": self.filename, "lines": self.lines}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        code = getattr(self.func, "__code__", None)
        if code is None or not self.filename or code.co_filename == self.filename:
            return  # pickled by reference, or a pickler that kept the name: nothing was lost
        try:
            self.func.__code__ = _with_filename(code, self.filename)
        except (AttributeError, TypeError, ValueError):
            return  # a callable whose code cannot be replaced: its traceback stays as it is
        if self.lines and not os.path.exists(self.filename):
            # mtime None: linecache.checkcache keeps the entry (there is no file to compare with).
            linecache.cache[self.filename] = (sum(map(len, self.lines)), None, self.lines,
                                              self.filename)

    def __repr__(self) -> str:
        return f"SourcedFunction({self.func!r})"
