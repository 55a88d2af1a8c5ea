"""Ship openautoglm to a Dask cluster that does not have it: ``Engine(address, install=...)``.

The engine's scheduler plugin and the pipeline tasks' wrappers live in this package, so the
scheduler and every worker must import the same openautoglm as the client. With ``install=``
the engine brings it there itself, before anything else is sent:

1. :func:`find_wheel` picks the wheel: the path given, or (``install=True``) the wheel of this
   version in the source checkout's ``dist/``, refused when a source file is newer than it.
2. :func:`ship` pip-installs it on the scheduler (``client.run_on_scheduler``) and registers a
   ``WorkerPlugin`` carrying the wheel on every worker (workers that join later install it too;
   one pip at a time per host). The code that runs there is pickled by value (cloudpickle's
   ``register_pickle_by_value``), so processes with only dask/distributed can run it.
3. :func:`check_versions` asks every process which openautoglm it has, and refuses a cluster
   where one lacks it or has another version.

pip installs the wheel's dependencies from the workers' own index (``PIP_INDEX_URL``,
``pip.conf``); a worker that cannot (no network, wrong Python, wrong platform) fails the engine
with :class:`InstallError` naming the worker and pip's message. Read ``tests/engine/test_install.py``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import cloudpickle

from openautoglm._version import __version__
from openautoglm.engine import _remote

# Processes without openautoglm must be able to unpickle and run this module's code.
cloudpickle.register_pickle_by_value(_remote)

__all__ = ["InstallError", "find_wheel", "ship", "check_versions"]

BUILD = "pip wheel --no-deps --no-build-isolation -w dist ."


class InstallError(RuntimeError):
    """openautoglm cannot be brought to (or is missing from) a cluster process."""


def _source_root() -> Path | None:
    """The checkout this package is imported from (an editable install), or ``None``."""
    root = Path(__file__).resolve().parents[3]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "openautoglm"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def find_wheel(install: bool | str | os.PathLike) -> Path:
    """The wheel to ship: ``install`` itself when it is a path, else this version's in ``dist/``.

    Raises:
        InstallError: no such file, a file that is not this version's wheel, no wheel in the
            checkout's ``dist/``, or one older than the sources (workers would run old code).
    """
    if install is True:
        root = _source_root()
        if root is None:
            raise InstallError(
                f"install=True looks for the wheel in a source checkout's dist/, but openautoglm "
                f"{__version__} is installed from {Path(__file__).resolve().parents[1]}; pass the "
                "wheel you installed it from: Engine(address, install='openautoglm-...whl').")
        found = sorted((root / "dist").glob(f"openautoglm-{__version__}-*.whl"),
                       key=lambda p: p.stat().st_mtime)
        if not found:
            raise InstallError(f"install=True found no openautoglm-{__version__}-*.whl in "
                               f"{root / 'dist'}: build it first (`{BUILD}` in {root}) or pass "
                               "install='path/to/openautoglm-...whl'.")
        wheel = found[-1]
        sources = [p for p in (root / "src" / "openautoglm").rglob("*")
                   if p.suffix in (".py", ".pt", ".yaml", ".json") and "__pycache__" not in p.parts]
        newest = max(sources, key=lambda p: p.stat().st_mtime, default=None)
        if newest is not None and newest.stat().st_mtime > wheel.stat().st_mtime:
            raise InstallError(f"{wheel} is older than {newest}: workers would run other code "
                               f"than this process. Rebuild it (`{BUILD}` in {root}).")
        return wheel
    wheel = Path(install)
    if not wheel.is_file():
        raise InstallError(f"install={str(install)!r} is not a file; pass a built wheel "
                           f"(`{BUILD}` writes dist/openautoglm-{__version__}-*.whl) or True.")
    parts = wheel.name.split("-")
    if wheel.suffix != ".whl" or len(parts) < 5 or parts[0] != "openautoglm":
        raise InstallError(f"install={str(install)!r} is not an openautoglm wheel "
                           "(openautoglm-VERSION-TAGS.whl).")
    if parts[1] != __version__:
        raise InstallError(f"{wheel.name} holds openautoglm {parts[1]}, but this process runs "
                           f"{__version__}: the workers must run the same code. Pass the wheel "
                           f"of {__version__}.")
    return wheel


def ship(client: Any, wheel: Path, preload: tuple[str, ...] = ()) -> str:
    """pip-install ``wheel`` on the scheduler and every worker of ``client``'s cluster.

    Args:
        client: a connected ``distributed.Client``.
        wheel: the wheel (see :func:`find_wheel`).
        preload: modules to import there right after (off the event loop), e.g. the module of
            the plugins the engine registers next.

    Returns:
        What the scheduler did: ``"installed"``, or ``"present"`` (this version was there).

    Raises:
        InstallError: a process could not install it (names it, with pip's message).
    """
    data = wheel.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        done = client.run_on_scheduler(_remote.install_on_scheduler, filename=wheel.name,
                                       data=data, version=__version__, preload=preload)
    except Exception as e:
        raise InstallError(f"Could not install {wheel.name} on the Dask scheduler: {e}") from e
    plugin = _remote.WheelInstall(wheel.name, data, __version__,
                                  name=f"openautoglm-install-{__version__}-{digest}",
                                  preload=preload)
    try:
        client.register_plugin(plugin)
    except Exception as e:
        raise InstallError(f"Could not install {wheel.name} on the Dask workers: {e}") from e
    return done


def check_versions(client: Any, *, raise_error: bool = True) -> dict[str, str | None]:
    """Make sure the scheduler and every worker import openautoglm ``__version__``.

    Returns:
        Per process: ``None`` when it has this version, else what is wrong there.

    Raises:
        InstallError: with ``raise_error``, when some process lacks it or has another version;
            the message names them and says how to fix it.
    """
    found = {"scheduler": client.run_on_scheduler(_remote.probe)}
    found.update(client.run(_remote.probe))
    problems = {}
    for where, info in found.items():
        got = info["openautoglm"]
        if got != __version__:
            problems[where] = (f"has no openautoglm ({info['executable']})" if got is None else
                               f"has openautoglm {got} ({info['executable']})")
    if problems and raise_error:
        listed = "; ".join(f"{w} {p}" for w, p in sorted(problems.items()))
        raise InstallError(
            f"This process runs openautoglm {__version__}, but on the Dask cluster: {listed}. "
            f"Pass Engine(address, install=True) (or install='openautoglm-{__version__}-...whl') "
            "to ship this version there, or install it on the scheduler and every worker.")
    return {w: problems.get(w) for w in found}
