"""Metrics for real: the service's /metrics, a real Prometheus scraping it, the Grafana
dashboard's metrics, and Dask's own scheduler /metrics (prometheus_client installed)."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from servicekit import Service, infer_body, save_tiny_glm

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "openautoglm.json"
TOKEN = "metrics-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def busy_service(tmp_path_factory):
    """A service that has inferred, planned and run a pipeline (so every family has series)."""
    tmp = tmp_path_factory.mktemp("metrics")
    save_tiny_glm(tmp / "models" / "m.safetensors")
    s = Service(["--registry", str(tmp / "reg.sqlite"), "--model-dir", str(tmp / "models"),
                 "--history", str(tmp / "history.sqlite"), "--engine-workers", "1"],
                env={"OPENAUTOGLM_SERVE_TOKEN": TOKEN})
    try:
        with s.client(TOKEN) as c:
            assert c.put("/v2/repository/models/m/versions/1",
                         json={"source": "checkpoint:m.safetensors", "max_new_tokens": 4}
                         ).status_code == 201
            for _ in range(5):
                assert c.post("/v2/models/m/infer", json=infer_body("ab", "cd")).status_code == 200
            graph = {"nodes": [{"id": "a", "cost": 1}, {"id": "b", "cost": 2}],
                     "links": [{"source": "a", "target": "b", "size": 1}]}
            assert c.post("/v1/plan", json={"graph": graph, "cluster": {"workers": 2}}
                          ).status_code == 200
            run = c.post("/v1/runs", json={"pipeline": "demo",
                                           "inputs": {"raw_text": "One. Two words."}}).json()
            deadline = time.monotonic() + 180
            while c.get(f"/v1/runs/{run['id']}").json()["state"] not in ("succeeded", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert c.get(f"/v1/runs/{run['id']}").json()["state"] == "succeeded"
        yield s
    finally:
        s.stop()


def _sample_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_every_metric_the_dashboard_charts_is_in_a_real_metrics_output(busy_service):
    with busy_service.client(TOKEN) as c:
        text = c.get("/metrics").text
    names = _sample_names(text)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    charted = {m for e in exprs for m in re.findall(r"openautoglm_[a-z_]+", e)}
    assert len(charted) >= 15
    missing = sorted(charted - names)
    assert not missing, f"charted but not exported: {missing}"
    # Conventions: one prefix, counters end in _total, units in the name.
    assert all(n.startswith("openautoglm_") for n in names if n.startswith("openautoglm"))
    for line in text.splitlines():
        if line.startswith("# TYPE openautoglm_") and line.endswith(" counter"):
            assert not line.split()[2].endswith("_total_total")
    assert 'openautoglm_infer_requests_total{model="m",status="ok",version="1"} 5.0' in text
    assert 'openautoglm_engine_runs_total{policy="heft",status="ok"} 1.0' in text
    assert 'openautoglm_engine_tasks_total{state="ok"} 9.0' in text
    assert "openautoglm_history_runs 1.0" in text


def _prometheus() -> str | None:
    return shutil.which("prometheus") or next(
        (p for p in ("/usr/bin/prometheus", "/usr/sbin/prometheus") if Path(p).exists()), None)


def test_a_real_prometheus_scrapes_the_service(busy_service, tmp_path):
    binary = _prometheus()
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian package 'prometheus'; "
                    ".ci/run installs it): cannot scrape for real")
    port = free_port()
    target = busy_service.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: openautoglm\n"
        f"    authorization: {{type: Bearer, credentials: {TOKEN}}}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as prom:
            deadline = time.monotonic() + 120

            def query(q: str) -> list:
                while time.monotonic() < deadline:
                    try:
                        r = prom.get("/api/v1/query", params={"query": q})
                        if r.status_code == 200 and r.json()["data"]["result"]:
                            return r.json()["data"]["result"]
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                    time.sleep(0.5)
                raise AssertionError(f"Prometheus never returned {q!r}")

            up = query('up{job="openautoglm"}')
            assert up[0]["value"][1] == "1"  # scraped, with the bearer token
            got = query('openautoglm_infer_requests_total{model="m",version="1",status="ok"}')
            assert float(got[0]["value"][1]) == 5.0
            runs = query('openautoglm_engine_runs_total{status="ok"}')
            assert float(runs[0]["value"][1]) == 1.0
            p99 = query('histogram_quantile(0.99, sum by (le) '
                        '(openautoglm_infer_request_duration_seconds_bucket))')
            assert float(p99[0]["value"][1]) > 0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_dask_scheduler_metrics_work():
    from openautoglm.engine.engine import Engine

    with Engine(n_workers=1, dashboard=True, progress=False) as engine:
        link = engine.dashboard_link
        assert link, "the embedded scheduler serves no dashboard"
        base = link.rsplit("/", 1)[0]
        r = httpx.get(f"{base}/metrics", timeout=30)
    assert r.status_code == 200
    assert "not available" not in r.text
    assert "dask_scheduler_workers" in r.text
