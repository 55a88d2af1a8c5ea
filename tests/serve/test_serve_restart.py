"""SIGTERM in the middle of load: requests finish or fail cleanly; the registry survives.

While clients infer and register new versions, the service gets SIGTERM. Every answer that
came back is a correct one (the right version's text) or a clean refusal; a request whose
connection was cut is a clean failure too, never a 5xx or a wrong answer. After a restart on
the same SQLite registry, every version the service acknowledged is there exactly once, and
what was loaded is loaded again.
"""
from __future__ import annotations

import signal
import threading
import time

import httpx
from servicekit import Service, expected_text, infer_body, save_tiny_glm


def test_sigterm_mid_load_then_restart_keeps_the_registry(tmp_path):
    models = tmp_path / "models"
    save_tiny_glm(models / "m.safetensors", seed=0)
    args = ["--registry", str(tmp_path / "registry.sqlite"), "--model-dir", str(models),
            "--engine-workers", "0"]
    want = expected_text(models / "m.safetensors", "abc", 8)
    service = Service(args)
    try:
        with service.client() as c:
            r = c.put("/v2/repository/models/m/versions/0",
                      json={"source": "checkpoint:m.safetensors", "max_new_tokens": 8})
            assert r.status_code == 201
        outcomes: dict[str, list] = {"ok": [], "refused": [], "cut": [], "bad": []}
        acknowledged: list[str] = []
        stop = threading.Event()

        def infer() -> None:
            with service.client(timeout=60) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/v2/models/m/versions/0/infer", json=infer_body("abc"))
                    except httpx.TransportError as exc:
                        outcomes["cut"].append(type(exc).__name__)
                        return
                    if r.status_code == 200 and r.json()["outputs"][0]["data"] == [want]:
                        outcomes["ok"].append(1)
                    elif r.status_code in (409, 503):
                        outcomes["refused"].append(r.status_code)
                    else:
                        outcomes["bad"].append((r.status_code, r.text))

        def register() -> None:
            with service.client(timeout=60) as c:
                for k in range(1, 1000):
                    if stop.is_set():
                        return
                    try:
                        r = c.put(f"/v2/repository/models/m/versions/{k}",
                                  json={"source": "checkpoint:m.safetensors", "max_new_tokens": 8})
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        acknowledged.append(str(k))
                    elif r.status_code >= 500:
                        outcomes["bad"].append((r.status_code, r.text))

        threads = [threading.Thread(target=infer) for _ in range(3)]
        threads.append(threading.Thread(target=register))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while (len(outcomes["ok"]) < 20 or len(acknowledged) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        code = service.stop()  # SIGTERM while both kinds of request are in flight
        stop.set()
        for t in threads:
            t.join(60)
        # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM.
        assert code in (0, -signal.SIGTERM), "".join(service.lines)
        assert "stopped cleanly" in "".join(service.lines)
        assert not outcomes["bad"], outcomes["bad"][:3]
        assert len(outcomes["ok"]) >= 20 and len(acknowledged) >= 3
    finally:
        service.stop()

    again = Service(args)
    try:
        with again.client() as c:
            index = c.get("/v2/repository/index").json()
            versions = [e["version"] for e in index if e["name"] == "m"]
            assert len(versions) == len(set(versions))  # nothing registered twice
            assert set(["0", *acknowledged]) <= set(versions)  # nothing acknowledged is lost
            states = {e["version"]: e["state"] for e in index}
            assert all(states[v] == "READY" for v in ["0", *acknowledged])  # loaded again
            r = c.post("/v2/models/m/infer", json=infer_body("abc"))
            assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [want]
    finally:
        again.stop()
