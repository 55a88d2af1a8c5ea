"""Every code block of README.md runs as pasted, in order, and says what it prints.

The convention, for everyone who edits the README:

- ```python blocks run in order in ONE namespace (a fresh interpreter, like a user pasting
  them into one session). Keep each block fast (< 10 s); a block may use what earlier blocks
  defined, and nothing else.
- A ``print(...)`` whose line ends in a comment that begins with a value is checked:
  ``print(x)  # 42``, ``# ['a', 'b']: every key`` (explanation after ``:``, `` (``, ``;``,
  ``,``, `` -`` or two spaces), ``# 4.58 -> 2.92`` (numbers compared at the precision
  written), ``# 422 cluster.workers: ... >= 1`` (``...`` stands for any text), ``# >= 1``
  (a comparison). A comment that begins with words is prose and is not
  checked. See ``check_comment`` in tests/integration/readme_blocks.py.
- ```bash blocks run command by command (``\\`` continuations joined) with ``openautoglm`` on
  the PATH, as after ``source .venv/bin/activate``.
- Directives, an HTML comment on the line(s) just above a fence:
  ``<!-- readme-test: skip WHY -->`` shows a block without running it (say why: "installs the
  package", "trains for a minute");
  ``<!-- readme-test: file NAME -->`` writes the block (e.g. a ```yaml config) to NAME at its
  place in the order, so the blocks after it can read it.
  Other languages (```yaml, plain ```) are shown only.
- Where it runs: a temporary directory laid out like a checkout (``tests``, ``src``,
  ``benchmarks``, ``notebooks`` linked in, ``../shared`` linked beside it when the real traces
  exist; a block naming ``../shared/`` is skipped where they do not). Files a block writes land
  there. ``OPENAUTOGLM_CACHE`` (built-in models, trained once per test session),
  ``OPENAUTOGLM_HISTORY`` point into it; ``OPENAUTOGLM_API_BASE`` points at a real
  OpenAI-style HTTP server on 127.0.0.1 that this test starts (``api:`` models answer from it:
  no network); ``OPENAUTOGLM_TORCH_THREADS=1``.

One interpreter runs all blocks (tests/integration/readme_blocks.py); each block is then reported as its
own test, ``test_readme_block[README.md:LINE-LANG]``, with the traceback or the mismatch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from readme_blocks import blocks

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
BLOCKS = blocks(README.read_text(encoding="utf-8"))


class ChatServer:
    """A real OpenAI-style chat-completions server on 127.0.0.1 (an OS-chosen port).

    It answers every request with the user message's first sentence, prefixed ``"Summary: "``:
    deterministic, and visibly from this server.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    self.send_response(404)
                    self.end_headers()
                    return
                text = body["messages"][-1]["content"].split("\n\n")[-1]
                reply = "Summary: " + text.split(". ")[0].strip().rstrip(".") + "."
                payload = json.dumps({"choices": [{"message": {"role": "assistant",
                                                               "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _checkout(where: Path) -> Path:
    """A working directory that looks like the repository beside ``../shared``."""
    repo = where / "repo"
    repo.mkdir()
    for name in ("tests", "src", "benchmarks", "notebooks"):
        (repo / name).symlink_to(ROOT / name, target_is_directory=True)
    if (SHARED / "workflows").is_dir():
        (where / "shared").symlink_to(SHARED, target_is_directory=True)
    return repo


@pytest.fixture(scope="module")
def readme_results(tmp_path_factory) -> dict[int, dict]:
    """Run README.md's blocks once, in one interpreter; results by first code line."""
    where = tmp_path_factory.mktemp("readme")
    repo = _checkout(where)
    bin_dir = where / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "openautoglm"  # what `source .venv/bin/activate` puts on the PATH
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m openautoglm "$@"\n')
    shim.chmod(0o755)
    server = ChatServer()
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p),
        "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        "OPENAUTOGLM_CACHE": str(tmp_path_factory.getbasetemp() / "openautoglm-cache"),
        "OPENAUTOGLM_HISTORY": str(where / "history.sqlite"),
        "OPENAUTOGLM_API_BASE": server.base_url,
        "OPENAUTOGLM_API_KEY": "sk-readme-test",
        "OPENAUTOGLM_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    })
    results = where / "results.jsonl"
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).with_name("readme_blocks.py")), str(README),
                              str(results)], cwd=repo, env=env, capture_output=True, text=True,
                             timeout=1700)
    finally:
        server.close()
    (where / "stdout.txt").write_text(out.stdout + out.stderr)
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    if not rows:
        pytest.fail(f"the README runner produced nothing:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return {row["line"]: row for row in rows}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first block's setup runs them all: minutes idle, more on a busy box
@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}-{b.lang}" for b in BLOCKS])
def test_readme_block(readme_results, block):
    row = readme_results.get(block.line)
    assert row is not None, "the runner stopped before this block"
    if row["status"] == "skipped":
        pytest.skip(row["detail"])
    assert row["status"] == "ok", f"README.md:{block.line} ({block.lang}) failed:\n{row['detail']}"


def test_readme_has_python_and_bash_blocks_that_run():
    """The convention is in force: most blocks run; skips are few and say why."""
    runs = [b for b in BLOCKS if b.lang in ("python", "bash") and "skip" not in b.directives]
    assert len(runs) >= 20
    for b in BLOCKS:
        if "skip" in b.directives:
            assert b.directives["skip"], f"README.md:{b.line}: a skip must say why"
