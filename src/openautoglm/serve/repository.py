"""The model repository: named, versioned models persisted in SQLite, loaded behind batchers.

A *version* is a registered source (a GLM checkpoint, a GLM preset, or an ``api:`` chat
backend) plus its serving parameters; it is stored in SQLite (one row per ``(name, version)``,
so nothing is registered twice) and survives restarts. *Loading* builds the model and a
:class:`~openautoglm.glm.serving.BatchingServer` in front of it; *unloading* stops taking new
requests for that version and serves what it has queued. Each model name has a default
version (the first registered, or the one registered with ``default=True``).

Infer requests resolve their version and queue their prompts under one lock, the same lock
that load and unload take to swap versions in and out: a request is served entirely by one
version, and loading or unloading another version never fails or mixes it.

Sources::

    preset:glm-tiny            a built-in GLM (trained and cached on first use)
    checkpoint:sub/dir         a GLM checkpoint directory, .safetensors or .pt export, relative
                               to the repository's model directory (never outside it)
    api:glm-4                  an OpenAI-style chat backend ($OPENAUTOGLM_API_BASE)
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openautoglm.glm.serving import DEFAULT_TABLE, BatchingServer, fixed_table

__all__ = ["ModelRepository", "RepositoryError", "Version", "check_name"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version TEXT NOT NULL, source TEXT NOT NULL, params TEXT NOT NULL,
    created REAL NOT NULL, loaded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS defaults (name TEXT PRIMARY KEY, version TEXT NOT NULL);
"""


class RepositoryError(ValueError):
    """A repository request that cannot be done; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_name(value: str, what: str) -> str:
    """Refuses names that are not ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`` or contain ``..``."""
    if not isinstance(value, str) or not NAME.match(value) or ".." in value:
        raise RepositoryError(
            f"{what} {value!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, without '..'", 400)
    return value


@dataclass(frozen=True)
class Version:
    """One registered version (a row of the repository)."""

    name: str
    version: str
    source: str
    params: dict[str, Any]
    created: float

    @property
    def kind(self) -> str:
        """``preset``, ``checkpoint`` or ``api``."""
        return self.source.split(":", 1)[0]


@dataclass
class _Loaded:
    version: Version
    server: BatchingServer
    platform: str
    max_new_tokens: int
    info: dict[str, Any] = field(default_factory=dict)


class ModelRepository:
    """Registered versions (SQLite) and the loaded ones (in memory).

    Args:
        path: the SQLite file (created if missing).
        model_dir: the only directory ``checkpoint:`` sources may read from (``None``: no
            checkpoint sources).
        observer: ``observer(name, version)`` -> a BatchObserver for a loaded version's batcher.
    """

    def __init__(self, path: str | Path, model_dir: str | Path | None = None,
                 observer: Callable[[str, str], Any] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else None
        self.observer = observer
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._loaded: dict[tuple[str, str], _Loaded] = {}
        self._loading: dict[tuple[str, str], threading.Event] = {}
        self._errors: dict[tuple[str, str], str] = {}

    # -- registry --------------------------------------------------------------------------
    def register(self, name: str, version: str, source: str, params: dict[str, Any] | None = None,
                 default: bool = False) -> tuple[Version, bool]:
        """Registers a version; the same source again is a no-op, another source a conflict.

        Returns:
            ``(version, created)``.

        Raises:
            RepositoryError: a bad name or source (400), or the version exists with another
                source or parameters (409).
        """
        check_name(name, "model name")
        check_name(version, "version")
        self._check_source(source)
        params = dict(params or {})
        row = Version(name, version, source, params, time.time())
        with self._lock:
            old = self.get(name, version)
            if old is not None:
                if (old.source, old.params) != (source, params):
                    raise RepositoryError(
                        f"model {name!r} version {version!r} is registered already with source "
                        f"{old.source!r}; register a new version instead of changing this one", 409)
                created = False
                row = old
            else:
                self._db.execute("INSERT INTO versions(name, version, source, params, created) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (name, version, source, json.dumps(params), row.created))
                created = True
            if default or self.default_version(name) is None:
                self._db.execute("INSERT OR REPLACE INTO defaults(name, version) VALUES (?, ?)",
                                 (name, version))
        return row, created

    def get(self, name: str, version: str) -> Version | None:
        """The registered version, or ``None``."""
        r = self._db.execute("SELECT name, version, source, params, created FROM versions "
                             "WHERE name = ? AND version = ?", (name, version)).fetchone()
        return Version(r[0], r[1], r[2], json.loads(r[3]), r[4]) if r else None

    def versions(self, name: str | None = None) -> list[Version]:
        """Registered versions (of ``name``, or all), oldest first."""
        sql = "SELECT name, version, source, params, created FROM versions"
        rows = self._db.execute(sql + (" WHERE name = ?" if name else "") + " ORDER BY created",
                                (name,) if name else ()).fetchall()
        return [Version(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def default_version(self, name: str) -> str | None:
        """The default version of ``name``."""
        r = self._db.execute("SELECT version FROM defaults WHERE name = ?", (name,)).fetchone()
        return r[0] if r else None

    def resolve(self, name: str, version: str | None = None) -> Version:
        """The version asked for (default: the default version).

        Raises:
            RepositoryError: 404 naming the model or version and what exists.
        """
        check_name(name, "model name")
        if version is not None:
            check_name(version, "version")
        found = self.versions(name)
        if not found:
            names = sorted({v.name for v in self.versions()})
            raise RepositoryError(f"unknown model {name!r}; registered models: "
                                  f"{', '.join(names) or 'none'}", 404)
        version = version or self.default_version(name)
        for v in found:
            if v.version == version:
                return v
        raise RepositoryError(f"model {name!r} has no version {version!r}; its versions: "
                              f"{', '.join(v.version for v in found)}", 404)

    def state(self, v: Version) -> tuple[str, str]:
        """``(state, reason)``: READY, LOADING, UNAVAILABLE (registered, not loaded)."""
        key = (v.name, v.version)
        if key in self._loaded:
            return "READY", ""
        if key in self._loading:
            return "LOADING", ""
        return "UNAVAILABLE", self._errors.get(key, "not loaded")

    def index(self, ready: bool = False) -> list[dict[str, Any]]:
        """The KServe repository index: name, version, state, reason (only READY if ``ready``)."""
        out = []
        for v in self.versions():
            state, reason = self.state(v)
            if not ready or state == "READY":
                out.append({"name": v.name, "version": v.version, "state": state,
                            "reason": reason, "default": self.default_version(v.name) == v.version})
        return out

    # -- loading ---------------------------------------------------------------------------
    def load(self, name: str, version: str | None = None) -> Version:
        """Builds the version's model and batcher (waits if another thread is loading it)."""
        v = self.resolve(name, version)
        key = (v.name, v.version)
        with self._lock:
            if key in self._loaded:
                return v
            event = self._loading.get(key)
            owner = event is None
            if owner:
                event = self._loading[key] = threading.Event()
        if not owner:
            event.wait()
            if key not in self._loaded:
                raise RepositoryError(f"loading {v.name!r} version {v.version!r} failed: "
                                      f"{self._errors.get(key)}", 409)
            return v
        try:
            loaded = self._build(v)
            with self._lock:
                self._loaded[key] = loaded
                self._errors.pop(key, None)
            self._db.execute("UPDATE versions SET loaded = 1 WHERE name = ? AND version = ?", key)
        except RepositoryError as exc:
            self._errors[key] = str(exc)
            raise
        except Exception as exc:  # a broken checkpoint, a failing backend: the client's input
            self._errors[key] = f"{type(exc).__name__}: {exc}"
            raise RepositoryError(f"cannot load {v.name!r} version {v.version!r} from "
                                  f"{v.source!r}: {type(exc).__name__}: {exc}", 422) from exc
        finally:
            with self._lock:
                self._loading.pop(key, None)
            event.set()
        return v

    def unload(self, name: str, version: str | None = None) -> Version:
        """Stops a version taking requests; what it has queued is still served."""
        v = self.resolve(name, version)
        with self._lock:
            loaded = self._loaded.pop((v.name, v.version), None)
        self._db.execute("UPDATE versions SET loaded = 0 WHERE name = ? AND version = ?",
                         (v.name, v.version))
        if loaded is not None:
            loaded.server.close(wait=True)
        return v

    def restore(self) -> list[Version]:
        """Loads every version that was loaded when the service last stopped."""
        rows = self._db.execute("SELECT name, version FROM versions WHERE loaded = 1").fetchall()
        done = []
        for name, version in rows:
            try:
                done.append(self.load(name, version))
            except RepositoryError:
                pass  # recorded in the index's reason
        return done

    def loaded(self, name: str, version: str | None = None) -> _Loaded:
        """The loaded version (its batcher and metadata)."""
        v = self.resolve(name, version)
        found = self._loaded.get((v.name, v.version))
        if found is None:
            raise RepositoryError(f"model {v.name!r} version {v.version!r} is not loaded; "
                                  f"POST /v2/repository/models/{v.name}/load first", 409)
        return found

    def submit(self, name: str, version: str | None, prompts: list[str],
               max_new_tokens: int | None) -> tuple[Version, list[Future]]:
        """Queues ``prompts`` on one version, atomically with respect to load and unload."""
        with self._lock:
            loaded = self.loaded(name, version)
            n = loaded.max_new_tokens if max_new_tokens is None else max_new_tokens
            if n > loaded.max_new_tokens:
                raise RepositoryError(f"parameters.max_new_tokens={n} exceeds this version's "
                                      f"limit of {loaded.max_new_tokens}", 400)
            futures: list[Future] = []
            try:
                for p in prompts:
                    futures.append(loaded.server.submit((p, n)))
            except Exception:
                for f in futures:
                    f.cancel()
                raise
        return loaded.version, futures

    def close(self) -> None:
        """Unloads everything (serving what is queued) and closes the database."""
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for item in loaded:
            item.server.close(wait=True)
        self._db.close()

    # -- sources ---------------------------------------------------------------------------
    def _check_source(self, source: str) -> None:
        kind, _, rest = source.partition(":") if isinstance(source, str) else ("", "", "")
        if kind == "preset":
            from openautoglm.models import GLM_PRESETS

            if rest not in GLM_PRESETS:
                raise RepositoryError(f"unknown preset {rest!r} in source {source!r}; presets: "
                                      f"{', '.join(GLM_PRESETS)}", 400)
        elif kind == "checkpoint":
            self._checkpoint_path(rest)
        elif kind == "api":
            if not rest or len(rest) > 128 or any(c.isspace() for c in rest):
                raise RepositoryError(f"source {source!r}: give api:<model-id>, e.g. api:glm-4")
        else:
            raise RepositoryError(f"source {source!r} is not one of preset:<name>, "
                                  "checkpoint:<path under the model directory>, api:<model-id>")

    def _checkpoint_path(self, rel: str) -> Path:
        if self.model_dir is None:
            raise RepositoryError("checkpoint sources are off: start the service with "
                                  "--model-dir DIR and put checkpoints under it", 400)
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise RepositoryError(f"checkpoint path {rel!r} must be relative to the model "
                                  "directory, without '..'", 400)
        path = (self.model_dir / rel).resolve()
        if not path.is_relative_to(self.model_dir):
            raise RepositoryError(f"checkpoint path {rel!r} leaves the model directory", 400)
        if path.suffix.lower() in (".pkl", ".pickle"):
            raise RepositoryError(f"{rel!r}: pickles are never loaded; export weights as "
                                  ".safetensors (openautoglm.models.save_glm)", 400)
        if not path.exists():
            raise RepositoryError(f"no checkpoint at {rel!r} under the model directory", 400)
        return path

    def _build(self, v: Version) -> _Loaded:
        from openautoglm import models

        kind, _, rest = v.source.partition(":")
        max_new = int(v.params.get("max_new_tokens", 32))
        if kind == "api":
            backend = models.ChatCompletionsModel(rest, name=f"{v.name}:{v.version}")

            def run(batch: list[tuple[str, int]]) -> list[str]:
                return [backend.generate(p, max_tokens=n) for p, n in batch]

            platform, info = "openai-chat", {"backend": rest}
        else:
            path = models.glm_checkpoint(rest) if kind == "preset" else self._checkpoint_path(rest)
            model, tok, config = models.load_glm(path)
            max_new = min(max_new, config.max_len - 1)
            run = _glm_batch(model, tok)
            platform, info = "openautoglm-glm", {"config": config.to_dict()}
        b = v.params.get("batching", {})
        size = int(b.get("max_batch_size", 16))
        table = fixed_table(size) if b.get("policy") == "fixed" else \
            tuple((bound, min(s, size)) for bound, s in DEFAULT_TABLE)
        observer = self.observer(v.name, v.version) if self.observer else None
        server = BatchingServer(run, table=table, max_wait=float(b.get("max_wait_ms", 10)) / 1e3,
                                max_batch_size=size, max_queue=int(b.get("max_queue", 256)),
                                observer=observer)
        return _Loaded(v, server, platform, max_new, info)


def _glm_batch(model: Any, tok: Any) -> Callable[[list[tuple[str, int]]], list[str]]:
    """A batch function: prompts grouped by their token budget through generate_batch."""
    from openautoglm.glm import generate_batch

    def run(batch: list[tuple[str, int]]) -> list[str]:
        out: list[str | None] = [None] * len(batch)
        for n in sorted({n for _, n in batch}):
            idx = [i for i, (_, m) in enumerate(batch) if m == n]
            for i, text in zip(idx, generate_batch(model, tok, [batch[i][0] for i in idx], n)):
                out[i] = text
        return out  # type: ignore[return-value]

    return run
