"""A model registry for pipeline tasks: a name resolves to a model with ``generate(prompt)``.

``registry`` (the :class:`Model` protocol, register/get by name), ``local`` (:class:`LocalGLM`
and the GLM presets), ``chat`` (:class:`ChatCompletionsModel`, an OpenAI-style HTTP client with
typed errors) and ``router`` (:class:`ModelRouter`). torch and the GLM are imported only when a
GLM is built (``save_glm``/``load_glm`` below are imported on first use).
"""
from __future__ import annotations

from typing import Any

from openautoglm.models.chat import (
    ChatCompletionsModel,
    ModelHTTPError,
    ModelReplyError,
    ModelTimeoutError,
)
from openautoglm.models.local import ENV_CACHE, GLM_PRESETS, LocalGLM, cache_dir, glm_checkpoint
from openautoglm.models.registry import (
    ENV_API_BASE,
    ENV_API_KEY,
    Model,
    ModelError,
    check_model_name,
    get_model,
    list_models,
    register_model,
    unregister_model,
)
from openautoglm.models.router import ModelRouter

__all__ = [
    "ENV_API_BASE",
    "ENV_API_KEY",
    "ENV_CACHE",
    "GLM_PRESETS",
    "ChatCompletionsModel",
    "LocalGLM",
    "Model",
    "ModelError",
    "ModelHTTPError",
    "ModelReplyError",
    "ModelRouter",
    "ModelTimeoutError",
    "cache_dir",
    "check_model_name",
    "get_model",
    "glm_checkpoint",
    "list_models",
    "load_glm",
    "register_model",
    "save_glm",
    "unregister_model",
]


def __getattr__(name: str) -> Any:
    if name in ("save_glm", "load_glm"):
        from openautoglm.glm import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
