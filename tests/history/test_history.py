"""History: SQLite storage (several writers, refusing foreign files), and the cost model."""
from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import sqlite3

import networkx as nx
import numpy as np
import pytest

from openautoglm.core.graph import TaskGraph
from openautoglm.history.database import HistoryError, default_history_path
from openautoglm.history.store import Execution, History, Transfer
from openautoglm.history.cost_model import task_identity


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_roundtrip_and_wal(tmp_path):
    path = tmp_path / "h.sqlite"
    with History(path) as h:
        run = h.record_run(
            [Execution("load-1", "load", worker="w0", start=1.0, end=3.0, duration=2.0, cost=2.0,
                       input_size=10, output_size=100),
             {"task": "fit-1", "identity": "fit", "status": "error", "error": "ValueError: x"}],
            [Transfer("load-1", "fit-1", "load", "fit", nbytes=100, duration=0.5)],
            pipeline="p", policy="heft", realised_makespan=3.0)
    with History(path) as h:
        rows = h.executions(run)
        assert [(r["task"], r["status"], r["worker"]) for r in rows] == [
            ("load-1", "ok", "w0"), ("fit-1", "error", None)]
        assert rows[1]["error"] == "ValueError: x" and rows[0]["pipeline"] == "p"
        assert h.transfers(run)[0]["nbytes"] == 100
        assert h.runs()[0]["policy"] == "heft"
        assert h._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_field_is_refused():
    with History(":memory:") as h:
        with pytest.raises(ValueError, match="colour"):
            h.record_run([{"task": "a", "identity": "a", "colour": "red"}])


def test_garbage_file_refused_and_untouched(tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is not a database\x00" * 50)
    before = digest(path)
    with pytest.raises(HistoryError, match="not an SQLite database.*left untouched"):
        History(path)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.sqlite"]  # no -wal/-shm


def test_damaged_sqlite_refused_and_untouched(tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    before = digest(path)
    with pytest.raises(HistoryError, match="untouched"):
        History(path)
    assert digest(path) == before


def test_foreign_sqlite_refused_and_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(HistoryError, match="does not belong to openautoglm.*users"):
        History(path)
    assert digest(path) == before


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "h.sqlite"
    History(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE oag_meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match="newer openautoglm"):
        History(path)


def test_directory_refused(tmp_path):
    with pytest.raises(HistoryError, match="directory"):
        History(tmp_path)


def test_default_path_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAUTOGLM_HISTORY", str(tmp_path / "x.sqlite"))
    assert default_history_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("OPENAUTOGLM_HISTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_history_path() == tmp_path / "cache" / "openautoglm" / "history.sqlite"
    with History() as h:
        h.record_run([Execution("a", "a", duration=1.0)])
    assert (tmp_path / "cache" / "openautoglm" / "history.sqlite").exists()


def _writer(path: str, worker: int, runs: int) -> None:
    h = History(path, timeout=60)
    for r in range(runs):
        h.record_run([Execution(f"t{worker}-{r}-{i}", "t", worker=str(worker), duration=1.0,
                                cost=1.0) for i in range(20)], run_id=f"{worker}-{r}")
    h.close()


def test_several_processes_write_at_once(tmp_path):
    """4 processes (one of them creating the file) each write 10 runs of 20 rows."""
    path = str(tmp_path / "shared.sqlite")
    # fork: cheap on Linux (the writers only touch SQLite); spawn elsewhere.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 10)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with History(path) as h:
        assert len(h.runs()) == 40
        assert len(h.executions()) == 800
        assert h.estimate("t") == (1.0, 0.0, 800)


def test_median_estimate_with_mad_uncertainty():
    with History(":memory:") as h:
        h.record_run([Execution("x", "fit", cost=c, duration=c) for c in [1.0, 2.0, 3.0, 4.0, 100.0]])
        est = h.estimate("fit")
        assert est.cost == 3.0 and est.n == 5
        assert est.std == pytest.approx(1.4826 * 1.0)  # robust to the 100 s outlier
        assert h.estimate("never-ran") is None
        h.record_run([Execution("y", "once", cost=2.0)])
        assert math.isnan(h.estimate("once").std)


def test_linear_in_input_size():
    """cost = 0.5 + 2e-6 * bytes, with a little noise: the line is found and extrapolates."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1_000, 1_000_000, 30)
    costs = 0.5 + 2e-6 * sizes + rng.normal(0, 0.01, 30)
    with History(":memory:") as h:
        h.record_run([Execution(f"p{i}", "parse", cost=float(c), input_size=int(s))
                      for i, (c, s) in enumerate(zip(costs, sizes))])
        assert h.estimate("parse", 2_000_000).cost == pytest.approx(4.5, rel=0.02)
        assert h.estimate("parse", 10_000).cost == pytest.approx(0.52, abs=0.02)
        assert h.estimate("parse", 10_000).std < 0.02


def test_failed_attempts_do_not_count_as_costs():
    with History(":memory:") as h:
        h.record_run([Execution("a", "a", cost=1.0),
                      Execution("a", "a", status="error", cost=50.0, error="boom")])
        est = h.estimate("a")
        assert (est.cost, est.n) == (1.0, 1)


def test_refine_costs_and_edges():
    """
    load-1 --> fit-1 --> save-1
    history knows load and fit, and the load->fit transfer; save keeps its cost.
    """
    with History(":memory:") as h:
        h.record_run(
            [Execution("load-a", "load", cost=2.0, output_size=1000),
             Execution("load-b", "load", cost=4.0, output_size=1000),
             Execution("fit-a", "fit", cost=10.0)],
            [Transfer("load-a", "fit-a", "load", "fit", nbytes=1000, duration=0.25),
             Transfer("x", "y", "x", "y", nbytes=3000, duration=0.75)])
        G = nx.DiGraph([("load-1", "fit-1"), ("fit-1", "save-1")])
        nx.set_node_attributes(G, 1.0, "cost")
        nx.set_edge_attributes(G, 9.0, "size")
        g = TaskGraph.from_networkx(G)
        r = h.refine(g)
        assert [r.nx.nodes[k]["cost"] for k in ("load-1", "fit-1", "save-1")] == [3.0, 10.0, 1.0]
        assert r.nx.nodes["load-1"]["cost_samples"] == 2
        assert r.nx.edges["load-1", "fit-1"]["size"] == 0.25
        assert r.nx.edges["fit-1", "save-1"]["size"] == 9.0  # fit's output size is unknown
        assert h.bandwidth() == pytest.approx(4000 / 1.0)
        assert g.nx.nodes["load-1"]["cost"] == 1.0  # the input graph is not changed
        assert h.durations() == {"load": 3.0, "fit": 10.0}


def test_task_identity_is_the_dask_prefix():
    assert task_identity("inc-8f3a9c0d4b2e11ef") == "inc"
    assert task_identity(("getitem-abc123def4567890", 0, 1)) == "getitem"
