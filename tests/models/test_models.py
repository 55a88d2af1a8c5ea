"""Model registry, the chat-completions backend against a real local HTTP server, and routing."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openautoglm import models as M


class ChatServer:
    """A real HTTP server on 127.0.0.1 answering from a script of behaviours, one per request.

    Behaviours: ("ok", text), ("status", code), ("sleep", seconds) then ok, ("raw", bytes),
    ("json", obj). Records every request body and header.
    """

    def __init__(self) -> None:
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                server.requests.append({"path": self.path, "body": body,
                                        "auth": self.headers.get("Authorization")})
                kind, arg = server.script.pop(0) if server.script else ("ok", "default")
                if kind == "sleep":
                    time.sleep(arg)
                    kind, arg = "ok", "late"
                if kind == "status":
                    payload = json.dumps({"error": {"message": f"boom {arg}"}}).encode()
                    self.send_response(arg)
                elif kind == "raw":
                    payload = arg
                    self.send_response(200)
                else:
                    obj = arg if kind == "json" else {
                        "choices": [{"message": {"role": "assistant", "content": f"{arg}:{body['messages'][-1]['content']}"}}]}
                    payload = json.dumps(obj).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


def client(server, **kw):
    kw.setdefault("backoff", 0.01)
    return M.ChatCompletionsModel("glm-4", base_url=server.base_url, api_key="sk-test", **kw)


def test_success_sends_openai_request(server):
    server.script = [("ok", "A")]
    assert client(server).generate("hello", temperature=0.2) == "A:hello"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"] == {"model": "glm-4", "messages": [{"role": "user", "content": "hello"}],
                           "temperature": 0.2}
    assert req["auth"] == "Bearer sk-test"


def test_base_url_and_key_from_environment(server, monkeypatch):
    monkeypatch.setenv(M.ENV_API_BASE, server.base_url)
    monkeypatch.setenv(M.ENV_API_KEY, "sk-env")
    model = M.get_model("api:glm-4-env")
    try:
        assert model.generate("x") == "default:x"
        assert server.requests[0]["auth"] == "Bearer sk-env"
        assert server.requests[0]["body"]["model"] == "glm-4-env"
    finally:
        M.registry._INSTANCES.pop("api:glm-4-env", None)


def test_missing_base_url_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(M.ENV_API_BASE, raising=False)
    model = M.ChatCompletionsModel("gpt-4o")
    assert not model.available()
    with pytest.raises(M.ModelError, match="OPENAUTOGLM_API_BASE"):
        model.generate("x")


def test_5xx_then_success_is_retried(server):
    server.script = [("status", 503), ("status", 500), ("ok", "B")]
    model = client(server, max_retries=3)
    assert model.generate("q") == "B:q"
    assert model.attempts == 3 and len(server.requests) == 3


def test_5xx_gives_up_after_retries(server):
    server.script = [("status", 502)] * 3
    model = client(server, max_retries=2)
    with pytest.raises(M.ModelHTTPError, match="HTTP 502") as info:
        model.generate("q")
    assert info.value.status == 502 and len(server.requests) == 3


@pytest.mark.parametrize(("code", "hint"), [(400, "bad request"), (401, "API key"), (404, "base URL")])
def test_4xx_fails_at_once_with_hint(server, code, hint):
    server.script = [("status", code), ("ok", "never")]
    with pytest.raises(M.ModelHTTPError, match=hint) as info:
        client(server).generate("q")
    assert info.value.status == code
    assert len(server.requests) == 1  # not retried
    assert f"boom {code}" in str(info.value)  # the server's own message is shown


def test_timeout_is_retried_then_succeeds(server):
    server.script = [("sleep", 0.6), ("ok", "C")]
    model = client(server, timeout=0.2, max_retries=1)
    assert model.generate("q") == "C:q"
    assert model.attempts == 2


def test_timeout_after_all_retries(server):
    server.script = [("sleep", 0.5), ("sleep", 0.5)]
    t0 = time.perf_counter()
    with pytest.raises(M.ModelTimeoutError, match="within 0.2 s"):
        client(server, timeout=0.2, max_retries=1).generate("q")
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(
    ("kind", "arg", "match"),
    [("raw", b"<html>oops</html>", "not JSON"),
     ("json", {"choices": []}, r"choices\[0\]"),
     ("json", {"result": "hi"}, "not a chat-completions"),
     ("json", {"choices": [{"message": {"content": None}}]}, "not text")],
)
def test_malformed_reply_is_clear_and_not_retried(server, kind, arg, match):
    server.script = [(kind, arg), ("ok", "never")]
    with pytest.raises(M.ModelReplyError, match=match):
        client(server).generate("q")
    assert len(server.requests) == 1


def test_unreachable_server_is_clear():
    model = M.ChatCompletionsModel("m", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(M.ModelError, match="cannot reach"):
        model.generate("q")


class Fixed:
    def __init__(self, name, cost, up=True, fail=False):
        self.name, self.cost, self.up, self.fail, self.calls = name, cost, up, fail, 0

    def generate(self, prompt, **kw):
        self.calls += 1
        if self.fail:
            raise M.ModelError(f"{self.name} broke")
        return f"{self.name}:{prompt}"

    def available(self):
        return self.up


@pytest.fixture
def fixed_models():
    made = {"m-cheap": Fixed("m-cheap", 0.1), "m-dear": Fixed("m-dear", 5.0),
            "m-down": Fixed("m-down", 0.0, up=False), "m-broken": Fixed("m-broken", 0.0, fail=True)}
    for name, obj in made.items():
        M.register_model(name, lambda obj=obj: obj, replace=True)
    yield made
    for name in made:
        M.unregister_model(name)


def test_router_by_task_name(fixed_models):
    router = M.ModelRouter([("summar*", ["m-dear"]), ("gen-*", ["m-cheap"])], default=["m-cheap"])
    assert router.generate("p", task="summarize") == "m-dear:p"
    assert router.generate("p", task="gen-1") == "m-cheap:p"
    assert router.generate("p") == "m-cheap:p" and router.last_used == "m-cheap"


def test_router_by_cost(fixed_models):
    router = M.ModelRouter(default=["m-dear", "m-cheap"], prefer="cost")
    assert router.candidates(None) == ["m-cheap", "m-dear"]
    assert router.generate("p") == "m-cheap:p"


def test_router_skips_unavailable_and_falls_back_on_error(fixed_models):
    router = M.ModelRouter(default=["m-down", "m-broken", "m-dear"])
    assert router.generate("p") == "m-dear:p"
    assert fixed_models["m-down"].calls == 0 and fixed_models["m-broken"].calls == 1


def test_router_all_fail_lists_every_attempt(fixed_models):
    router = M.ModelRouter(default=["m-down", "m-broken"])
    with pytest.raises(M.ModelError, match="m-down: unavailable; m-broken: m-broken broke"):
        router.generate("p")


def test_router_falls_back_from_failing_http_server(server, fixed_models):
    server.script = [("status", 503)] * 2
    M.register_model("m-http", lambda: client(server, max_retries=1), replace=True)
    try:
        router = M.ModelRouter(default=["m-http", "m-cheap"])
        assert router.generate("p") == "m-cheap:p"
        assert len(server.requests) == 2
    finally:
        M.unregister_model("m-http")


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'.*api:<model-id>"):
        M.get_model("nope")
    with pytest.raises(ValueError, match="already registered"):
        M.register_model("glm-small", lambda: None)
    with pytest.raises(TypeError, match="callable"):
        M.register_model("x-bad", 3)
    with pytest.raises(ValueError, match="prefer"):
        M.ModelRouter(default=["a"], prefer="fastest")
    assert {"glm-small", "glm-tiny"} <= set(M.list_models())


def test_get_model_binds_router_to_the_calling_task(fixed_models):
    router = M.ModelRouter([("summar*", ["m-dear"])], default=["m-cheap"])
    M.register_model("m-auto", lambda: router, replace=True)
    try:
        assert M.get_model("m-auto", task="summarize").generate("p") == "m-dear:p"
        assert M.get_model("m-auto", task="other").generate("p") == "m-cheap:p"
        assert M.get_model("m-auto") is router
    finally:
        M.unregister_model("m-auto")


# --- local GLM checkpoints ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_glm():
    torch = pytest.importorskip("torch")
    from openautoglm import glm

    torch.set_num_threads(1)
    text = glm.load_corpus(max_chars=20_000)
    model, tokenizer, _ = glm.train({"n_layers": 1, "hidden": 16, "heads": 2, "max_len": 64},
                                    text, steps=5, batch_size=4, seq_len=32, eval_every=5)
    return model, tokenizer


@pytest.mark.parametrize("name", ["m.pt", "m.safetensors", "m_dir"])
def test_save_and_load_glm_round_trip(tiny_glm, tmp_path, name):
    import torch

    model, tokenizer = tiny_glm
    path = M.save_glm(tmp_path / name, model, tokenizer, extra={"trial": 3})
    loaded, tok2, config = M.load_glm(path)
    assert config == model.config and tok2 == tokenizer
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    a = M.get_model(str(path))
    try:
        assert isinstance(a, M.LocalGLM)
        assert a.generate("The ", max_new_tokens=8) == M.LocalGLM(model, tokenizer, model.config).generate(
            "The ", max_new_tokens=8)
    finally:
        M.registry._INSTANCES.pop(str(path), None)


def test_pt_export_is_tensors_and_strings_only(tiny_glm, tmp_path):
    """The .pt export loads under torch's weights-only unpickler: no arbitrary objects inside."""
    import torch

    path = M.save_glm(tmp_path / "w.pt", *tiny_glm)
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"meta", "state_dict"} and isinstance(blob["meta"], str)


def test_pickle_paths_are_refused(tiny_glm, tmp_path):
    with pytest.raises(ValueError, match="refusing to write a pickle"):
        M.save_glm(tmp_path / "m.pkl", *tiny_glm)
    assert not (tmp_path / "m.pkl").exists()
    (tmp_path / "evil.pkl").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickled models are not loaded"):
        M.load_glm(tmp_path / "evil.pkl")


def test_foreign_pt_file_is_refused(tmp_path):
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an openautoglm GLM export"):
        M.load_glm(tmp_path / "other.pt")


def test_builtin_glm_is_trained_once_then_cached(tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv(M.ENV_CACHE, str(tmp_path))
    path = M.glm_checkpoint("glm-tiny")
    assert path.parent == tmp_path and (path / "model.safetensors").is_file()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert M.glm_checkpoint("glm-tiny") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # not retrained
    model = M.LocalGLM.from_checkpoint(path)
    assert isinstance(model.generate("The ", max_new_tokens=4), str)
    with pytest.raises(ValueError, match="glm-small"):
        M.glm_checkpoint("glm-huge")


def test_timeout_message_counts_this_calls_attempts_not_the_instances_total(server):
    """A cached model that already made 6 attempts: the 3rd attempt of this call says "3 of 3"
    (it said "after 9 attempt(s)": the counter was cumulative over the instance)."""
    model = client(server, timeout=0.2, max_retries=2)
    for _ in range(2):
        server.script = [("sleep", 0.4)] * 3
        with pytest.raises(M.ModelTimeoutError) as info:
            model.generate("q")
    assert model.attempts == 6
    assert "attempt 3 of 3" in str(info.value) and "9 attempt" not in str(info.value)


def test_cached_api_model_reads_a_rotated_key_and_base(server, monkeypatch):
    """The key (and base URL) come from the environment at each call, not once when cached."""
    monkeypatch.setenv(M.ENV_API_BASE, server.base_url)
    monkeypatch.setenv(M.ENV_API_KEY, "sk-old")
    try:
        model = M.get_model("api:glm-4-rotate")
        model.generate("a")
        monkeypatch.setenv(M.ENV_API_KEY, "sk-new")
        assert M.get_model("api:glm-4-rotate") is model  # still the cached instance
        model.generate("b")
        assert [r["auth"] for r in server.requests] == ["Bearer sk-old", "Bearer sk-new"]
    finally:
        M.registry._INSTANCES.pop("api:glm-4-rotate", None)


def test_validate_refuses_an_api_model_without_base_url_before_running(monkeypatch):
    """validate() and run() fail on an ``api:`` model with no base URL before any task runs."""
    from openautoglm import Pipeline, Task

    monkeypatch.delenv(M.ENV_API_BASE, raising=False)
    ran = []
    p = Pipeline("p", [Task("upstream", func=lambda x: ran.append(x) or x, input_key="x", output_key="y"),
                       Task("ask", model="api:glm-4-nobase", prompt_template="{y}", input_key="y")])
    with pytest.raises(ValueError, match="OPENAUTOGLM_API_BASE"):
        p.validate({"x": 1})
    with pytest.raises(ValueError, match="no base URL"):
        p.run(x=1)
    assert ran == []


def test_routed_model_says_which_model_answered(server):
    M.register_model("rt-a", lambda: client(server, max_retries=0), replace=True)
    M.register_model("rt-router", lambda: M.ModelRouter([("summar*", ["rt-a"])], default=["rt-a"]),
                     replace=True)
    try:
        routed = M.get_model("rt-router", task="summarize_doc")
        assert routed.generate("x") == "default:x"
        assert routed.last_used == "rt-a"
    finally:
        for name in ("rt-a", "rt-router"):
            M.unregister_model(name)


def _threads_seen(model):
    seen = []
    import torch

    # The token embedding runs on every forward, cached decoding included.
    embedding = next(m for m in model.model.modules() if isinstance(m, torch.nn.Embedding))
    embedding.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    return seen


def test_local_glm_runs_with_the_documented_thread_count(monkeypatch):
    """Inference runs with OPENAUTOGLM_TORCH_THREADS threads (default 1), not torch's default
    of one per core (10x slower for these small models on a busy 2-core machine), and gives the
    caller's setting back."""
    import torch

    from openautoglm.glm import CharTokenizer, GLMConfig, GLMModel

    tok = CharTokenizer.from_text("abcdefgh ")
    model = M.LocalGLM(GLMModel(GLMConfig(vocab_size=tok.vocab_size, n_layers=1, hidden=16, heads=2,
                                          max_len=32)).eval(), tok, None, name="t")
    model.config = model.model.config
    seen = _threads_seen(model)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.delenv("OPENAUTOGLM_TORCH_THREADS", raising=False)
        model.generate("abc", max_new_tokens=2)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        monkeypatch.setenv("OPENAUTOGLM_TORCH_THREADS", "3")
        model.fill_blank("ab[MASK]", max_new_tokens=2)
        assert set(seen) == {3} and torch.get_num_threads() == 2
        seen.clear()
        M.LocalGLM(model.model, tok, model.config, threads=2).generate("abc", max_new_tokens=2)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_first_use_training_says_what_it_does_and_where_it_caches(tmp_path, monkeypatch, capsys):
    """Training a built-in GLM on first use prints what it is doing, the cache path and a
    progress bar on stderr (it used to run for minutes with no output at all)."""
    monkeypatch.setitem(M.GLM_PRESETS, "glm-test", {
        "model": {"n_layers": 1, "hidden": 16, "heads": 2, "max_len": 32},
        "train": {"steps": 4, "batch_size": 2, "seq_len": 16, "lr": 3e-3, "eval_every": 2}})
    path = M.glm_checkpoint("glm-test", directory=tmp_path)
    raw = capsys.readouterr().err
    err = " ".join(raw.split())
    assert "first use of 'glm-test': training it" in err
    assert str(path) in "".join(raw.split())  # the cache path (rich may wrap the line)
    assert "step 4/4" in err and "OPENAUTOGLM_CACHE" in err and "OPENAUTOGLM_TORCH_THREADS" in err
    M.glm_checkpoint("glm-test", directory=tmp_path)  # cached: silent
    assert capsys.readouterr().err == ""
