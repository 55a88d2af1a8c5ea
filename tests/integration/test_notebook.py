"""notebooks/learned_priorities.ipynb runs top to bottom (nbclient), as a user would run it, and
its committed outputs are what today's code prints (regenerate: notebooks/regenerate.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "learned_priorities.ipynb"


def _regenerate():
    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "notebooks" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_learned_priorities_notebook_runs(workflows_dir):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    regenerate = _regenerate()
    nb = regenerate.execute(NOTEBOOK, timeout=300)  # raises on an error or a machine path
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # priority/share plots, the two Gantt charts, the win/loss bars
    text = "".join(o.get("text", "") for o in outputs)
    assert "Spearman correlation" in text
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert regenerate.text_outputs(committed) == regenerate.text_outputs(nb), (
        "the committed outputs are stale: run "
        "`PYTHONPATH=src python notebooks/regenerate.py` and commit the notebook")


def test_committed_notebook_shows_no_machine_paths():
    """The committed outputs hold no absolute path of the machine that ran them."""
    nbformat = pytest.importorskip("nbformat")
    regenerate = _regenerate()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    texts = [str(o.get("text", "")) + "".join(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
             for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    blob = "\n".join(texts)
    for marker in ["/work/", "/home/", "/Users/", "site-packages", *regenerate.machine_paths()]:
        assert marker not in blob, f"committed notebook output shows {marker!r}"
    assert " at 0x" not in blob, "an object's memory address (a repr, not a value) is committed"
