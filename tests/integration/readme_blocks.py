"""Run a markdown file's code blocks in order, as a user pasting them would (see tests/integration/test_readme.py).

``python tests/integration/readme_blocks.py README.md results.jsonl`` runs every block of ``README.md`` in
the current directory and writes one JSON line per block: ``line``, ``lang``, ``status``
(``ok``, ``failed``, ``skipped``), ``detail`` (the traceback, the mismatch or the skip reason)
and ``seconds``. It never stops at a failed block: the blocks after it still run, so one
report names every broken block.

Python blocks run in ONE namespace, in this process, compiled under the file name
``README.md:<line>`` so a traceback points at the README's own line. ``print`` is wrapped: a
``print`` whose line ends in a comment that states a value is checked (:func:`check_comment`).
"""
from __future__ import annotations

import ast
import io
import json
import math
import os
import re
import subprocess
import sys
import time
import tokenize
import traceback
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
RELATION = re.compile(r"^(>=|<=|==|!=|>|<)\s*(" + NUMBER.pattern + r")")
#: What may follow the stated value in a comment: an explanation, not part of the value.
EXPLANATION = (":", " (", ";", ",", "  ", " -", " —")
SHARED = "../shared/"


@dataclass
class Block:
    """One fenced block: its language, first code line (1-based) and text, and directives."""

    lang: str
    line: int
    text: str
    directives: dict[str, str] = field(default_factory=dict)


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of ``markdown`` in order, each with the directives just above it.

    A directive is an HTML comment on its own line, ``<!-- readme-test: NAME ARGUMENT -->``,
    between the previous block (or prose) and the fence it applies to.
    """
    out: list[Block] = []
    pending: dict[str, str] = {}
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        d = DIRECTIVE.match(lines[i])
        m = FENCE.match(lines[i])
        if d:
            pending[d.group(1)] = d.group(2)
        elif m:
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(Block(m.group(1) or "text", start + 1, "\n".join(lines[start:j]) + "\n", pending))
            pending = {}
            i = j
        i += 1
    return out


def commands(text: str) -> list[str]:
    """The shell commands of a bash block: ``\\``-continued lines joined, comments kept."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip() and not current.lstrip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def _round_like(printed: str, comment: str) -> str:
    """``printed`` with each number rounded to the decimals of the comment's number at the
    same position (``3.14159`` against ``3.14`` reads ``3.14``; ``80.0`` against ``80``,
    ``80``)."""
    stated = NUMBER.findall(comment)
    k = iter(stated)

    def repl(m: re.Match[str]) -> str:
        ref = next(k, None)
        if ref is None or any(c in ref for c in "eE"):
            return m.group(0)
        decimals = len(ref.split(".")[1]) if "." in ref else 0
        value = float(m.group(0))
        return f"{value:.{decimals}f}" if math.isfinite(value) else m.group(0)

    return NUMBER.sub(repl, printed)


def states_value(comment: str) -> bool:
    """Whether a comment states the printed value: it begins with a Python literal (a number,
    string, list, dict, tuple, set, True/False/None) or a comparison such as ``>= 1``."""
    if RELATION.match(comment):
        return True
    for end in range(len(comment), 0, -1):
        try:
            ast.literal_eval(comment[:end].strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return True
    return False


def check_comment(printed: str, comment: str) -> str | None:
    """Compare a ``print``'s output with the comment on its line; ``None`` when it holds.

    The convention: a comment that begins with a value states what is printed (``# 42``,
    ``# ['a', 'b']``, ``# 4.58 -> 2.92``; ``...`` stands for any text), optionally followed by
    an explanation after ``:``,
    `` (``, ``;``, ``,``, `` -`` or two spaces. Numbers are compared at the precision the
    comment writes them. ``# >= 1`` (``<=``, ``>``, ``<``, ``==``, ``!=``) compares the printed
    number. A comment that begins with words (``# one row per task``) is prose, not checked.

    >>> check_comment("3.14159", "3.14")
    >>> check_comment("['a', 'b']", "['a', 'b']: every key")
    >>> check_comment("1.07", ">= 1")
    >>> check_comment("0.9", ">= 1")
    'printed 0.9, the comment says >= 1'
    >>> check_comment("7", "one row per task")
    >>> check_comment("glm-4", "'glm-4'")
    >>> check_comment("422 workers: Input should be >= 1", "422 workers: ... >= 1")
    >>> check_comment("422 workers", "400 ...")
    "printed '422 workers', the comment says '400 ...'"
    """
    comment = comment.strip()
    printed = printed.rstrip("\n")
    rel = RELATION.match(comment)
    if rel:
        op, bound = rel.group(1), float(rel.group(2))
        try:
            value = float(printed.strip())
        except ValueError:
            return f"printed {printed!r}, not a number to compare with {comment!r}"
        ok = {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound,
              "==": value == bound, "!=": value != bound}[op]
        return None if ok else f"printed {printed}, the comment says {comment}"
    if not states_value(comment):
        return None
    shown = _round_like(printed, comment)
    if comment == shown or any(comment.startswith(shown + sep) for sep in EXPLANATION):
        return None
    quoted = repr(printed)  # print("glm-4") against "# 'glm-4'": the comment quotes a string
    if comment == quoted or any(comment.startswith(quoted + sep) for sep in EXPLANATION):
        return None
    if "..." in comment:  # "..." stands for any text: "# 422 cluster.workers: ... >= 1"
        cuts = [comment] + [comment[:i] for sep in EXPLANATION
                            for i in (m.start() for m in re.finditer(re.escape(sep), comment))]
        for value in cuts:
            pattern = ".*".join(re.escape(part) for part in value.split("..."))
            if re.fullmatch(pattern, printed, flags=re.DOTALL):
                return None
    return f"printed {printed!r}, the comment says {comment!r}"


def _print_comments(source: str) -> dict[int, str]:
    """Line -> comment, for lines holding a ``print(`` call and ending in a comment."""
    out: dict[int, str] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return out
    lines = source.splitlines()
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            if "print(" in lines[row - 1][: tok.start[1]]:
                out[row] = tok.string[1:].strip()
    return out


class _Prints:
    """A ``print`` that also records what each README line printed."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.seen: list[tuple[int, str]] = []

    def __call__(self, *args: object, sep: str | None = " ", end: str | None = "\n",
                 file: object = None, flush: bool = False) -> None:
        print(*args, sep=sep, end=end, file=file, flush=flush)  # noqa: T201
        if file is None or file is sys.stdout:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename != self.filename:
                frame = frame.f_back
            if frame is not None:
                self.seen.append((frame.f_lineno, (" " if sep is None else sep).join(map(str, args))))


def _run_python(block: Block, namespace: dict[str, object], source_name: str) -> str | None:
    filename = f"{source_name}:{block.line}"
    # Blank lines in front: line numbers in tracebacks are the README's own.
    source = "\n" * (block.line - 1) + block.text
    prints = _Prints(filename)
    namespace["print"] = prints
    try:
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the README is ours
    finally:
        namespace.pop("print", None)
    comments = _print_comments(source)
    problems = []
    for row, printed in prints.seen:
        if row in comments:
            problem = check_comment(printed, comments[row])
            if problem:
                problems.append(f"{source_name} line {row}: {problem}")
    return "\n".join(problems) or None


def _run_bash(block: Block) -> str | None:
    for command in commands(block.text):
        if SHARED in command and not Path("..", "shared").is_dir():
            sys.stdout.write(f"$ {command}\n(not run: {SHARED} is absent here)\n")
            continue
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
        sys.stdout.write(f"$ {command}\n{out.stdout}{out.stderr}")
        if out.returncode != 0:
            return (f"`{command}` exited with {out.returncode}:\n{out.stdout[-2000:]}\n"
                    f"{out.stderr[-3000:]}")
    return None


def _skip_reason(block: Block) -> str | None:
    if "skip" in block.directives:
        return block.directives["skip"] or "marked <!-- readme-test: skip -->"
    if block.lang not in ("python", "bash") and "file" not in block.directives:
        return f"a {block.lang} block is shown, not run (give it <!-- readme-test: file NAME --> to write it)"
    if block.lang == "python" and SHARED in block.text and not Path("..", "shared").is_dir():
        return f"needs {SHARED} (the real workflow traces), absent here"
    return None


def run(markdown_path: Path, results_path: Path) -> int:
    """Run every block of ``markdown_path`` here; one JSON line per block to ``results_path``."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    name = markdown_path.name
    failed = 0
    with results_path.open("w") as results:
        for block in blocks(markdown_path.read_text(encoding="utf-8")):
            t0 = time.perf_counter()
            status, detail = "ok", None
            reason = _skip_reason(block)
            sys.stdout.write(f"\n===== {name}:{block.line} ({block.lang}) =====\n")
            if reason:
                status, detail = "skipped", reason
            elif "file" in block.directives:
                Path(block.directives["file"]).write_text(block.text, encoding="utf-8")
            else:
                try:
                    if block.lang == "python":
                        detail = _run_python(block, namespace, name)
                    else:
                        detail = _run_bash(block)
                except BaseException:  # noqa: BLE001 - report it, then run the next block
                    detail = traceback.format_exc()
                status = "failed" if detail else "ok"
            failed += status == "failed"
            sys.stdout.flush()
            results.write(json.dumps({"line": block.line, "lang": block.lang, "status": status,
                                      "detail": detail, "seconds": time.perf_counter() - t0}) + "\n")
            results.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(run(Path(sys.argv[1]), Path(sys.argv[2])))
