"""``openautoglm serve`` over real HTTP: a uvicorn process on 127.0.0.1, httpx clients.

Versions come from real GLM checkpoints (.safetensors); every answer is checked against what
the same checkpoint generates in this process, so a mixed-up version cannot pass.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from servicekit import expected_text, infer_body, save_tiny_glm

import openautoglm as oag
from openautoglm.testing import assert_valid_schedule

WORKFLOWS = Path(__file__).resolve().parents[2] / ".." / "shared" / "workflows"
TOKEN = "s3cret-token"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    for seed in (0, 1, 2):
        save_tiny_glm(d / f"seed{seed}.safetensors", seed=seed)
    (d / "evil.pkl").write_bytes(b"not loaded, ever")
    return d


class ChatHandler(BaseHTTPRequestHandler):
    """A real OpenAI-style chat server: answers "echo(<max_tokens>): <prompt>"."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = f"echo({body.get('max_tokens')}): {body['messages'][-1]['content']}"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def chat_backend():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def service(tmp_path_factory, models, chat_backend):
    from servicekit import Service

    tmp = tmp_path_factory.mktemp("service")
    s = Service(["--registry", str(tmp / "models.sqlite"), "--model-dir", str(models),
                 "--history", str(tmp / "history.sqlite"), "--engine-workers", "2",
                 "--pipeline", f"naps={HERE / 'naps.yaml'}", "--max-tasks", "2000",
                 "--max-body-bytes", str(4 * 2**20)],
                env={"OPENAUTOGLM_SERVE_TOKEN": TOKEN, "OPENAUTOGLM_API_BASE": chat_backend})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(service):
    with service.client(TOKEN) as c:
        yield c


def _register(client, name, version, source, **kw):
    r = client.put(f"/v2/repository/models/{name}/versions/{version}",
                   json={"source": source, "max_new_tokens": 8, **kw})
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_register_infer_metadata_versions_and_unload(client, models):
    assert _register(client, "tiny", "1", "checkpoint:seed0.safetensors")["default"] is True
    assert _register(client, "tiny", "2", "checkpoint:seed1.safetensors")["default"] is False
    again = client.put("/v2/repository/models/tiny/versions/1",
                       json={"source": "checkpoint:seed0.safetensors", "max_new_tokens": 8})
    assert again.status_code == 200 and again.json()["created"] is False  # not registered twice
    other = client.put("/v2/repository/models/tiny/versions/1",
                       json={"source": "checkpoint:seed1.safetensors", "max_new_tokens": 8})
    assert other.status_code == 409 and "register a new version" in other.json()["error"]

    want1 = expected_text(models / "seed0.safetensors", "abc", 8)
    want2 = expected_text(models / "seed1.safetensors", "abc", 8)
    assert want1 != want2  # the two versions are told apart by their answers
    r = client.post("/v2/models/tiny/infer", json=infer_body("abc", "abc"))
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "1" and body["outputs"][0]["data"] == [want1, want1]
    r = client.post("/v2/models/tiny/versions/2/infer", json=infer_body("abc"))
    assert r.json()["model_version"] == "2" and r.json()["outputs"][0]["data"] == [want2]

    meta = client.get("/v2/models/tiny").json()
    assert meta["versions"] == ["1", "2"] and meta["default_version"] == "1"
    assert meta["inputs"][0]["datatype"] == "BYTES" and meta["platform"] == "openautoglm-glm"
    assert client.get("/v2/models/tiny/versions/2/ready").json()["ready"] is True
    index = {(e["name"], e["version"]): e["state"] for e in client.get("/v2/repository/index").json()}
    assert index[("tiny", "1")] == index[("tiny", "2")] == "READY"

    r = client.post("/v2/repository/models/tiny/unload", json={"version": "2"})
    assert r.status_code == 200 and r.json()["state"] == "UNAVAILABLE"
    r = client.post("/v2/models/tiny/versions/2/infer", json=infer_body("abc"))
    assert r.status_code == 409 and "not loaded" in r.json()["error"]
    assert client.post("/v2/repository/models/tiny/load", json={"version": "2"}).status_code == 200
    assert client.post("/v2/models/tiny/versions/2/infer",
                       json=infer_body("abc")).json()["outputs"][0]["data"] == [want2]


def test_an_api_backend_version_over_a_real_chat_server(client):
    _register(client, "chat", "glm-4", "api:glm-4")
    r = client.post("/v2/models/chat/infer", json=infer_body("hi", "there", max_new_tokens=5))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == ["echo(5): hi", "echo(5): there"]
    assert client.get("/v2/models/chat").json()["platform"] == "openai-chat"


def test_infers_during_load_and_unload_of_another_version_never_fail_or_mix(client, models):
    _register(client, "mix", "a", "checkpoint:seed0.safetensors")
    prompts = ["abc", "hello", "k", "jjj ab"]
    want = {p: expected_text(models / "seed0.safetensors", p, 8) for p in prompts}
    stop = threading.Event()
    problems: list[str] = []
    counts = [0]

    def hammer(path: str) -> None:
        while not stop.is_set():
            for p in prompts:
                r = client.post(path, json=infer_body(p))
                counts[0] += 1
                if r.status_code != 200:
                    problems.append(f"{path}: {r.status_code} {r.text}")
                elif r.json()["model_version"] != "a" or r.json()["outputs"][0]["data"] != [want[p]]:
                    problems.append(f"{path}: mixed answer {r.json()}")

    threads = [threading.Thread(target=hammer, args=(p,)) for p in
               ("/v2/models/mix/infer", "/v2/models/mix/versions/a/infer")]
    for t in threads:
        t.start()
    try:
        _register(client, "mix", "b", "checkpoint:seed1.safetensors", load=False)
        for _ in range(3):  # versions come and go beside "a"
            assert client.post("/v2/repository/models/mix/load", json={"version": "b"}).status_code == 200
            assert client.post("/v2/repository/models/mix/unload", json={"version": "b"}).status_code == 200
        _register(client, "mix", "c", "checkpoint:seed2.safetensors")
        assert client.post("/v2/repository/models/mix/unload", json={"version": "c"}).status_code == 200
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert not problems, problems[:3]
    assert counts[0] >= 8


def node_link(g: oag.TaskGraph) -> dict:
    """The graph as node-link JSON: ids, costs, edge sizes."""
    return {"nodes": [{"id": k, "cost": float(c)} for k, c in zip(g.tasks, g.cost)],
            "links": [{"source": g.tasks[u], "target": g.tasks[v], "size": float(s)}
                      for u, v, s in zip(g.edge_src, g.edge_dst, g.edge_size)]}


def test_plan_equals_the_in_process_plan(client):
    g = oag.random_dag(200, seed=3)
    doc = node_link(g)
    cluster = {"speeds": [1, 1, 2, 2], "bandwidth": 2.0}
    r = client.post("/v1/plan", json={"graph": doc, "cluster": cluster, "policy": "heft"})
    assert r.status_code == 200, r.text
    body = r.json()
    c = oag.Cluster(speeds=[1, 1, 2, 2], bandwidth=2.0)
    local = oag.schedule(g, c, policy="heft")
    assert body["makespan"] == pytest.approx(local.makespan)
    assert body["lower_bound"] == pytest.approx(oag.lower_bound(g, c))
    assert body["tasks"] == 200 and len(body["placements"]) == 200
    s = oag.Schedule(g, c)
    for p in sorted(body["placements"], key=lambda p: p["start"]):
        s.add(p["task"], p["worker"], p["start"], cores=p["cores"])
    assert_valid_schedule(s)


def test_plan_a_real_wfformat_trace(client):
    path = WORKFLOWS / "pegasus" / "seismology" / "seismology-chameleon-100p-001.json"
    if not path.exists():
        pytest.skip(f"real WfFormat traces not found at {path} (../shared/workflows)")
    doc = json.loads(path.read_text())
    r = client.post("/v1/plan", json={"graph": doc, "format": "wfformat",
                                      "cluster": {"workers": 4}, "policy": "cpop"})
    assert r.status_code == 200, r.text
    g = oag.load_wfcommons(path)
    local = oag.schedule(g, oag.Cluster.homogeneous(4), policy="cpop")
    assert r.json()["makespan"] == pytest.approx(local.makespan)
    assert r.json()["tasks"] == len(g)


def _wait_run(client, run_id, states, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/v1/runs/{run_id}").json()
        if view["state"] in states:
            return view
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {states}: {view}")


def test_runs_of_registered_pipelines_report_progress_and_cancel(client):
    r = client.post("/v1/runs", json={"pipeline": "demo",
                                      "inputs": {"raw_text": "Dask runs tasks. Tasks run fast."}})
    assert r.status_code == 202, r.text
    done = _wait_run(client, r.json()["id"], ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"finished": 9, "total": 9}
    assert isinstance(done["outputs"]["summary"], str) and done["makespan"] > 0

    r = client.post("/v1/runs", json={"pipeline": "naps", "inputs": {"seconds": 2.0}})
    run_id = r.json()["id"]
    view = _wait_run(client, run_id, ("running",))
    assert view["progress"]["total"] == 4
    cancelled = client.delete(f"/v1/runs/{run_id}")
    assert cancelled.status_code == 200
    view = _wait_run(client, run_id, ("cancelled", "succeeded", "failed"))
    assert view["state"] == "cancelled", view
    again = client.post("/v1/runs", json={"pipeline": "naps", "inputs": {"seconds": 0.1}})
    view = _wait_run(client, again.json()["id"], ("succeeded", "failed", "cancelled"))
    assert view["state"] == "succeeded" and view["outputs"]["total"] == pytest.approx(0.2)


def _big_dag_body(n: int) -> bytes:
    nodes = ",".join(f'{{"id":{i},"cost":1}}' for i in range(n))
    return ('{"graph":{"nodes":[' + nodes + '],"links":[]},"cluster":{"workers":2}}').encode()


BAD = [
    # (what, method, path, kwargs, status, words in the error)
    ("malformed JSON", "post", "/v1/plan",
     {"content": b'{"graph": {', "headers": {"content-type": "application/json"}}, 422,
     ["malformed JSON"]),
    ("wrong type", "post", "/v2/models/tiny/infer",
     {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": 5}]}},
     422, ["inputs.0.data"]),
    ("wrong datatype", "post", "/v2/models/tiny/infer",
     {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": ["x"]}]}},
     422, ["inputs.0.datatype", "BYTES"]),
    ("shape and data disagree", "post", "/v2/models/tiny/infer",
     {"json": {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["x"]}]}},
     400, ["inputs[0].shape"]),
    ("unknown model", "post", "/v2/models/nosuch/infer", {"json": infer_body("x")}, 404,
     ["unknown model 'nosuch'"]),
    ("unknown version", "post", "/v2/models/tiny/versions/9/infer", {"json": infer_body("x")},
     404, ["no version '9'", "its versions"]),
    ("too many new tokens", "post", "/v2/models/tiny/infer",
     {"json": infer_body("x", max_new_tokens=9)}, 400, ["max_new_tokens=9", "limit of 8"]),
    ("unknown field", "post", "/v1/plan",
     {"json": {"graph": {}, "cluster": {"workers": 2}, "colour": "red"}}, 422, ["colour"]),
    ("cyclic DAG", "post", "/v1/plan",
     {"json": {"graph": {"nodes": [{"id": "a", "cost": 1}, {"id": "b", "cost": 1}],
                         "links": [{"source": "a", "target": "b"},
                                   {"source": "b", "target": "a"}]},
               "cluster": {"workers": 2}}}, 422, ["Cycle", "a -> b -> a"]),
    ("negative cost", "post", "/v1/plan",
     {"json": {"graph": {"nodes": [{"id": "a", "cost": -1}]}, "cluster": {"workers": 2}}},
     422, ["graph.nodes[0].cost"]),
    ("edge to no task", "post", "/v1/plan",
     {"json": {"graph": {"nodes": [{"id": "a", "cost": 1}],
                         "links": [{"source": "a", "target": "zz"}]},
               "cluster": {"workers": 2}}}, 422, ["graph.links[0].target"]),
    ("zero workers", "post", "/v1/plan",
     {"json": {"graph": {"nodes": [{"id": "a", "cost": 1}]}, "cluster": {"workers": 0}}},
     422, ["cluster.workers"]),
    ("unknown policy", "post", "/v1/plan",
     {"json": {"graph": {"nodes": [{"id": "a", "cost": 1}]}, "cluster": {"workers": 2},
               "policy": "optimal"}}, 422, ["policy", "heft"]),
    ("not WfFormat", "post", "/v1/plan",
     {"json": {"graph": {"workflow": {"tasks": [{"nothing": 1}]}}, "format": "wfformat",
               "cluster": {"workers": 2}}}, 422, ["graph", "WfFormat"]),
    ("3,000 tasks over --max-tasks", "post", "/v1/plan",
     {"content": _big_dag_body(3000), "headers": {"content-type": "application/json"}}, 413,
     ["graph.nodes", "limit of 2000"]),
    ("a 10^6-task DAG", "post", "/v1/plan",
     {"content": _big_dag_body(10**6), "headers": {"content-type": "application/json"}}, 413,
     ["limit of 4194304 bytes"]),
    ("oversized body, chunked", "post", "/v2/models/tiny/infer",
     {"content": iter([b"x" * 2**20] * 5), "headers": {"content-type": "application/json"}},
     413, ["limit"]),
    ("path-traversal model name", "put", "/v2/repository/models/..hidden/versions/1",
     {"json": {"source": "checkpoint:seed0.safetensors"}}, 400, ["model name '..hidden'"]),
    ("path-traversal checkpoint", "put", "/v2/repository/models/t2/versions/1",
     {"json": {"source": "checkpoint:../../etc/passwd"}}, 400, ["without '..'"]),
    ("absolute checkpoint path", "put", "/v2/repository/models/t2/versions/1",
     {"json": {"source": "checkpoint:/etc/passwd"}}, 400, ["relative"]),
    ("a pickle", "put", "/v2/repository/models/t2/versions/1",
     {"json": {"source": "checkpoint:evil.pkl"}}, 400, ["pickles are never loaded"]),
    ("unknown source kind", "put", "/v2/repository/models/t2/versions/1",
     {"json": {"source": "http://example.com/m"}}, 400, ["preset:<name>"]),
    ("unknown preset", "put", "/v2/repository/models/t2/versions/1",
     {"json": {"source": "preset:glm-huge"}}, 400, ["unknown preset 'glm-huge'"]),
    ("unknown pipeline", "post", "/v1/runs", {"json": {"pipeline": "rm-rf"}}, 404,
     ["pipeline", "rm-rf", "demo"]),
    ("wrong pipeline inputs", "post", "/v1/runs",
     {"json": {"pipeline": "demo", "inputs": {"text": "x"}}}, 422, ["inputs", "raw_text"]),
    ("unknown run", "get", "/v1/runs/0000", {}, 404, ["no run '0000'"]),
]


@pytest.mark.parametrize("what, method, path, kwargs, status, words", BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_naming_the_problem(client, service, what, method, path, kwargs,
                                               status, words):
    _register(client, "tiny", "1", "checkpoint:seed0.safetensors")  # idempotent
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, (what, r.status_code, r.text)
    error = r.json()["error"]
    for w in words:
        assert w in error, (what, error)
    # ... and the service keeps serving.
    assert service.proc.poll() is None
    ok = client.post("/v2/models/tiny/infer", json=infer_body("abc"))
    assert ok.status_code == 200


def test_the_token_guards_everything_but_health(service):
    with service.client() as anonymous, service.client("wrong") as wrong:
        assert anonymous.get("/v2/health/live").status_code == 200
        assert anonymous.get("/v2/health/ready").status_code == 200
        for c in (anonymous, wrong):
            for method, path in (("get", "/v2/repository/index"), ("get", "/metrics"),
                                 ("post", "/v1/plan"), ("get", "/v2/models/tiny")):
                r = getattr(c, method)(path)
                assert r.status_code == 401 and "bearer token" in r.json()["error"]
                assert r.headers["www-authenticate"] == "Bearer"


def test_no_answer_was_a_5xx(client):
    """After every request above: the service's own counter shows no 5xx answer but the 503s
    of the protocol (not ready yet while starting, a full queue)."""
    text = client.get("/metrics").text
    fives = [line for line in text.splitlines()
             if line.startswith("openautoglm_http_requests_total") and 'code="5' in line
             and 'code="503"' not in line]
    assert not fives, fives


def test_a_full_queue_answers_503_with_retry_after_and_serving_goes_on(client, models):
    _register(client, "shed", "1", "checkpoint:seed0.safetensors",
              batching={"policy": "fixed", "max_batch_size": 1, "max_queue": 2})
    r = client.post("/v2/models/shed/infer", json=infer_body(*["abc"] * 60))
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1 and "max_queue=2" in r.json()["error"]
    r = client.post("/v2/models/shed/infer", json=infer_body("abc", "abc"))
    assert r.status_code == 200
    text = client.get("/metrics").text
    assert 'openautoglm_requests_shed_total{model="shed",version="1"} 1.0' in text


def test_serving_in_a_thread_of_this_process(tmp_path):
    from openautoglm.serve import ServeSettings, create_app, serving

    app = create_app(ServeSettings(registry=tmp_path / "r.sqlite", engine_workers=0, token=None))
    with serving(app) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/v2/health/live", timeout=30).json() == {"live": True}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v2/health/live", timeout=5)
