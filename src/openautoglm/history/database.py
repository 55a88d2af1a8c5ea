"""The history's SQLite file: its schema, where it lives, and refusing files that are not ours.

A path is checked before anything is written (:func:`check_existing`): a file that is not
SQLite, an SQLite database with someone else's tables, a damaged one, or a newer schema is
refused with :class:`HistoryError` and left byte-for-byte untouched. :func:`create_schema`
sets the journal (WAL: readers and one writer at once) and creates the tables in one
transaction, checking again under the lock. :func:`retry_locked` retries while another process
holds a lock SQLite would not wait for. The rows and the cost model live in ``store.py``.
Tests: ``tests/history/test_history.py``, ``tests/history/test_history_hostile.py``.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from openautoglm._validate import short

__all__ = ["HistoryError", "default_history_path", "check_existing", "create_schema",
           "retry_locked"]

_APP = "openautoglm-history"
_SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oag_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oag_runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT, policy TEXT, n_workers INTEGER,
    started REAL, finished REAL, planned_makespan REAL, realised_makespan REAL, status TEXT
);
CREATE TABLE IF NOT EXISTS oag_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, pipeline TEXT,
    task TEXT NOT NULL, identity TEXT NOT NULL, input_size INTEGER, output_size INTEGER,
    worker TEXT, start REAL, end REAL, duration REAL, cost REAL, cores INTEGER,
    bytes_moved INTEGER, status TEXT NOT NULL, error TEXT, attempt INTEGER,
    planned_start REAL, planned_finish REAL
);
CREATE INDEX IF NOT EXISTS oag_executions_identity ON oag_executions (identity, status);
CREATE INDEX IF NOT EXISTS oag_executions_run ON oag_executions (run_id);
CREATE TABLE IF NOT EXISTS oag_transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, src_task TEXT, dst_task TEXT,
    src_identity TEXT, dst_identity TEXT, src_worker TEXT, dst_worker TEXT,
    nbytes INTEGER, duration REAL
);
CREATE INDEX IF NOT EXISTS oag_transfers_pair ON oag_transfers (src_identity, dst_identity);
"""


class HistoryError(RuntimeError):
    """The history database cannot be used (corrupt, foreign, or from a newer version)."""


def default_history_path() -> Path:
    """Where the history lives unless told otherwise.

    ``$OPENAUTOGLM_HISTORY`` if set, else ``$XDG_CACHE_HOME/openautoglm/history.sqlite``
    (``~/.cache/openautoglm/history.sqlite`` by default).

    Returns:
        The path (its folder is not created here).
    """
    env = os.environ.get("OPENAUTOGLM_HISTORY")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "openautoglm" / "history.sqlite"


def create_schema(c: sqlite3.Connection, path: str, timeout: float, wal: bool) -> None:
    """Set up a fresh or existing history connection: pragmas, then the tables if missing.

    Args:
        c: the connection (autocommit: ``isolation_level=None``).
        path: the file, for messages.
        timeout: seconds to wait for another writer's lock.
        wal: use the WAL journal (files; not ``":memory:"``).
    """
    c.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    if wal:
        # WAL lets readers and one writer work at once; setting it needs the write lock.
        retry_locked(lambda: c.execute("PRAGMA journal_mode = WAL"), timeout)
    c.execute("PRAGMA synchronous = NORMAL")

    def create() -> None:
        c.execute("BEGIN IMMEDIATE")
        try:
            # Someone else may have made the file foreign between our check and the lock.
            check_schema(c, path)
            # executescript() would commit early: run the statements one by one.
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                c.execute(stmt)
            c.execute(
                "INSERT OR IGNORE INTO oag_meta VALUES ('app', ?), ('schema_version', ?)",
                (_APP, str(_SCHEMA_VERSION)),
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    retry_locked(create, timeout)


def retry_locked(fn: Any, timeout: float) -> Any:
    """Call ``fn``, retrying while another process holds a lock SQLite would not wait for."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(0.2, delay * 2)


def check_existing(path: Path) -> None:
    """Refuse a file that is not an openautoglm history, without writing to it."""
    if path.is_dir():
        raise HistoryError(f"History path {str(path)!r} is a directory; pass a file path instead.")
    if not path.exists() or path.stat().st_size == 0:
        folder = path.parent if str(path.parent) else Path(".")
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise HistoryError(f"cannot create a history at {str(path)!r}: the folder is not "
                               "writable; pass History(path=...) a writable place")
        return
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise HistoryError(
            f"{str(path)!r} is not an SQLite database (corrupt or another kind of file); "
            "it was left untouched. Move it away or pass History(path=...) another file."
        )
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
    # Open read-only so that even inspecting it cannot change a byte; the path is quoted into
    # the URI ('#', '?', '%' in a file name would otherwise cut it or be decoded).
    uri = path.resolve().as_uri() + ("?mode=ro" if writable else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            check_schema(conn, str(path))
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise HistoryError(
            f"{str(path)!r} is a damaged SQLite database ({e}); it was left untouched. "
            "Move it away or pass History(path=...) another file."
        ) from e
    if problems != ["ok"]:
        raise HistoryError(
            f"{str(path)!r} is a damaged SQLite database ({short('; '.join(problems), 200)}); "
            "it was left untouched and nothing will be written to it. Move it away, or "
            "recover it with the sqlite3 shell's .recover, or pass History(path=...) another file.")
    if not writable:
        raise HistoryError(
            f"{str(path)!r} is an intact openautoglm history but read-only (the file or its "
            "folder is not writable, and History records runs); it was left untouched. Fix the "
            "permissions or copy it to a writable place.")


def check_schema(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a database with tables that are not ours, or from a newer schema."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if not tables:
        return
    meta = dict(conn.execute("SELECT name, value FROM oag_meta")) if "oag_meta" in tables else {}
    if meta.get("app") != _APP:
        raise HistoryError(
            f"{path!r} is an SQLite database that does not belong to openautoglm "
            f"(tables: {', '.join(sorted(tables))}); it was left untouched. "
            "Pass History(path=...) a new file instead."
        )
    if int(meta.get("schema_version", 0)) > _SCHEMA_VERSION:
        raise HistoryError(
            f"{path!r} was written by a newer openautoglm (schema {meta['schema_version']}, "
            f"this one reads {_SCHEMA_VERSION}); upgrade openautoglm or use another file."
        )
