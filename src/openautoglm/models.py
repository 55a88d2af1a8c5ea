"""Model registry: local GLM checkpoints, OpenAI-style chat-completions backends, routing.

A *model* here is anything with ``generate(prompt, **kwargs) -> str``, a ``name``, a ``cost``
hint (seconds per call, used by routing) and ``available() -> bool``. A pipeline ``Task`` with
``model=`` and ``prompt_template=`` calls ``get_model(model).generate(prompt)`` at run time.

``get_model(name)`` resolves, in order:

1. a registered name (``register_model(name, factory)``); built in: ``"glm-small"`` and
   ``"glm-tiny"``, character-level GLMs trained on the shipped pydoc corpus the first time they
   are asked for and cached under :func:`cache_dir`;
2. a path to a GLM checkpoint directory (``openautoglm.glm.save_checkpoint``) or an export
   written by :func:`save_glm` (``.pt`` of tensors only, or ``.safetensors``);
3. ``"api:<model-id>"``: a :class:`ChatCompletionsModel` for ``<model-id>`` whose base URL and
   key come from ``OPENAUTOGLM_API_BASE`` / ``OPENAUTOGLM_API_KEY``.

A :class:`ModelRouter` is itself a model: it picks candidates per task name (glob rules), orders
them by cost if asked, skips unavailable ones and falls back to the next on error.

Tests: tests/test_models.py (a real HTTP server on 127.0.0.1).
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

ENV_API_BASE = "OPENAUTOGLM_API_BASE"
ENV_API_KEY = "OPENAUTOGLM_API_KEY"
ENV_CACHE = "OPENAUTOGLM_CACHE"


class ModelError(RuntimeError):
    """A model could not produce an answer (the message says why and what to do)."""


class ModelHTTPError(ModelError):
    """The backend answered with an HTTP error status (``.status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ModelTimeoutError(ModelError):
    """The backend did not answer within the timeout, after all retries."""


class ModelReplyError(ModelError):
    """The backend answered, but not with a chat-completions reply."""


@runtime_checkable
class Model(Protocol):
    """What every registered model provides."""

    name: str
    cost: float

    def generate(self, prompt: str, **kwargs: Any) -> str:
        """Return the model's continuation or answer for ``prompt``."""
        ...

    def available(self) -> bool:
        """Whether the model can be used now (without trying a generation)."""
        ...


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------
_FACTORIES: dict[str, Callable[[], Model]] = {}
_INSTANCES: dict[str, Model] = {}
_LOCK = threading.RLock()


def register_model(name: str, factory: Callable[[], Model], replace: bool = False) -> None:
    """Register ``factory`` (called once, on first use) under ``name``.

    Args:
        name: the name tasks refer to (``Task(model=name, ...)``).
        factory: a zero-argument callable returning a model.
        replace: allow replacing an existing registration.

    Raises:
        ValueError: the name is taken and ``replace`` is False, or the name is empty.
        TypeError: ``factory`` is not callable.

    >>> class Echo:
    ...     name, cost = "echo", 0.0
    ...     def generate(self, prompt, **kw): return prompt
    ...     def available(self): return True
    >>> register_model("echo-doc", Echo, replace=True)
    >>> get_model("echo-doc").generate("hi")
    'hi'
    """
    if not name or not isinstance(name, str):
        raise ValueError("a model name must be a non-empty string")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable (a class or a function), got {factory!r}")
    with _LOCK:
        if name in _FACTORIES and not replace:
            raise ValueError(f"model {name!r} is already registered; pass replace=True to override it")
        _FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def unregister_model(name: str) -> None:
    """Remove a registration (no error if absent)."""
    with _LOCK:
        _FACTORIES.pop(name, None)
        _INSTANCES.pop(name, None)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    with _LOCK:
        return sorted(_FACTORIES)


def check_model_name(name: str) -> None:
    """Raise the error :func:`get_model` would raise for ``name``, without building the model.

    >>> check_model_name("glm-small")
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a non-empty string, got {name!r}")
    p = Path(name).expanduser()
    if name in _FACTORIES or name in _INSTANCES or (name.startswith("api:") and len(name) > 4) \
            or p.is_file() or (p / "config.json").is_file():
        return
    raise ValueError(
        f"unknown model {name!r}: use a registered name ({', '.join(list_models()) or 'none'}), "
        "a path to a GLM checkpoint, or 'api:<model-id>' for an OpenAI-style server "
        f"(set {ENV_API_BASE} and {ENV_API_KEY})"
    )


def get_model(name: str, task: str | None = None) -> Model:
    """Resolve ``name`` to a model (registered name, checkpoint path, or ``api:<model-id>``).

    Instances are created once and shared (thread-safe).

    Args:
        name: what to resolve.
        task: the calling task's name; when ``name`` is a :class:`ModelRouter`, the router's
            choice for that task is returned (a model whose ``generate`` routes by it).

    Raises:
        ValueError: nothing matches; the message lists the registered names and the other forms.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a non-empty string, got {name!r}")
    with _LOCK:
        if name in _INSTANCES:
            model = _INSTANCES[name]
        elif name in _FACTORIES:
            model = _FACTORIES[name]()
        elif name.startswith("api:") and len(name) > 4:
            model = ChatCompletionsModel(name[4:])
        elif Path(name).expanduser().is_file() or (Path(name).expanduser() / "config.json").is_file():
            model = LocalGLM.from_checkpoint(Path(name).expanduser())
        else:
            check_model_name(name)
            raise AssertionError("unreachable")  # pragma: no cover
        _INSTANCES[name] = model
    if task is not None and isinstance(model, ModelRouter):
        return model.for_task(task)
    return model


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


#: Built-in GLMs: model shape and training recipe (seconds on one CPU thread in the comment).
GLM_PRESETS: dict[str, dict[str, Any]] = {
    # about 3 s: enough to produce character soup, for tests and demos
    "glm-tiny": {"model": {"n_layers": 1, "hidden": 32, "heads": 2, "max_len": 128},
                 "train": {"steps": 40, "batch_size": 8, "seq_len": 64, "lr": 3e-3}},
    # about 30 s on one thread
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
    from openautoglm import glm

    directory = Path(directory) if directory is not None else cache_dir()
    path = directory / f"{preset}-seed{seed}"
    if (path / "config.json").is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    recipe = GLM_PRESETS[preset]
    text = glm.load_corpus("pydoc")
    # A dict config takes its vocab_size from the tokenizer train() builds.
    model, tokenizer, _ = glm.train(dict(recipe["model"]), text, seed=seed, **recipe["train"])
    # Write then rename, so a concurrent reader never sees half a checkpoint.
    tmp = directory / f".{preset}-seed{seed}.tmp{os.getpid()}-{threading.get_ident()}"
    glm.save_checkpoint(tmp, model, tokenizer, extra={"preset": preset, "recipe": recipe})
    try:
        os.replace(tmp, path)
    except OSError:  # another process won the race: keep its checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
    return path


_EXPORT_FORMAT = "openautoglm.glm.export/1"


def save_glm(path: str | Path, model: Any, tokenizer: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write a GLM as weights plus config, never as a pickle of objects.

    ``.safetensors``: tensors, with config and tokenizer as JSON metadata. ``.pt``/``.pth``:
    ``torch.save`` of a dict holding only tensors, strings and numbers, which loads with
    ``torch.load(weights_only=True)``. Any other path: a checkpoint directory
    (``openautoglm.glm.save_checkpoint``).

    Raises:
        ValueError: a ``.pkl``/``.pickle`` path (pickles of objects are refused).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        raise ValueError(f"{path}: refusing to write a pickle (loading one can run arbitrary code); "
                         "use a .pt (tensors only), .safetensors or a directory path instead")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": _EXPORT_FORMAT, "config": model.config.to_dict(),
            "tokenizer": tokenizer.to_dict(), "extra": extra or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path), metadata={"openautoglm": json.dumps(meta)})
    elif suffix in (".pt", ".pth"):
        import torch

        torch.save({"meta": json.dumps(meta), "state_dict": state}, path)
    else:
        from openautoglm import glm

        glm.save_checkpoint(path, model, tokenizer, extra=extra)
    return path


def load_glm(path: str | Path) -> tuple[Any, Any, Any]:
    """Load what :func:`save_glm` wrote; never unpickles objects.

    Returns:
        ``(model, tokenizer, config)``, the model in eval mode.

    Raises:
        ValueError: a pickle path, or a file that is not an openautoglm export.
        FileNotFoundError: nothing at ``path``.
    """
    from openautoglm import glm

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        raise ValueError(f"{path}: pickled models are not loaded; export weights as .pt/.safetensors")
    if path.is_dir():
        return glm.load_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}")
    if suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("openautoglm")
        state = load_file(str(path))
    elif suffix in (".pt", ".pth"):
        import torch

        blob = torch.load(path, map_location="cpu", weights_only=True)
        raw = blob.get("meta") if isinstance(blob, dict) else None
        state = blob.get("state_dict") if isinstance(blob, dict) else None
    else:
        raise ValueError(f"{path}: unknown model file type; use .pt, .safetensors or a checkpoint directory")
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != _EXPORT_FORMAT or state is None:
        raise ValueError(f"{path} is not an openautoglm GLM export (format {meta.get('format')!r})")
    config = glm.GLMConfig(**meta["config"])
    model = glm.GLMModel(config)
    model.load_state_dict(state)
    model.eval()
    return model, glm.CharTokenizer.from_dict(meta["tokenizer"]), config


class LocalGLM:
    """A local GLM behind the model interface.

    Args:
        model: the trained ``torch.nn.Module``.
        tokenizer: its tokenizer.
        config: its ``GLMConfig``.
        name: display name.
        cost: cost hint per call in seconds.
    """

    def __init__(self, model: Any, tokenizer: Any, config: Any, name: str = "glm", cost: float = 0.2) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.name = name
        self.cost = cost
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, name: str | None = None) -> LocalGLM:
        """Load a checkpoint directory or an export of :func:`save_glm` (weights only)."""
        path = Path(path)
        model, tokenizer, config = load_glm(path)
        return cls(model, tokenizer, config, name=name or path.stem)

    def available(self) -> bool:
        return True

    def generate(self, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int | None = 0, **_: Any) -> str:
        """Continue ``prompt``; returns only the new text (at most ``max_len - 1`` characters)."""
        from openautoglm import glm

        max_new_tokens = min(max_new_tokens, self.config.max_len - 1)

        with self._lock:  # one module, shared by threads: keep generation serial
            return glm.generate(self.model, self.tokenizer, prompt, max_new_tokens=max_new_tokens,
                                temperature=temperature, seed=seed)

    def fill_blank(self, text: str, max_new_tokens: int = 16, temperature: float = 0.0,
                   seed: int | None = 0) -> str:
        """Fill every ``[MASK]`` of ``text`` (GLM blank infilling); returns the completed text."""
        from openautoglm import glm

        max_new_tokens = min(max_new_tokens, self.config.max_len - 1)

        with self._lock:
            return glm.fill_blank(self.model, self.tokenizer, text, max_new_tokens=max_new_tokens,
                                  temperature=temperature, seed=seed)


def _preset_factory(preset: str) -> Callable[[], Model]:
    def factory() -> Model:
        return LocalGLM.from_checkpoint(glm_checkpoint(preset), name=preset)

    return factory


for _preset in GLM_PRESETS:
    register_model(_preset, _preset_factory(_preset))


# ---------------------------------------------------------------------------------------------
# OpenAI-style chat completions over HTTP
# ---------------------------------------------------------------------------------------------
class ChatCompletionsModel:
    """A hosted model speaking ``POST {base_url}/chat/completions``.

    Sends ``{"model", "messages": [{"role": "user", "content": prompt}], **params}`` and returns
    ``choices[0].message.content``. HTTP 5xx, 429 and timeouts are retried with exponential
    backoff (``backoff * 2**attempt`` seconds, or the server's ``Retry-After`` when shorter than
    30 s); other 4xx answers and malformed replies fail at once.

    Args:
        model: the backend's model id (e.g. ``"glm-4"``, ``"gpt-4o"``).
        base_url: e.g. ``"https://api.example.com/v1"``; default ``$OPENAUTOGLM_API_BASE``.
        api_key: bearer token; default ``$OPENAUTOGLM_API_KEY`` (may be absent for local servers).
        timeout: seconds per attempt.
        max_retries: retries after the first attempt.
        backoff: first retry delay in seconds.
        cost: cost hint per call in seconds (routing).
        system: optional system message.
        name: display/registry name.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 3, backoff: float = 0.5,
                 cost: float = 1.0, system: str | None = None, name: str | None = None) -> None:
        if not model:
            raise ValueError("ChatCompletionsModel needs a model id, e.g. ChatCompletionsModel('glm-4')")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, max_retries and backoff >= 0")
        self.model = model
        self.base_url = (base_url or os.environ.get(ENV_API_BASE) or "").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.cost = float(cost)
        self.system = system
        self.name = name or f"api:{model}"
        self.attempts = 0  # total HTTP attempts made, for inspection

    def available(self) -> bool:
        return bool(self.base_url)

    def generate(self, prompt: str, **params: Any) -> str:
        """Send one chat turn and return the reply text.

        Args:
            prompt: the user message.
            **params: passed through in the JSON body (``temperature``, ``max_tokens``...);
                ``max_new_tokens`` is sent as ``max_tokens``.

        Raises:
            ModelError: no base URL configured; or a subclass: ``ModelHTTPError`` (status
                attached), ``ModelTimeoutError``, ``ModelReplyError`` (malformed reply).
        """
        if not self.base_url:
            raise ModelError(f"{self.name}: no base URL; pass base_url=... or set {ENV_API_BASE}")
        if "max_new_tokens" in params:  # the local models' name for the OpenAI field
            params["max_tokens"] = params.pop("max_new_tokens")
        messages = ([{"role": "system", "content": self.system}] if self.system else [])
        messages.append({"role": "user", "content": prompt})
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode()
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            delay = self.backoff * 2 ** attempt
            try:
                return self._parse(self._post(url, body))
            except ModelHTTPError as err:
                if not (err.status >= 500 or err.status == 429) or attempt == self.max_retries:
                    raise
                delay = min(getattr(err, "retry_after", None) or delay, 30.0)
            except ModelTimeoutError:
                if attempt == self.max_retries:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, url: str, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        self.attempts += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode("utf-8", "replace")
            hint = {401: f"check the API key ({ENV_API_KEY})", 403: "the key lacks access to this model",
                    404: f"check the base URL ({ENV_API_BASE}) and the model id {self.model!r}",
                    429: "rate limited"}.get(err.code, "server error" if err.code >= 500 else "bad request")
            error = ModelHTTPError(f"{self.name}: HTTP {err.code} from {url} ({hint}): {detail}", err.code)
            retry_after = err.headers.get("Retry-After") if err.headers else None
            error.retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None  # type: ignore[attr-defined]
            raise error from None
        except (TimeoutError, socket.timeout) as err:
            raise ModelTimeoutError(f"{self.name}: no answer from {url} within {self.timeout:g} s "
                                    f"after {self.attempts} attempt(s); raise timeout=") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, socket.timeout)):
                raise ModelTimeoutError(f"{self.name}: no answer from {url} within {self.timeout:g} s") from err
            raise ModelError(f"{self.name}: cannot reach {url}: {err.reason}; check {ENV_API_BASE}") from err

    def _parse(self, raw: bytes) -> str:
        try:
            reply = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelReplyError(f"{self.name}: reply is not JSON: {raw[:200]!r}") from None
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ModelReplyError(
                f"{self.name}: reply lacks choices[0].message.content (not a chat-completions "
                f"server?): {json.dumps(reply)[:200]}") from None
        if not isinstance(content, str):
            raise ModelReplyError(f"{self.name}: choices[0].message.content is {type(content).__name__}, not text")
        return content


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------
class ModelRouter:
    """Choose a model per task: by name (glob rules), by cost, by availability, with fallback.

    Args:
        rules: ``[(task_name_glob, [model names...]), ...]``; the first matching rule gives the
            candidates, in preference order.
        default: candidates for tasks no rule matches (and for calls without a task name).
        prefer: ``"order"`` keeps the rule's order; ``"cost"`` tries the cheapest first
            (each model's ``cost``).
        name: display/registry name.

    Register it like any model, then refer to it from tasks::

        router = ModelRouter([("summar*", ["api:glm-4", "glm-small"])], default=["glm-small"])
        register_model("auto", lambda: router)

    ``generate(prompt, task="summarize")`` skips candidates whose ``available()`` is False and,
    when one raises :class:`ModelError`, falls back to the next; ``last_used`` names the model
    that answered. When all fail, one ``ModelError`` lists every attempt.
    """

    def __init__(self, rules: Sequence[tuple[str, Sequence[str]]] = (), default: Sequence[str] = (),
                 prefer: str = "order", name: str = "router") -> None:
        if prefer not in ("order", "cost"):
            raise ValueError(f"prefer must be 'order' or 'cost', got {prefer!r}")
        self.rules = [(str(p), list(c)) for p, c in rules]
        for pattern, cands in self.rules:
            if not cands:
                raise ValueError(f"rule {pattern!r} has no candidate models")
        self.default = list(default)
        if not self.rules and not self.default:
            raise ValueError("a ModelRouter needs rules or a default list of models")
        self.prefer = prefer
        self.name = name
        self.last_used: str | None = None

    @property
    def cost(self) -> float:
        costs = [get_model(m).cost for m in self.candidates(None)]
        return min(costs) if costs else 0.0

    def available(self) -> bool:
        return any(get_model(m).available() for m in {m for _, c in self.rules for m in c} | set(self.default))

    def candidates(self, task: str | None) -> list[str]:
        """Candidate model names for ``task``, best first."""
        chosen = self.default
        if task is not None:
            for pattern, cands in self.rules:
                if fnmatch.fnmatchcase(task, pattern):
                    chosen = cands
                    break
        if self.prefer == "cost":
            return sorted(chosen, key=lambda m: get_model(m).cost)
        return list(chosen)

    def for_task(self, task: str) -> Model:
        """This router seen from one task: ``generate(prompt)`` routes by ``task``."""
        return _RoutedModel(self, task)

    def generate(self, prompt: str, task: str | None = None, **kwargs: Any) -> str:
        """Answer with the first available candidate for ``task`` that does not fail."""
        errors = []
        for candidate in self.candidates(task):
            model = get_model(candidate)
            if not model.available():
                errors.append(f"{candidate}: unavailable")
                continue
            try:
                out = model.generate(prompt, **kwargs)
            except ModelError as err:
                errors.append(f"{candidate}: {err}")
                continue
            self.last_used = candidate
            return out
        raise ModelError(f"{self.name}: no model answered for task {task!r}: " + "; ".join(errors or ["no candidates"]))


class _RoutedModel:
    """A :class:`ModelRouter` bound to one task name."""

    def __init__(self, router: ModelRouter, task: str) -> None:
        self.router = router
        self.task = task
        self.name = f"{router.name}[{task}]"

    @property
    def cost(self) -> float:
        return self.router.cost

    def available(self) -> bool:
        return self.router.available()

    def generate(self, prompt: str, **kwargs: Any) -> str:
        return self.router.generate(prompt, task=self.task, **kwargs)
