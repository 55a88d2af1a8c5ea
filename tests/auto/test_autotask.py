"""AutoTask: preprocess -> inference -> postprocess with a local GLM and a real HTTP chat server."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openautoglm import glm
from openautoglm import models
from openautoglm.auto.autotask import AutoTask


@pytest.fixture(scope="module")
def glm_path(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    text = glm.load_corpus(max_chars=20_000)
    model, tokenizer, _ = glm.train({"n_layers": 1, "hidden": 16, "heads": 2, "max_len": 128},
                                    text, steps=5, batch_size=4, seq_len=32, eval_every=5)
    path = models.save_glm(tmp_path_factory.mktemp("glm") / "tiny.pt", model, tokenizer)
    yield str(path)
    models.registry._INSTANCES.pop(str(path), None)


@pytest.fixture
def chat_server():
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            payload = json.dumps({"choices": [{"message": {"content": "  A short\n summary.  "}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    models.register_model("chat-test", lambda: models.ChatCompletionsModel("glm-4", base_url=url), replace=True)
    yield bodies
    models.unregister_model("chat-test")
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_text_generation_with_local_glm(glm_path):
    result = AutoTask("text-generation", model=glm_path, prompt="The  assert\tstatement ",
                      max_new_tokens=12).run()
    assert result.model_input == "The assert statement"
    m, tok, _ = models.load_glm(glm_path)
    raw = glm.generate(m, tok, "The assert statement", max_new_tokens=12, temperature=0.0, seed=0)
    assert result.raw_output == raw
    assert result.output == " ".join(raw.split())
    assert set(result.values) == {"prompt", "model_input", "raw_output", "output"}


def test_fill_blank_with_local_glm(glm_path):
    result = AutoTask("fill-blank", model=glm_path, prompt="The [MASK] statement", max_new_tokens=6).run()
    assert "[MASK]" not in result.raw_output
    assert result.raw_output.startswith("The ")


def test_summarization_with_local_glm_is_infilling(glm_path):
    result = AutoTask("summarization", model=glm_path, max_new_tokens=8).run(prompt="Some long text.")
    assert result.model_input == "Some long text.\nIn short: [MASK]"
    assert "[MASK]" not in result.output


def test_summarization_with_chat_model(chat_server):
    result = AutoTask("summarization", model="chat-test", prompt="Dask runs\n\n\n\ntask graphs.",
                      max_new_tokens=20).run()
    assert result.output == "A short summary."
    (body,) = chat_server
    assert body["max_tokens"] == 20 and "max_new_tokens" not in body
    content = body["messages"][0]["content"]
    assert content.startswith("Summarise") and content.endswith("Dask runs\n\ntask graphs.")


def test_pipeline_is_three_tasks_in_order(chat_server):
    graph = AutoTask("text-generation", model="chat-test", prompt="x").pipeline().compile()
    assert graph.tasks == ["preprocess", "inference", "postprocess"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"task_type": "translation"}, "use one of: text-generation"),
     ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
     ({"task_type": "fill-blank", "prompt": "no blank"}, r"needs at least one \[MASK\]"),
     ({"prompt": "   "}, "non-empty"),
     ({"max_new_tokens": 0}, "max_new_tokens")],
)
def test_bad_arguments_fail_before_running(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoTask(**kwargs)


def test_run_without_prompt_is_a_clear_error(glm_path):
    with pytest.raises(ValueError, match="no prompt"):
        AutoTask(model=glm_path).run()


def test_runs_on_the_engine(glm_path):
    pytest.importorskip("distributed")
    from openautoglm.engine.engine import Engine

    local = AutoTask("text-generation", model=glm_path, prompt="The ", max_new_tokens=6)
    with Engine(n_workers=1, processes=False, dashboard=False, progress=False) as engine:
        result = local.run(engine=engine)
    assert result.output == local.run().output
    assert result.values.schedule is not None  # the engine's record of the run
