"""``python -m openautoglm``: the same as the ``openautoglm`` command."""
from __future__ import annotations

from openautoglm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
