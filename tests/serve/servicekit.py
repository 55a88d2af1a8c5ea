"""Helpers of the service tests: a real ``openautoglm serve`` process on 127.0.0.1 (an OS-given
port), a small real GLM checkpoint, KServe V2 request bodies."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parents[1] / "src")

torch.set_num_threads(1)


class Service:
    """One service process: ``url``, ``client()``, ``stop()`` (SIGTERM, then kill)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 timeout: float = 240.0) -> None:
        env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([SRC, str(HERE), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openautoglm", "serve", "--port", "0", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:  # keep draining, so the child never blocks on a pipe
                self.lines.append(line)
                if "listening on" in line:
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("the service did not start:\n" + "".join(self.lines))
        m = re.search(r"listening on (http://\S+)", "".join(self.lines))
        self.url = m.group(1)
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while True:  # ready once the planners are compiled and loaded versions restored
                try:
                    if c.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the service never got ready:\n" + "".join(self.lines))
                time.sleep(0.2)

    def client(self, token: str | None = None, timeout: float = 120.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def save_tiny_glm(path: Path, seed: int = 0, hidden: int = 16) -> Path:
    """A small random GLM as a .safetensors export (a real checkpoint, seconds to make)."""
    from openautoglm.glm import CharTokenizer, GLMConfig, GLMModel
    from openautoglm.glm.checkpoint import save_glm

    torch.manual_seed(seed)
    tok = CharTokenizer.from_text("abcdefghij klmnopqrstuvwxyz.")
    model = GLMModel(GLMConfig(vocab_size=tok.vocab_size, hidden=hidden, heads=2, max_len=48))
    return save_glm(path, model.eval(), tok)


def expected_text(path: Path, prompt: str, max_new_tokens: int) -> str:
    """What the checkpoint at ``path`` generates for ``prompt`` in this process."""
    from openautoglm.glm import generate
    from openautoglm.glm.checkpoint import load_glm

    model, tok, _ = load_glm(path)
    return generate(model, tok, prompt, max_new_tokens=max_new_tokens)


def infer_body(*prompts: str, max_new_tokens: int | None = None) -> dict:
    body = {"inputs": [{"name": "text", "shape": [len(prompts)], "datatype": "BYTES",
                        "data": list(prompts)}]}
    if max_new_tokens is not None:
        body["parameters"] = {"max_new_tokens": max_new_tokens}
    return body
