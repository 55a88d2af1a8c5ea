"""Local GLMs as models: :class:`LocalGLM`, the named presets (``glm-small``, ...) trained once
into :func:`cache_dir`, and their registration.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openautoglm.models.registry import Model, register_model, register_resolver

__all__ = ["LocalGLM"]


ENV_CACHE = "OPENAUTOGLM_CACHE"


# ---------------------------------------------------------------------------------------------
# Local GLM checkpoints
# ---------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where built-in checkpoints are cached: ``$OPENAUTOGLM_CACHE``, else
    ``$XDG_CACHE_HOME/openautoglm``, else ``~/.cache/openautoglm``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "openautoglm"


#: Built-in GLMs: model shape and training recipe. Training runs on first use, on
#: ``OPENAUTOGLM_TORCH_THREADS`` threads (default 1); benchmarks/results/first_use.md has the times.
GLM_PRESETS: dict[str, dict[str, Any]] = {
    # enough to produce character soup, for tests and demos
    "glm-tiny": {"model": {"n_layers": 1, "hidden": 32, "heads": 2, "max_len": 128},
                 "train": {"steps": 40, "batch_size": 8, "seq_len": 64, "lr": 3e-3}},
    # the default model of AutoTask
    "glm-small": {"model": {"n_layers": 2, "hidden": 64, "heads": 4, "max_len": 256},
                  "train": {"steps": 500, "batch_size": 16, "seq_len": 96, "lr": 3e-3}},
}


def glm_checkpoint(preset: str, directory: str | Path | None = None, seed: int = 0) -> Path:
    """Path of a built-in GLM's checkpoint, training and caching it on first use.

    Args:
        preset: a key of :data:`GLM_PRESETS`.
        directory: cache directory (default :func:`cache_dir`).
        seed: training seed (part of the name).

    Returns:
        The checkpoint directory (as written by ``openautoglm.glm.save_checkpoint``).

    Raises:
        ValueError: unknown preset.
    """
    if preset not in GLM_PRESETS:
        raise ValueError(f"unknown GLM preset {preset!r}; use one of: {', '.join(GLM_PRESETS)}")
    directory = Path(directory) if directory is not None else cache_dir()
    path = directory / f"{preset}-seed{seed}"
    if (path / "config.json").is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    recipe = GLM_PRESETS[preset]
    # Say what happens before importing torch and the GLM, which alone takes seconds.
    with _FirstUseProgress(preset, recipe["train"]["steps"], path) as progress:
        from openautoglm import glm

        with glm.using_threads():
            text = glm.load_corpus("pydoc")
            # A dict config takes its vocab_size from the tokenizer train() builds.
            model, tokenizer, _ = glm.train(dict(recipe["model"]), text, seed=seed,
                                            callback=progress.update, **recipe["train"])
    # Write then rename, so a concurrent reader never sees half a checkpoint.
    tmp = directory / f".{preset}-seed{seed}.tmp{os.getpid()}-{threading.get_ident()}"
    glm.save_checkpoint(tmp, model, tokenizer, extra={"preset": preset, "recipe": recipe})
    try:
        os.replace(tmp, path)
    except OSError:  # another process won the race: keep its checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class _FirstUseProgress:
    """Tells the user, on stderr and at once, that a built-in GLM is being trained, where it
    will be cached, and how far training is (a rich progress bar, updated at each evaluation)."""

    def __init__(self, preset: str, steps: int, path: Path) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True, highlight=False)
        self.preset, self.steps, self.path = preset, steps, path
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
                                 TextColumn("{task.fields[loss]}"), TimeElapsedColumn(),
                                 console=self.console, transient=False)
        self.task = self.progress.add_task(f"training {preset}", total=steps, loss="")

    def __enter__(self) -> _FirstUseProgress:
        threads = os.environ.get("OPENAUTOGLM_TORCH_THREADS", "").strip() or "1"
        self.console.print(
            f"openautoglm: first use of {self.preset!r}: training it on the pydoc corpus "
            f"({self.steps} steps, {threads} torch thread(s), set OPENAUTOGLM_TORCH_THREADS "
            f"to change); it is cached in {self.path} ({ENV_CACHE} moves the cache) and loads "
            "from there next time")
        self.progress.start()
        return self

    def update(self, step: int, val_loss: float) -> bool:
        self.progress.update(self.task, completed=step, loss=f"val loss {val_loss:.2f}")
        return True

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class LocalGLM:
    """A local GLM behind the model interface.

    Args:
        model: the trained ``torch.nn.Module``.
        tokenizer: its tokenizer.
        config: its ``GLMConfig``.
        name: display name.
        cost: cost hint per call in seconds.
        threads: torch threads while it computes (default ``$OPENAUTOGLM_TORCH_THREADS``,
            else 1: see :mod:`openautoglm.glm.threads`).
    """

    def __init__(self, model: Any, tokenizer: Any, config: Any, name: str = "glm", cost: float = 0.2,
                 threads: int | None = None) -> None:
        from openautoglm.glm.threads import torch_threads

        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.name = name
        self.cost = cost
        self.threads = None if threads is None else torch_threads(threads)
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, name: str | None = None) -> LocalGLM:
        """Load a checkpoint directory or an export of :func:`save_glm` (weights only)."""
        path = Path(path)
        from openautoglm.glm.checkpoint import (
            load_glm,  # lazy: torch only when a GLM is built
        )

        model, tokenizer, config = load_glm(path)
        return cls(model, tokenizer, config, name=name or path.stem)

    def available(self) -> bool:
        return True

    def generate(self, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int | None = 0, **_: Any) -> str:
        """Continue ``prompt``; returns only the new text (at most ``max_len - 1`` characters)."""
        from openautoglm import glm

        max_new_tokens = min(max_new_tokens, self.config.max_len - 1)

        with self._lock, glm.using_threads(self.threads):  # one module, shared by threads: serial
            return glm.generate(self.model, self.tokenizer, prompt, max_new_tokens=max_new_tokens,
                                temperature=temperature, seed=seed)

    def fill_blank(self, text: str, max_new_tokens: int = 16, temperature: float = 0.0,
                   seed: int | None = 0) -> str:
        """Fill every ``[MASK]`` of ``text`` (GLM blank infilling); returns the completed text."""
        from openautoglm import glm

        max_new_tokens = min(max_new_tokens, self.config.max_len - 1)

        with self._lock, glm.using_threads(self.threads):
            return glm.fill_blank(self.model, self.tokenizer, text, max_new_tokens=max_new_tokens,
                                  temperature=temperature, seed=seed)


def _preset_factory(preset: str) -> Callable[[], Model]:
    def factory() -> Model:
        return LocalGLM.from_checkpoint(glm_checkpoint(preset), name=preset)

    return factory


for _preset in GLM_PRESETS:
    register_model(_preset, _preset_factory(_preset))


def _is_checkpoint(name: str) -> bool:
    p = Path(name).expanduser()
    return p.is_file() or (p / "config.json").is_file()


register_resolver(_is_checkpoint, lambda name: LocalGLM.from_checkpoint(Path(name).expanduser()))
