"""History against hostile values and unlucky files: refused on write, files left untouched."""
from __future__ import annotations

import hashlib
import math
import os
import sqlite3

import pytest

from openautoglm._validate import InputError
from openautoglm.history import Execution, History, HistoryError, Transfer


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BAD_EXECUTIONS = {
    "duration -5": ({"duration": -5.0}, "duration"),
    "duration inf": ({"duration": math.inf}, "duration"),
    "duration nan": ({"duration": math.nan}, "duration"),
    "duration a string": ({"duration": "5"}, "duration"),
    "cost negative": ({"cost": -1.0}, "cost"),
    "cores 0": ({"cores": 0}, "cores"),
    "cores a float": ({"cores": 1.5}, "cores"),
    "attempt a bool": ({"attempt": True}, "attempt"),
    "input_size negative": ({"input_size": -1}, "input_size"),
    "start inf": ({"start": math.inf}, "start"),
    "status not text": ({"status": 3}, "status"),
}


@pytest.mark.parametrize("case", list(BAD_EXECUTIONS))
def test_bad_values_refused_and_nothing_written(tmp_path, case):
    """History used to take duration -5 or inf, after which every refine() failed."""
    fields, match = BAD_EXECUTIONS[case]
    with History(tmp_path / "h.sqlite") as h:
        h.record_run([Execution("ok", "ok", duration=1.0, cost=1.0)])
        with pytest.raises(InputError, match=match):
            h.record_run([Execution("good", "good", duration=2.0, cost=2.0),
                          Execution("bad", "bad", **{"duration": 1.0, **fields})])
        assert [e["task"] for e in h.executions()] == ["ok"]  # the whole run was refused
        assert len(h.runs()) == 1


@pytest.mark.parametrize("field, value", [("nbytes", -1), ("duration", math.inf),
                                          ("src_task", None)])
def test_bad_transfer_refused(field, value):
    with History(":memory:") as h:
        t = {"src_task": "a", "dst_task": "b", "src_identity": "a", "dst_identity": "b",
             field: value}
        with pytest.raises(InputError, match=field):
            h.record_run([], [Transfer(**t)])


@pytest.mark.parametrize("kwargs", [{"planned_makespan": -1.0}, {"realised_makespan": math.nan},
                                    {"n_workers": 0}, {"started": "now"}])
def test_bad_run_fields_refused(kwargs):
    with History(":memory:") as h, pytest.raises(InputError, match=next(iter(kwargs))):
        h.record_run([], **kwargs)


@pytest.mark.parametrize("path", [5, b"h.sqlite", ""])
def test_path_must_be_a_path(path):
    with pytest.raises(InputError, match="History path"):
        History(path)


@pytest.mark.parametrize("name", ["app#data.sqlite", "app?mode=rwc.sqlite", "my%20hist.sqlite",
                                  "a%2523b.sqlite"])
def test_foreign_database_with_uri_characters_is_untouched(tmp_path, name):
    """'#', '?' and '%' went into the SQLite URI unquoted: another app's file was switched to
    WAL and a stray file created, while the error said it was left untouched."""
    path = tmp_path / name
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (t TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    before, listing = digest(path), sorted(os.listdir(tmp_path))
    with pytest.raises(HistoryError, match="does not belong to openautoglm"):
        History(path)
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no stray file
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"


@pytest.mark.parametrize("name", ["my%20hist.sqlite", "run#1.sqlite", "q?.sqlite"])
def test_history_with_uri_characters_reopens(tmp_path, name):
    """A valid ``my%20hist.sqlite`` used to be called damaged on the second open."""
    path = tmp_path / name
    with History(path) as h:
        h.record_run([Execution("load", "load", duration=2.0, cost=2.0)])
    with History(path) as h:
        assert h.estimate("load").cost == 2.0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite") == [name]


def test_garbage_pages_refuse_writes(tmp_path):
    """A history whose later pages are garbage kept accepting writes."""
    path = tmp_path / "h.sqlite"
    with History(path) as h:
        h.record_run([Execution(f"t{i}", f"t{i}", duration=1.0, cost=1.0, error="x" * 200)
                      for i in range(400)])
    with sqlite3.connect(path) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * page
    data[4 * page:6 * page] = bytes((i * 37 + 11) % 256 for i in range(2 * page))
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(HistoryError, match="damaged"):
        History(path)
    assert digest(path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files: nothing to refuse")
def test_read_only_intact_history_is_called_read_only(tmp_path):
    path = tmp_path / "h.sqlite"
    with History(path) as h:
        h.record_run([Execution("load", "load", duration=2.0, cost=2.0)])
    path.chmod(0o444)
    try:
        with pytest.raises(HistoryError, match="intact openautoglm history but read-only"):
            History(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("timeout", [-1, "30", math.nan])
def test_timeout_checked(tmp_path, timeout):
    with pytest.raises(InputError, match="timeout"):
        History(tmp_path / "h.sqlite", timeout=timeout)
    assert not (tmp_path / "h.sqlite").exists()
