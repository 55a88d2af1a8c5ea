"""The header of every benchmark table: one phrasing of the regenerate command and a machine
line measured when the benchmark runs, never typed by hand.

Usage, in a script run as ``python benchmarks/<name>.py`` (Python puts ``benchmarks/`` on
``sys.path``, so this imports without any path hack)::

    from _header import header

    lines = header("Import time")            # '# Import time', '', 'Regenerate: ...', '', 'Machine: ...', ''
    lines += ["| ... |", ...]

Call :func:`header` when the table is written (after the measurements) so the versions line
lists what the benchmark really imported; :func:`machine` alone gives the machine line (e.g. to
add a load average taken before the runs).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["header", "machine", "regenerate"]

#: Packages whose version is named when the benchmark imported them.
_VERSIONED = ("numpy", "networkx", "numba", "torch", "dask", "distributed", "optuna", "fastapi")


def regenerate(argv: Sequence[str] | None = None) -> str:
    """``Regenerate: `nice python benchmarks/<script> <args>```, with the arguments it ran with.

    Args:
        argv: the script and its arguments (default ``sys.argv``).
    """
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    name = f"benchmarks/{script.name}" if script.suffix == ".py" else argv[0]
    cmd = " ".join(["nice", "python", name, *(shlex.quote(a) for a in argv[1:])])
    return (f"Regenerate: `{cmd}` (from the repository root, with the package installed: "
            "`pip install -e .`)")


def machine(load_before: float | None = None) -> str:
    """``Machine: ...``: CPUs (``os.cpu_count()``), architecture, load average now, versions.

    Args:
        load_before: a 1-minute load average taken before the measurements, shown beside now's.
    """
    one, five, fifteen = os.getloadavg()
    load = f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) when written"
    if load_before is not None:
        load += f", {load_before:.1f} (1 min) before the runs"
    versions = [f"Python {platform.python_version()}"]
    for pkg in _VERSIONED:
        if pkg in sys.modules:
            try:
                versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
            except importlib.metadata.PackageNotFoundError:
                pass
    return (f"Machine: {os.cpu_count()} CPUs ({platform.machine()}), {load}; "
            f"{', '.join(versions)}.")


def header(title: str, argv: Sequence[str] | None = None,
           load_before: float | None = None) -> list[str]:
    """The opening lines of a results table: title, :func:`regenerate`, :func:`machine`.

    Args:
        title: the table's title (without ``#``).
        argv: as :func:`regenerate`.
        load_before: as :func:`machine`.

    Returns:
        Markdown lines, each section followed by a blank line.
    """
    return [f"# {title}", "", regenerate(argv), "", machine(load_before), ""]
