"""Import paths from files under an allow-list: a YAML pipeline names code, it must not pick any.

A pipeline file says ``func: package.module:function`` and loading it imports that module and
calls the function later: a pipeline file is code. Without a limit, ``func: os:system`` or
``func: builtins:eval`` would run whatever a file handed to ``openautoglm run`` says. So a name
is resolved only when its module is allowed:

- ``openautoglm`` (the demo and built-in functions) always;
- the pipeline file's own code: a module whose source lies in the folder tree of the YAML file
  (the package holding it when that folder is a package), found *without importing it*;
- the modules the caller lists: ``allowed_modules=["mypkg", "other.mod"]`` (a name allows its
  submodules too), the ``OPENAUTOGLM_ALLOWED_MODULES`` environment variable (comma-separated) or
  ``openautoglm run --allow-module NAME``; ``"*"`` allows every module (only for files you wrote).

The module name is checked before anything is imported; attribute paths may not start with
``_`` and may not walk through another module (``openautoglm.demo:os.system``); the object found
must itself come from an allowed module.

Tests: tests/integration/test_hostile_input.py (the ``allowed_modules`` cases).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from openautoglm._validate import InputError, short

__all__ = ["ENV_ALLOWED", "AllowedModules", "resolve"]

ENV_ALLOWED = "OPENAUTOGLM_ALLOWED_MODULES"
_ALWAYS = ("openautoglm",)


class AllowedModules:
    """Which modules a pipeline file may name.

    Args:
        names: Module names allowed (with their submodules); ``"*"`` allows all.
        root: The folder whose modules are the file's own (``None``: YAML text, no folder).
    """

    def __init__(self, names: Iterable[str] | None = None, root: Path | None = None) -> None:
        if isinstance(names, str):
            names = [names]
        listed = list(names or ())
        env = os.environ.get(ENV_ALLOWED, "")
        listed += [n.strip() for n in env.split(",") if n.strip()]
        for name in listed:
            if not isinstance(name, str) or not name:
                raise InputError(f"allowed_modules entries are module names, got {short(name)}; "
                                 "e.g. allowed_modules=['mypkg']")
        self.names = tuple(dict.fromkeys([*_ALWAYS, *listed]))
        self.root = _package_root(root) if root is not None else None

    @classmethod
    def for_source(cls, names: Iterable[str] | None, path: Path | None) -> AllowedModules:
        """The allow-list of a pipeline read from ``path`` (``None``: read from text)."""
        return cls(names, path.resolve().parent if path is not None else None)

    def __repr__(self) -> str:
        return f"AllowedModules({list(self.names)}, root={str(self.root) if self.root else None})"

    def allows(self, module: str) -> bool:
        """Whether ``module`` (a dotted name) may be imported; never imports it."""
        if "*" in self.names:
            return True
        if any(module == n or module.startswith(n + ".") for n in self.names):
            return True
        return self.root is not None and _lies_in(module.partition(".")[0], self.root)

    def describe(self) -> str:
        own = f" and modules under {str(self.root)!r}" if self.root is not None else ""
        return f"{list(self.names)}{own}"


def _package_root(folder: Path) -> Path:
    """The top of the package holding ``folder`` (``folder`` itself when it is no package)."""
    if not (folder / "__init__.py").is_file():
        return folder
    root = folder
    while (root.parent / "__init__.py").is_file() and root.parent != root:
        root = root.parent
    return root


def _lies_in(top: str, root: Path) -> bool:
    """Whether top-level module ``top`` has its source under ``root`` (found, not imported)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    for place in places:
        try:
            Path(place).resolve().relative_to(root.resolve())
            return True
        except (ValueError, OSError):
            continue
    return False


def resolve(path: Any, task: str, allowed: AllowedModules) -> Any:
    """Import ``"package.module:function"`` (or ``"package.module.function"``) if allowed.

    Raises:
        InputError: a malformed path, a module the allow-list refuses (checked before any
            import), a private or module-crossing attribute, or a name that does not exist.
    """
    where = f"task {task!r}: func"
    if not isinstance(path, str):
        raise InputError(f"{where} must be an import path string, got {short(path)}")
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise InputError(f"{where} {short(path)} is not an import path; write it as "
                         "'package.module:function' or 'package.module.function'")
    _check_allowed(module_name, path, where, allowed)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"task {task!r}: cannot import module {short(module_name)} for func "
                         f"{short(path)} ({str(exc)[:200]}); is the package installed and on "
                         "sys.path?") from exc
    for part in attr.split("."):
        if part.startswith("_"):
            raise InputError(f"{where} {short(path)} reaches the private name {part!r}; "
                             "name a public function")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(f"{where}: module {short(module_name)} has no {short(attr)} "
                             f"(func {short(path)}); check the spelling") from None
        if isinstance(obj, types.ModuleType):
            raise InputError(f"{where} {short(path)} walks into the module {obj.__name__!r}; "
                             "name the function by its own module instead")
    real = module_name_of(importlib.import_module(module_name))  # os.path is posixpath
    origin = getattr(obj, "__module__", None)
    if isinstance(origin, str) and origin != real:
        _check_allowed(origin, path, where, allowed)
    return obj


def module_name_of(module: types.ModuleType) -> str:
    return str(getattr(module, "__name__", ""))


def _check_allowed(module: str, path: str, where: str, allowed: AllowedModules) -> None:
    if allowed.allows(module):
        return
    raise InputError(
        f"{where} {short(path)} comes from module {short(module)}, which this pipeline may not "
        f"import (allowed: {allowed.describe()}). A pipeline file is code: if you trust it, pass "
        f"allowed_modules=[{module.partition('.')[0]!r}] (CLI: --allow-module "
        f"{module.partition('.')[0]}; or set {ENV_ALLOWED})")
