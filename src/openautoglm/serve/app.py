"""The ``openautoglm serve`` application: KServe V2 models, plans and runs, ``/metrics``.

::

    GET  /v2/health/live | /v2/health/ready               (no token needed)
    GET  /v2                                               server metadata
    GET  /v2/models/{name}[/versions/{v}]                  model (version) metadata
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer            one BYTES input of prompts
    GET|POST /v2/repository/index                          every version and its state
    PUT  /v2/repository/models/{name}/versions/{v}         register a version
    POST /v2/repository/models/{name}/load | /unload       body: {"version": ...} (optional)
    POST /v1/plan                                          DAG + cluster + policy -> plan
    POST /v1/runs  GET /v1/runs[/{id}]  DELETE /v1/runs/{id}
    GET  /metrics                                          Prometheus text format

Every refusal is a JSON ``{"error": "<field>: <what is wrong and what to do>"}`` with a 4xx
status; a full queue answers 503 (models) or 429 (runs) with ``Retry-After``.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest

from openautoglm.glm.serving import QueueFullError, ServerClosedError

from .guards import BearerToken, BodyLimit
from .metrics import ServiceMetrics
from .plans import PlanError, plan
from .repository import ModelRepository, RepositoryError
from .runs import RunManager, RunQueueFullError
from .schemas import InferRequest, PlanRequest, RegisterRequest, RunRequest, VersionRef
from .settings import ServeSettings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
_IO = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
       "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}]}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "cannot be parsed")
            parts.append(f"body: malformed JSON ({why} at character {e['loc'][-1]})")
            continue
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg')}")
    return "; ".join(parts)


def create_app(settings: ServeSettings | None = None,
               pipelines: dict[str, Any] | None = None) -> FastAPI:
    """The service as an ASGI app (run it with uvicorn, or ``openautoglm serve``).

    Args:
        settings: see :class:`ServeSettings` (default: all defaults).
        pipelines: name -> Pipeline that ``POST /v1/runs`` may run (server-side only).
    """
    settings = settings or ServeSettings()
    disable_created_metrics()
    history = None
    if settings.history is not None:
        from openautoglm.history import History

        history = History(settings.history)
    metrics = ServiceMetrics(history)
    repo = ModelRepository(settings.registry, settings.model_dir,
                           observer=lambda n, v: metrics.batching.observer(model=n, version=v))
    metrics.loaded.set_function(lambda: len(repo._loaded))

    def engine_factory() -> Any:
        from openautoglm.engine.engine import Engine

        if settings.scheduler:
            return Engine(settings.scheduler, progress=False, metrics=metrics.engine)
        return Engine(n_workers=settings.engine_workers, dashboard=False, progress=False,
                      metrics=metrics.engine)

    runs = RunManager(engine_factory, pipelines or {}, history=history,
                      max_queued=settings.max_queued_runs)
    ready = threading.Event()

    async def lifespan(app: FastAPI) -> Any:
        def restore() -> None:
            try:
                _warm_up(settings.plan_policies)
                restored = repo.restore()
                logger.info("restored %d loaded model versions", len(restored))
            finally:
                ready.set()

        threading.Thread(target=restore, name="openautoglm-restore", daemon=True).start()
        yield
        await run_in_threadpool(runs.close)
        await run_in_threadpool(repo.close)
        if history is not None:
            history.close()
        print("openautoglm serve: stopped cleanly (queued requests served, registry closed)",
              flush=True)

    app = FastAPI(title="openautoglm", lifespan=lifespan)
    app.state.repository, app.state.runs, app.state.metrics = repo, runs, metrics
    app.state.settings, app.state.ready = settings, ready
    _errors(app)
    _observe(app, metrics)
    _model_routes(app, repo, metrics, ready)
    _plan_routes(app, settings, runs, metrics, ready)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(BearerToken, token=settings.token)
    app.add_middleware(_Observe, metrics=metrics)  # outermost: refusals are counted too
    return app


def _warm_up(policies: tuple[str, ...]) -> None:
    """Plans a two-task graph, so the first /v1/plan does not pay for JIT compilation."""
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.schedulers import schedule

    import networkx as nx

    G = nx.DiGraph()
    G.add_node("a", cost=1.0)
    G.add_node("b", cost=1.0)
    G.add_edge("a", "b", size=1.0)
    for policy in [p for p in ("heft", "cpop") if p in policies]:
        schedule(TaskGraph.from_networkx(G), Cluster.homogeneous(2), policy=policy)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc), "detail": exc.errors()[:5]},
                            status_code=422)

    @app.exception_handler(RepositoryError)
    async def repository(request: Request, exc: RepositoryError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(PlanError)
    async def planning(request: Request, exc: PlanError) -> JSONResponse:
        return _error(exc.status, str(exc))


class _Observe:
    """Pure ASGI middleware: counts and times every answer by route template and code."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        code = [500]

        async def sending(event: dict[str, Any]) -> None:
            if event["type"] == "http.response.start":
                code[0] = event["status"]
            await send(event)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.http.labels(path, scope["method"], str(code[0])).inc()
            self.metrics.http_latency.labels(path, scope["method"]).observe(
                time.perf_counter() - start)


def _observe(app: FastAPI, metrics: ServiceMetrics) -> None:
    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _model_routes(app: FastAPI, repo: ModelRepository, metrics: ServiceMetrics,
                  ready: threading.Event) -> None:
    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def is_ready() -> Response:
        if ready.is_set():
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        from openautoglm import __version__

        return {"name": "openautoglm", "version": __version__,
                "extensions": ["model_repository"]}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        v = repo.resolve(name, version)
        state, reason = repo.state(v)
        loaded = repo._loaded.get((v.name, v.version))
        body = {"name": v.name, "versions": [x.version for x in repo.versions(name)],
                "default_version": repo.default_version(name),
                "platform": loaded.platform if loaded else v.kind, **_IO,
                "version": v.version, "source_kind": v.kind, "state": state, "reason": reason,
                "parameters": v.params}
        return body

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        v = repo.resolve(name, version)
        ok = repo.state(v)[0] == "READY"
        return JSONResponse({"name": v.name, "version": v.version, "ready": ok},
                            status_code=200 if ok else 409)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, body: InferRequest, version: str | None = None) -> Any:
        return await _infer(repo, metrics, name, version, body)

    @app.get("/v2/repository/index")
    @app.post("/v2/repository/index")
    async def index(ready: bool = False) -> list[dict[str, Any]]:
        return repo.index(ready=ready)

    @app.put("/v2/repository/models/{name}/versions/{version}")
    async def register(name: str, version: str, body: RegisterRequest) -> JSONResponse:
        params = {"max_new_tokens": body.max_new_tokens, "batching": body.batching.model_dump()}
        v, created = repo.register(name, version, body.source, params, default=body.default)
        if body.load:
            await run_in_threadpool(repo.load, name, version)
        state, reason = repo.state(v)
        return JSONResponse({"name": v.name, "version": v.version, "created": created,
                             "state": state, "default": repo.default_version(name) == v.version},
                            status_code=201 if created else 200)

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, body: VersionRef | None = None) -> dict[str, Any]:
        v = await run_in_threadpool(repo.load, name, body.version if body else None)
        return {"name": v.name, "version": v.version, "state": repo.state(v)[0]}

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str, body: VersionRef | None = None) -> dict[str, Any]:
        v = await run_in_threadpool(repo.unload, name, body.version if body else None)
        metrics.batching.remove(model=v.name, version=v.version)
        return {"name": v.name, "version": v.version, "state": repo.state(v)[0]}


async def _infer(repo: ModelRepository, metrics: ServiceMetrics, name: str,
                 version: str | None, body: InferRequest) -> Any:
    start = time.perf_counter()
    tensor = body.inputs[0]
    count = 1
    for d in tensor.shape:
        count *= d
    if count != len(tensor.data):
        raise RepositoryError(f"inputs[0].shape {tensor.shape} holds {count} elements but "
                              f"inputs[0].data has {len(tensor.data)}", 400)
    n = body.parameters.max_new_tokens if body.parameters else None
    try:
        v, futures = repo.submit(name, version, tensor.data, n)
    except QueueFullError as exc:
        metrics.infer.labels(name, version or "default", "shed").inc()
        return _error(503, str(exc), {"Retry-After": str(int(exc.retry_after))})
    except ServerClosedError:
        return _error(503, f"model {name!r} is being unloaded; retry", {"Retry-After": "1"})
    try:
        texts = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    except Exception as exc:  # the backend failed (an api: server down, ...): not the client
        metrics.infer.labels(v.name, v.version, "error").inc()
        return _error(502, f"model {v.name!r} version {v.version!r} failed: "
                      f"{type(exc).__name__}: {exc}")
    metrics.infer.labels(v.name, v.version, "ok").inc()
    metrics.infer_latency.labels(v.name, v.version).observe(time.perf_counter() - start)
    return {"model_name": v.name, "model_version": v.version, "id": body.id,
            "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [len(texts)],
                         "data": list(texts)}]}


def _plan_routes(app: FastAPI, settings: ServeSettings, runs: RunManager,
                 metrics: ServiceMetrics, ready: threading.Event) -> None:
    @app.post("/v1/plan")
    def make_plan(body: PlanRequest) -> Any:
        # The planners' JIT compilation (at start-up) is not thread-safe: plan after it.
        if not ready.wait(120):
            return _error(503, "the service is still starting; retry", {"Retry-After": "5"})
        result, seconds = plan(body, settings.max_tasks, settings.max_edges,
                               settings.plan_policies)
        metrics.engine.observe_plan(body.policy, seconds)
        return JSONResponse(result)  # plain JSON: no jsonable_encoder walk over the placements

    @app.post("/v1/runs", status_code=202)
    async def submit_run(body: RunRequest) -> Any:
        if body.policy not in settings.plan_policies:
            return _error(422, f"policy: {body.policy!r} is not offered here; use one of "
                          f"{', '.join(settings.plan_policies)}")
        if settings.engine_workers < 1 and not settings.scheduler:
            return _error(409, "runs are off in this service (started with --engine-workers 0)")
        try:
            return runs.submit(body.pipeline, body.inputs, body.policy)
        except KeyError as exc:
            return _error(404, f"pipeline: {exc.args[0]}")
        except ValueError as exc:
            return _error(422, f"inputs: {exc}")
        except RunQueueFullError as exc:
            return _error(429, str(exc), {"Retry-After": "5"})

    @app.get("/v1/runs")
    async def list_runs() -> list[dict[str, Any]]:
        return runs.list()

    @app.get("/v1/runs/{run_id}")
    async def get_run(run_id: str) -> Any:
        try:
            return runs.view(run_id)
        except KeyError:
            return _error(404, f"run_id: no run {run_id!r}; GET /v1/runs lists them")

    @app.delete("/v1/runs/{run_id}")
    async def cancel_run(run_id: str) -> Any:
        try:
            return await run_in_threadpool(runs.cancel, run_id)
        except KeyError:
            return _error(404, f"run_id: no run {run_id!r}; GET /v1/runs lists them")
