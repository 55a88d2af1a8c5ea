"""``openautoglm serve``: the service on uvicorn, bound to 127.0.0.1 unless told otherwise."""
from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .settings import ENV_TOKEN, ServeSettings

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The ``openautoglm serve`` argument parser."""
    ap = argparse.ArgumentParser(
        prog="openautoglm serve",
        description="Serve models (KServe V2), plans and runs over HTTP, with /metrics. "
                    f"Set {ENV_TOKEN} to ask a bearer token on every non-health endpoint.")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="port (0: the OS chooses; default "
                    "8000); the address is printed once the service listens")
    ap.add_argument("--registry", type=Path, default=Path("openautoglm-models.sqlite"),
                    help="SQLite file of the model registry (default ./openautoglm-models.sqlite)")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="the only directory checkpoint: sources may read")
    ap.add_argument("--history", type=Path, default=None, help="History file for runs")
    ap.add_argument("--engine-workers", type=int, default=2,
                    help="workers of the embedded Dask cluster for /v1/runs (0: no runs)")
    ap.add_argument("--scheduler", default=None, help="a running Dask scheduler for runs")
    ap.add_argument("--pipeline", action="append", default=[], metavar="NAME=FILE.yaml",
                    help="a pipeline /v1/runs may run (repeatable); 'demo' is always there")
    ap.add_argument("--max-body-bytes", type=int, default=16 * 2**20)
    ap.add_argument("--max-tasks", type=int, default=50_000, help="largest DAG for /v1/plan")
    ap.add_argument("--log-level", default="warning")
    return ap


def _pipelines(pairs: Sequence[str]) -> dict[str, Any]:
    from openautoglm.demo import build_pipeline
    from openautoglm.pipeline import Pipeline

    out: dict[str, Any] = {"demo": build_pipeline()}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--pipeline {pair!r}: write NAME=FILE.yaml")
        out[name] = Pipeline.from_yaml(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the service until SIGINT/SIGTERM; returns the exit status."""
    import uvicorn

    from .app import create_app

    args = parser().parse_args(argv)
    for name in ("max_body_bytes", "max_tasks"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        pipelines = _pipelines(args.pipeline)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = ServeSettings(registry=args.registry, model_dir=args.model_dir,
                             max_body_bytes=args.max_body_bytes, max_tasks=args.max_tasks,
                             history=args.history, engine_workers=args.engine_workers,
                             scheduler=args.scheduler)
    app = create_app(settings, pipelines=pipelines)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    logging.basicConfig(level=args.log_level.upper())
    print(f"openautoglm serve: listening on http://{host}:{port}", flush=True)
    # Keep idle connections longer than clients do (httpx: 5 s), so a client never sends on a
    # connection the server is closing (the request would be lost to a read error).
    config = uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=30,
                            timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
