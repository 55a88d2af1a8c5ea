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

Tests: tests/models/test_models.py (a real HTTP server on 127.0.0.1).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["register_model", "get_model", "ModelError"]
ENV_API_BASE = "OPENAUTOGLM_API_BASE"
ENV_API_KEY = "OPENAUTOGLM_API_KEY"


class ModelError(RuntimeError):
    """A model could not produce an answer (the message says why and what to do)."""


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
_RESOLVERS: list[tuple[Callable[[str], bool], Callable[[str], Model]]] = []
_LOCK = threading.RLock()


def register_resolver(accepts: Callable[[str], bool], build: Callable[[str], Model]) -> None:
    """Let :func:`get_model` resolve a *form* of name rather than one registered name.

    The backends register theirs when imported (``openautoglm.models`` imports them all, so
    they are in place whenever this module is): ``chat`` accepts ``"api:<model-id>"``,
    ``local`` a checkpoint path. Tried in registration order, after the registered names.

    Args:
        accepts: ``accepts(name)`` is true when ``build(name)`` can make the model (cheap: no
            model is built; :func:`check_model_name` uses it too).
        build: Makes the model for an accepted name.
    """
    with _LOCK:
        _RESOLVERS.append((accepts, build))


def _resolver_for(name: str) -> Callable[[str], Model] | None:
    for accepts, build in _RESOLVERS:
        if accepts(name):
            return build
    return None


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
    if name.startswith("api:") and len(name) > 4 and name not in _FACTORIES:
        model = _INSTANCES.get(name)
        if not (model.available() if model is not None else os.environ.get(ENV_API_BASE)):
            raise ValueError(
                f"model {name!r} has no base URL: set {ENV_API_BASE} to the server's address "
                "(e.g. https://open.bigmodel.cn/api/paas/v4 or http://127.0.0.1:8000/v1), or "
                f"register it with register_model({name[4:]!r}, lambda: ChatCompletionsModel("
                f"{name[4:]!r}, base_url=...))")
        return
    if name in _FACTORIES or name in _INSTANCES or _resolver_for(name) is not None:
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
        elif (build := _resolver_for(name)) is not None:
            model = build(name)
        else:
            check_model_name(name)
            raise AssertionError("unreachable")  # pragma: no cover
        _INSTANCES[name] = model
    for_task = getattr(model, "for_task", None)  # a ModelRouter picks per task
    if task is not None and callable(for_task):
        return for_task(task)
    return model



