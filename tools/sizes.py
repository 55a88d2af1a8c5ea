"""Modules over ~400 lines and functions over 80 lines in src/openautoglm (STYLE.md's limits).

    python tools/sizes.py            # list them; exit 1 when any is over and not exempt

Compiled kernels (``_kernel*.py``, numba helpers) are exempt, as STYLE.md says.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "openautoglm"
MODULE_LINES = 400
FUNCTION_LINES = 80
EXEMPT_MODULES = {"simulate/_kernel.py", "core/_kernels.py"}


def oversize(root: Path = ROOT) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(modules, functions)`` over the limits, each as (name, lines), largest first."""
    modules, functions = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in EXEMPT_MODULES:
            continue
        text = path.read_text()
        n = len(text.splitlines())
        if n > MODULE_LINES:
            modules.append((rel, n))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    functions.append((f"{rel}:{node.lineno} {node.name}", length))
    return (sorted(modules, key=lambda x: -x[1]), sorted(functions, key=lambda x: -x[1]))


def main() -> int:
    modules, functions = oversize()
    for name, n in modules:
        print(f"module   {n:4d} lines  {name}")
    for name, n in functions:
        print(f"function {n:4d} lines  {name}")
    return 1 if modules or functions else 0


if __name__ == "__main__":
    sys.exit(main())
