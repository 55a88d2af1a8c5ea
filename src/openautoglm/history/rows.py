"""The rows a :class:`~openautoglm.history.store.History` stores: one :class:`Execution` per task
attempt, one :class:`Transfer` per data movement, and :func:`as_row` (a row or a dict of its
fields -> the column values, unknown fields refused by name).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from openautoglm._validate import InputError, check_number, short

__all__ = ["Execution", "Transfer", "as_row"]


@dataclass
class Execution:
    """One attempt of one task, as stored in the history.

    ``status`` is ``"ok"`` for a result kept in memory, ``"error"`` for an attempt that raised
    (retried or final), ``"timeout"`` for an attempt past its ``Task(timeout=)`` or cut by
    ``engine.run(timeout=)``, ``"worker-died"`` for an attempt whose worker died while running
    it, ``"cancelled"`` for a task that never ran because the run stopped.
    """

    task: str
    identity: str
    status: str = "ok"
    worker: str | None = None
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    cost: float | None = None
    cores: int = 1
    input_size: int = 0
    output_size: int | None = None
    bytes_moved: int = 0
    error: str | None = None
    attempt: int = 1
    planned_start: float | None = None
    planned_finish: float | None = None


@dataclass
class Transfer:
    """Data moved from one task's worker to another's before the second task ran."""

    src_task: str
    dst_task: str
    src_identity: str
    dst_identity: str
    nbytes: int = 0
    duration: float = 0.0
    src_worker: str | None = None
    dst_worker: str | None = None


def as_row(obj: Any, cls: type, cols: list[str]) -> tuple[Any, ...]:
    """The values of ``cols`` from ``obj``: a ``cls`` instance or a dict of its fields.

    Raises:
        InputError: A value that would poison every later estimate (-5 s, inf, a string...),
            naming the row, the field and the value; or ``obj`` of another type.
    """
    if isinstance(obj, cls):
        # Plain attribute reads: asdict() deep-copies every field (seconds for 50,000 rows).
        d = {c: getattr(obj, c) for c in cols}
    elif isinstance(obj, Mapping):
        unknown = set(obj) - set(cols)
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} field(s) {sorted(unknown)}; the fields are {cols}."
            )
        d = asdict(cls(**obj))
    else:
        raise InputError(f"Expected a {cls.__name__} or a dict of its fields, got "
                         f"{type(obj).__name__} {short(obj)}.")
    _check_row(d, cls)
    return tuple(d[c] for c in cols)


#: How each stored field is checked: (kind, minimum). "real"/"int": a number (not a string,
#: not a bool), finite; "str": text; a field whose dataclass default is None may be None.
_FIELD_RULES: dict[str, tuple[str, float | None]] = {
    "duration": ("real", 0.0), "cost": ("real", 0.0), "start": ("real", None),
    "end": ("real", None), "planned_start": ("real", None), "planned_finish": ("real", None),
    "cores": ("int", 1), "attempt": ("int", 1), "input_size": ("real", 0.0),
    "output_size": ("real", 0.0), "bytes_moved": ("real", 0.0), "nbytes": ("real", 0.0),
}


def _check_row(d: dict[str, Any], cls: type) -> None:
    """Refuse a value that would poison every later estimate (-5 s, inf, a string...)."""
    optional = {f.name for f in fields(cls) if f.default is None}
    label = f"{cls.__name__} {short(d.get('task', d.get('src_task')))}"
    for name, value in d.items():
        if value is None and name in optional:
            continue
        rule = _FIELD_RULES.get(name)
        if rule is None:
            if not isinstance(value, str):
                raise InputError(f"{label}: {name} must be text, got {type(value).__name__} "
                                 f"{short(value)}")
            continue
        kind, minimum = rule
        check_number(value, f"{label}: {name}", integer=kind == "int", minimum=minimum,
                     fix="history values must be real measurements")
