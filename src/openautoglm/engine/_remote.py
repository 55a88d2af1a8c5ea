"""Code that runs on Dask processes which may not have openautoglm yet.

Everything here is shipped **by value** (``cloudpickle.register_pickle_by_value`` in
:mod:`openautoglm.engine.install`), so a scheduler or worker that has only dask/distributed can
unpickle and run it: it imports nothing of openautoglm, and only the standard library and
distributed inside the functions.

- :class:`WheelInstall`: a ``WorkerPlugin`` that writes the wheel into the worker's local
  directory and ``pip install``-s it (one install at a time per host, like distributed's own
  ``PipInstall``); it also runs for workers that join later.
- :func:`install_on_scheduler`: the same on the scheduler (``client.run_on_scheduler``).
- :func:`probe`: what a process has: openautoglm's version (``None`` when absent), python.
"""
from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: The wheel's distribution name.
DIST = "openautoglm"


def installed_version() -> str | None:
    """The version of openautoglm this process imports (or would import), or ``None``.

    Read without importing the package (that would pull torch into a scheduler's event loop):
    the module already imported, else the ``__version__`` line of the ``_version.py`` (or
    ``__init__.py``) beside the package the import system finds now (a source tree on
    ``PYTHONPATH`` included).
    """
    import ast
    import importlib
    import importlib.util
    import os
    import sys

    module = sys.modules.get(DIST)
    if module is not None:
        return getattr(module, "__version__", None)
    importlib.invalidate_caches()
    spec = importlib.util.find_spec(DIST)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    origin = os.path.join(os.path.dirname(spec.origin), "_version.py")  # the version's leaf
    if not os.path.isfile(origin):
        origin = spec.origin
    with open(origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), origin)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


def install_wheel(filename: str, data: bytes, version: str, directory: str, where: str,
                  preload: tuple[str, ...] = ()) -> str:
    """Install the wheel ``data`` (named ``filename``) into this process's environment.

    Nothing happens when openautoglm ``version`` is already installed. pip reads its usual
    configuration (``PIP_INDEX_URL``, ``PIP_NO_INDEX``, ``pip.conf``) for the dependencies.
    Then the modules in ``preload`` are imported here (a worker thread), so that unpickling the
    engine's plugins later does not import torch and friends on the event loop.

    Returns:
        ``"present"`` or ``"installed"``.

    Raises:
        RuntimeError: pip failed; names the process, the interpreter and pip's last lines.
    """
    import importlib
    import os
    import subprocess
    import sys

    if installed_version() == version:
        _preload(preload)
        return "present"
    path = os.path.join(directory, filename)
    with open(path, "wb") as f:
        f.write(data)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                           path], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"{where}: `{sys.executable} -m pip install {filename}` failed "
                           f"(exit {proc.returncode}):\n{tail}")
    importlib.invalidate_caches()
    got = installed_version()
    if got != version:
        raise RuntimeError(f"{where}: pip installed {filename} but {DIST} reports version "
                           f"{got!r}, not {version!r} ({sys.executable}).")
    _preload(preload)
    return "installed"


def _preload(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)


class WheelInstall(WorkerPlugin):
    """Worker plugin: install openautoglm from a wheel carried in the plugin itself.

    Args:
        filename: the wheel's file name (pip reads the tags from it).
        data: the wheel's bytes.
        version: the version the wheel holds.
        name: the plugin's name (one per wheel, so a new wheel replaces nothing silently).
    """

    idempotent = True

    def __init__(self, filename: str, data: bytes, version: str, name: str,
                 preload: tuple[str, ...] = ()) -> None:
        self.filename = filename
        self.data = data
        self.version = version
        self.name = name
        self.preload = preload

    async def setup(self, worker: Any) -> None:
        import asyncio
        import socket

        from distributed.semaphore import Semaphore

        # Workers of one host often share one environment: one pip at a time there.
        async with await Semaphore(max_leases=1, name=f"{self.name}-{socket.gethostname()}",
                                   scheduler_rpc=worker.scheduler, loop=worker.loop):
            await asyncio.to_thread(install_wheel, self.filename, self.data, self.version,
                                    worker.local_directory, f"worker {worker.address}",
                                    self.preload)


async def install_on_scheduler(dask_scheduler: Any, filename: str, data: bytes,
                               version: str, preload: tuple[str, ...] = ()) -> str:
    """``client.run_on_scheduler`` target: :func:`install_wheel` on the scheduler."""
    import asyncio

    return await asyncio.to_thread(install_wheel, filename, data, version,
                                   dask_scheduler.local_directory,
                                   f"scheduler {dask_scheduler.address}", preload)


def probe() -> dict[str, Any]:
    """``client.run`` / ``run_on_scheduler`` target: openautoglm's version here, and python."""
    import sys

    return {"openautoglm": installed_version(), "python": "%d.%d" % sys.version_info[:2],
            "executable": sys.executable}
