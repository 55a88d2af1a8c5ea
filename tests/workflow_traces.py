"""The real WfFormat traces beside the repository (``../shared/workflows``), for any test.

A module of its own, imported by name: ``from conftest import ...`` would reach whichever
``conftest`` module pytest loaded last (``tests/serve/conftest.py`` is one too).
"""
from __future__ import annotations

from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[1] / ".." / "shared" / "workflows"


def smallest_traces(workflows: Path, per_family: int = 1) -> list[Path]:
    """The smallest trace files of each Pegasus family (by file size)."""
    out = []
    for fam in sorted((workflows / "pegasus").iterdir()):
        if fam.is_dir():
            out += sorted(fam.glob("*.json"), key=lambda p: p.stat().st_size)[:per_family]
    return out
