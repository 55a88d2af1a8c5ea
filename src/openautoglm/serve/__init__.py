"""``openautoglm serve``: models (KServe V2 + model repository), plans and runs over HTTP.

The top stage: it may import every stage below it. Start it with ``openautoglm serve`` or
build the ASGI app with :func:`create_app` and run it under uvicorn.
"""
from __future__ import annotations

from .app import create_app
from .background import serving
from .repository import ModelRepository, RepositoryError
from .settings import ENV_TOKEN, ServeSettings

__all__ = ["ENV_TOKEN", "ModelRepository", "RepositoryError", "ServeSettings", "create_app", "serving"]
