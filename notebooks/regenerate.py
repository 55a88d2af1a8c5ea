"""Execute the notebooks top to bottom and commit-ready their outputs.

Usage, from the repository root (the real traces must be in ../shared/workflows)::

    PYTHONPATH=src nice .venv/bin/python notebooks/regenerate.py            # rewrite in place
    PYTHONPATH=src nice .venv/bin/python notebooks/regenerate.py --check    # compare only

Each notebook runs with nbclient in its own folder, on one torch thread, with ``src`` on the
kernel's path. Then :func:`scrub` makes the outputs stable and portable: warnings the
environment prints on stderr (e.g. tqdm's "IProgress not found") are dropped, execution counts
renumbered, timing metadata removed, and any absolute path of this machine (the repository,
the home folder, the Python prefix) is an error, not something to commit. ``--check`` (used by
tests/test_notebook.py) exits 1 when the committed text outputs differ from a fresh run.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(Path(__file__).resolve().parent.glob("*.ipynb"))


def machine_paths() -> list[str]:
    """Absolute paths of this machine that must not appear in committed outputs."""
    paths = {str(ROOT), str(ROOT.parent), str(Path.home()), sys.prefix, sys.base_prefix}
    return sorted((p for p in paths if len(p) > 1), key=len, reverse=True)


def scrub(nb: Any) -> list[str]:
    """Make ``nb``'s outputs stable in place; return the machine paths still found in them."""
    count = 0
    found = []
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue  # the environment's warnings, not the notebook's content
            if "execution_count" in out:
                out["execution_count"] = count
            kept.append(out)
            text = str(out.get("text", "")) + "".join(str(v) for k, v in out.get("data", {}).items()
                                                      if k.startswith("text/"))
            found += [p for p in machine_paths() if p in text]
        cell.outputs = kept
    return found


def text_outputs(nb: Any) -> list[list[str]]:
    """Per code cell, its text outputs (stdout and text/plain), for comparing two runs."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            out.append([str(o.get("text", "")) if o.get("output_type") == "stream"
                        else str(o.get("data", {}).get("text/plain", ""))
                        for o in cell.get("outputs", [])
                        if o.get("output_type") in ("stream", "execute_result", "display_data")
                        and "image/png" not in o.get("data", {})])
    return out


def execute(path: Path, timeout: int = 300) -> Any:
    """Run the notebook at ``path`` in its folder and return it, outputs scrubbed."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "OMP_NUM_THREADS", "OPENAUTOGLM_TORCH_THREADS")}
    # The kernel inherits this process's environment: src importable, one thread.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), saved["PYTHONPATH"]) if p)
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENAUTOGLM_TORCH_THREADS"] = "1"
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    found = scrub(nb)
    if found:
        raise RuntimeError(f"{path.name}: outputs show this machine's paths {sorted(set(found))}; "
                           "print paths relative to the repository instead")
    return nb


def main(argv: list[str] | None = None) -> int:
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed outputs; write nothing")
    ap.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    args = ap.parse_args(argv)
    stale = []
    for path in args.notebooks:
        fresh = execute(path)
        if args.check:
            if text_outputs(nbformat.read(path, as_version=4)) != text_outputs(fresh):
                stale.append(path.name)
        else:
            nbformat.write(fresh, path)
            print(f"wrote {path}")
    if stale:
        print(f"stale outputs in {', '.join(stale)}: run python notebooks/regenerate.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
