"""Execution history in SQLite, and the cost model it refines.

Every run of the :class:`~openautoglm.engine.engine.Engine` can write what really happened into a
:class:`History`: one row per task attempt (which worker ran it, when, how long, how much data
it read, whether it failed and why) and one row per data transfer between two tasks. The cost
model reads those rows back to give the next plan better numbers.

Glossary:

- ``identity``: what makes two executions "the same task" across runs. For a pipeline it is
  the task's name; for a Dask key it is the key prefix (``"inc-8f3a..."`` -> ``"inc"``).
- ``cost``: an execution's duration normalised to one core of a speed-1 worker, the unit of a
  :class:`~openautoglm.core.graph.TaskGraph` node's ``cost`` (see docs/architecture.md).
- ``input_size``: bytes of all the task's inputs; costs may grow with it.
- effective bandwidth: bytes moved per second of transfer, over all recorded transfers.

The estimate for one identity is the median of its past costs, or, when input sizes vary and
explain the costs (R^2 >= 0.5 with a positive slope on at least 4 samples), a least-squares line
``cost = a + b * input_size``. Its uncertainty ``std`` is 1.4826 x the median absolute deviation
(or the residual standard deviation of the line); with one sample it is unknown (``nan``).

The database is refused, and never written, when it is not an openautoglm history: a file that is
not SQLite at all, or an SQLite database with someone else's tables (``history/database.py``:
the file, its schema and those checks). Read ``tests/history/test_history.py`` for the exact
behaviour.
"""
from __future__ import annotations

import math
import os
import sqlite3
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from openautoglm._typing import TaskKey
from openautoglm._validate import InputError, check_number, short
from openautoglm.core.graph import TaskGraph
from openautoglm.history.cost_model import CostEstimate, _fit, _Model, node_identities
from openautoglm.history.database import (
    check_existing,
    create_schema,
    default_history_path,
    retry_locked,
)
from openautoglm.history.rows import Execution, Transfer, as_row

__all__ = ["History", "Execution", "Transfer"]


class History:
    """Execution history stored in SQLite, and the cost model built on it.

    Safe with several writers (threads or processes): WAL journal, a busy timeout, and one
    short transaction per recorded run.

    Args:
        path: the database file; ``None`` for :func:`default_history_path`, ``":memory:"`` for a
            private in-memory history (tests, one-off runs).
        timeout: seconds a writer waits for another writer's lock before failing.

    Raises:
        HistoryError: the file exists but is not an openautoglm history (not SQLite, a foreign
            SQLite database, or a newer schema). The file is left byte-for-byte untouched.

    Example:
        >>> h = History(":memory:")
        >>> run = h.record_run([Execution("load", "load", duration=2.0, cost=2.0),
        ...                     Execution("load", "load", duration=4.0, cost=4.0)])
        >>> h.estimate("load")
        CostEstimate(cost=3.0, std=1.4826, n=2)
        >>> h.close()
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)) or path == "":
            raise InputError(f"History path must be a file path (str or Path), got "
                             f"{type(path).__name__} {short(path)}; e.g. History('runs.sqlite')")
        self.path = ":memory:" if path == ":memory:" else Path(path or default_history_path())
        self.timeout = check_number(timeout, "History timeout (seconds)", minimum=0.0,
                                    maximum=86400.0)
        self._lock = threading.Lock()
        self._models: dict[str, _Model] | None = None
        self._transfer_models: dict[tuple[str, str], float] | None = None
        self._bandwidth: float | None = None
        if self.path != ":memory:":
            check_existing(Path(self.path))
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        create_schema(self._conn, str(self.path), self.timeout, wal=self.path != ":memory:")

    # -- storage -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"History(path={str(self.path)!r})"

    def record_run(
        self,
        executions: Iterable[Execution | Mapping[str, Any]],
        transfers: Iterable[Transfer | Mapping[str, Any]] = (),
        *,
        run_id: str | None = None,
        pipeline: str | None = None,
        policy: str | None = None,
        n_workers: int | None = None,
        started: float | None = None,
        finished: float | None = None,
        planned_makespan: float | None = None,
        realised_makespan: float | None = None,
        status: str = "ok",
    ) -> str:
        """Store one run's executions and transfers in one transaction.

        Args:
            executions: one :class:`Execution` (or a dict of its fields) per task attempt.
            transfers: one :class:`Transfer` (or dict) per data transfer.
            run_id: the run's id (a new UUID when ``None``).
            pipeline: the pipeline or graph name.
            policy: the scheduling policy that planned the run.
            n_workers: workers in the cluster.
            started: run start (seconds since the epoch).
            finished: run end.
            planned_makespan: the plan's makespan (seconds).
            realised_makespan: the measured makespan (seconds).
            status: ``"ok"``, ``"error"`` or ``"timeout"``.

        Returns:
            The run id.
        """
        for field, value in (("planned_makespan", planned_makespan),
                             ("realised_makespan", realised_makespan)):
            if value is not None:
                check_number(value, f"record_run {field}")
        for field, value in (("started", started), ("finished", finished)):
            if value is not None:
                check_number(value, f"record_run {field}", minimum=None)
        if n_workers is not None:
            check_number(n_workers, "record_run n_workers", integer=True, minimum=1)
        run_id = run_id or uuid.uuid4().hex
        ex_cols = [f.name for f in fields(Execution)]
        tr_cols = [f.name for f in fields(Transfer)]
        ex_rows = [as_row(e, Execution, ex_cols) for e in executions]
        tr_rows = [as_row(t, Transfer, tr_cols) for t in transfers]
        ex_sql = (
            f"INSERT INTO oag_executions (run_id, pipeline, {', '.join(ex_cols)}) "
            f"VALUES (?, ?, {', '.join('?' * len(ex_cols))})"
        )
        tr_sql = (
            f"INSERT INTO oag_transfers (run_id, {', '.join(tr_cols)}) "
            f"VALUES (?, {', '.join('?' * len(tr_cols))})"
        )

        def write() -> None:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "INSERT OR REPLACE INTO oag_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, pipeline, policy, n_workers, started, finished,
                     planned_makespan, realised_makespan, status),
                )
                c.executemany(ex_sql, [(run_id, pipeline, *r) for r in ex_rows])
                c.executemany(tr_sql, [(run_id, *r) for r in tr_rows])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        with self._lock:
            retry_locked(write, self.timeout)
            self._models = self._transfer_models = self._bandwidth = None
        return run_id

    def executions(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Stored task attempts, oldest first.

        Args:
            run_id: only this run's rows (all runs when ``None``).

        Returns:
            One dict per row with the :class:`Execution` fields plus ``run_id`` and ``pipeline``.
        """
        sql = "SELECT * FROM oag_executions"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        return self._query(sql + " ORDER BY id", args)

    def transfers(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Stored transfers, oldest first (all runs when ``run_id`` is ``None``)."""
        sql = "SELECT * FROM oag_transfers"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        return self._query(sql + " ORDER BY id", args)

    def runs(self) -> list[dict[str, Any]]:
        """Stored runs, oldest first."""
        return self._query("SELECT * FROM oag_runs ORDER BY started, rowid", ())

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    # -- the cost model ------------------------------------------------------------------
    def _fit_models(self) -> dict[str, _Model]:
        if self._models is None:
            rows = self._query(
                "SELECT identity, cost, duration, input_size, output_size FROM oag_executions "
                "WHERE status = 'ok' AND (cost IS NOT NULL OR duration IS NOT NULL)",
                (),
            )
            by_id: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
            for r in rows:
                c = r["cost"] if r["cost"] is not None else r["duration"]
                out = r["output_size"] if r["output_size"] is not None else math.nan
                by_id[r["identity"]].append((c, r["input_size"] or 0, out))
            self._models = {
                ident: _fit(*(np.asarray(col, dtype=float) for col in zip(*samples)))
                for ident, samples in by_id.items()
            }
        return self._models

    def _fit_transfers(self) -> tuple[dict[tuple[str, str], float], float | None]:
        if self._transfer_models is None:
            rows = self._query(
                "SELECT src_identity, dst_identity, nbytes, duration FROM oag_transfers", ()
            )
            pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
            total_bytes = total_time = 0.0
            for r in rows:
                pairs[(r["src_identity"], r["dst_identity"])].append(r["duration"] or 0.0)
                if (r["nbytes"] or 0) > 0 and (r["duration"] or 0) > 0:
                    total_bytes += r["nbytes"]
                    total_time += r["duration"]
            self._transfer_models = {k: float(np.median(v)) for k, v in pairs.items()}
            self._bandwidth = total_bytes / total_time if total_time > 0 else None
        return self._transfer_models, self._bandwidth

    def estimate(self, identity: str, input_size: float | None = None) -> CostEstimate | None:
        """Predict the cost of a task from its past executions.

        Args:
            identity: the task identity (see :func:`task_identity`).
            input_size: bytes of its inputs, used when the model is a line in input size.

        Returns:
            The estimate, or ``None`` when this identity never completed.
        """
        model = self._fit_models().get(identity)
        return None if model is None else model.predict(input_size)

    def output_size(self, identity: str) -> float | None:
        """Median bytes of the output of tasks with this identity (``None`` if unknown)."""
        model = self._fit_models().get(identity)
        return None if model is None else model.output_size

    def bandwidth(self) -> float | None:
        """Effective bandwidth in bytes per second over all recorded transfers (``None`` if none)."""
        return self._fit_transfers()[1]

    def transfer_time(self, src_identity: str, dst_identity: str) -> float | None:
        """Predicted seconds to move the output of ``src_identity`` to a ``dst_identity`` task.

        The median of measured transfers between these two identities, else the source's
        median output size over the effective bandwidth, else ``None``.
        """
        pairs, bw = self._fit_transfers()
        if (src_identity, dst_identity) in pairs:
            return pairs[(src_identity, dst_identity)]
        out = self.output_size(src_identity)
        if out is not None and bw:
            return out / bw
        return None

    def durations(self) -> dict[str, float]:
        """Median measured cost per identity: what Dask's duration estimates are seeded with."""
        return {k: m.median for k, m in self._fit_models().items()}

    def refine(self, graph: TaskGraph, *, identities: Mapping[TaskKey, str] | None = None) -> TaskGraph:
        """A copy of ``graph`` whose costs and edge sizes come from history where it has data.

        A node's identity is its ``"identity"`` attribute, else ``identities[key]``, else as
        :func:`~openautoglm.history.cost_model.node_identities` says (a pipeline task's name,
        else :func:`task_identity` of its key). Its input size is its ``"input_size"`` attribute, else
        the sum of its dependencies' median output sizes. Nodes with history get ``cost``,
        ``cost_std`` and ``cost_samples`` (a per-worker ``costs`` list is dropped for them; a
        gang task's measured time is its time on its k workers: ``gang_costs={k: cost}``);
        edges with a predicted transfer time get it as ``size`` (seconds at bandwidth 1).
        Nodes and edges without history keep their values.

        Args:
            graph: the graph to refine (not modified).
            identities: optional identity per key.

        Returns:
            A new :class:`~openautoglm.core.graph.TaskGraph`.

        Example:
            >>> import networkx as nx
            >>> from openautoglm.core.graph import TaskGraph
            >>> h = History(":memory:")
            >>> _ = h.record_run([Execution("b-1", "b", duration=5.0, cost=5.0)])
            >>> G = nx.DiGraph([("a-1", "b-1")])
            >>> nx.set_node_attributes(G, 1.0, "cost")
            >>> g = h.refine(TaskGraph.from_networkx(G))
            >>> g.nx.nodes["a-1"]["cost"], g.nx.nodes["b-1"]["cost"]
            (1.0, 5.0)
            >>> h.close()
        """
        G = graph.nx.copy()
        ident = node_identities(G)
        for k, i in (identities or {}).items():
            if k in ident and not G.nodes[k].get("identity"):
                ident[k] = i
        for k, attrs in G.nodes(data=True):
            size = attrs.get("input_size")
            if size is None:
                outs = [self.output_size(ident[d]) for d in G.predecessors(k)]
                size = sum(o for o in outs if o is not None)
            est = self.estimate(ident[k], size)
            if est is not None:
                attrs.pop("costs", None)
                attrs.update(cost=est.cost, cost_std=est.std, cost_samples=est.n,
                             cost_source="history")
                if int(attrs.get("gang", 1)) > 1:  # measured on its k workers, not on one
                    attrs["gang_costs"] = {int(attrs["gang"]): est.cost}
        for u, v, attrs in G.edges(data=True):
            t = self.transfer_time(ident[u], ident[v])
            if t is not None:
                attrs["size"] = t
        return TaskGraph.from_networkx(G)
