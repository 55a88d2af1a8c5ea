"""Checks at the public boundary: one error type, bounded messages, safe readers.

Every entry point that takes user data (a graph, a cluster, a trace, a YAML file, scheduler
arguments, history rows) checks it here and raises :class:`InputError`, whose message names the
field, the offending value (its ``repr`` cut to :data:`REPR_LIMIT` characters, so a hostile
value is never echoed in full) and what to do instead.

The readers refuse what would otherwise surface as a raw library error or exhaust the machine:

- :func:`read_text`: a directory, a binary file (``UnicodeDecodeError``) or a file over a size
  limit becomes an :class:`InputError` naming the file;
- :func:`load_json`: deep nesting (``RecursionError``) and malformed JSON;
- :func:`load_yaml`: ``yaml.safe_load`` without aliases (``*ref``: a 420-byte "billion laughs"
  document expands to gigabytes), without duplicate keys (the second would silently win) and
  with bounded nesting.

This module imports nothing of openautoglm, so every stage (and the wings) may use it.
Tests: tests/integration/test_hostile_input.py, tests/integration/test_hostile_properties.py.
"""
from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import reprlib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["InputError", "REPR_LIMIT", "check_kwargs", "check_number", "load_json",
           "load_yaml", "read_text", "short"]

#: Most characters of a value's ``repr`` an error message shows.
REPR_LIMIT = 80
#: Deepest nesting of lists/mappings accepted in a JSON or YAML document.
MAX_DEPTH = 64
#: Largest text file read by :func:`read_text` (bytes), unless the caller says otherwise.
MAX_TEXT_BYTES = 256 * 2**20


class InputError(ValueError, TypeError):
    """Bad input at a public entry point: the message names the field, the value and the fix.

    A subclass of both ``ValueError`` and ``TypeError``, so code that caught either before
    the checks were unified keeps working.
    """


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = REPR_LIMIT
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def short(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters (never the whole of a huge value).

    Example:
        >>> short("x" * 1000)[:12], len(short("x" * 1000)) <= 90
        ("'xxxxxxxxxxx", True)
    """
    try:
        text = _repr.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit + 10 else text[:limit] + f"...({len(text)} chars)"


def check_number(value: Any, field: str, *, integer: bool = False, minimum: float | None = 0.0,
                 maximum: float | None = None, finite: bool = True, fix: str = "") -> Any:
    """``value`` as a number of the right kind, or an :class:`InputError` naming ``field``.

    Strings, bools and containers are refused (no silent ``float("5")`` or ``True == 1``).

    Args:
        value: What the caller gave.
        field: Its name in the message, e.g. ``"task 'a': cost"``.
        integer: Require an integer (``numbers.Integral``).
        minimum: Smallest allowed value (``None``: no bound).
        maximum: Largest allowed value (``None``: no bound).
        finite: Refuse NaN and infinities.
        fix: What to do instead, appended to the message.

    Returns:
        ``int(value)`` or ``float(value)``.

    Example:
        >>> check_number(2, "speed")
        2.0
        >>> check_number("2", "speed")
        Traceback (most recent call last):
        ...
        openautoglm._validate.InputError: speed must be a number, got str '2'
    """
    kind = numbers.Integral if integer else numbers.Real
    tail = f"; {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise InputError(f"{field} must be {what}, got {type(value).__name__} {short(value)}{tail}")
    number = int(value) if integer else float(value)
    if not integer and (math.isnan(number) or (finite and math.isinf(number))):
        raise InputError(f"{field} must be a finite number, got {short(value)}{tail}")
    if minimum is not None and number < minimum:
        raise InputError(f"{field} must be >= {minimum:g}, got {short(value)}{tail}")
    if maximum is not None and number > maximum:
        raise InputError(f"{field} must be <= {maximum:g}, got {short(value)}{tail}")
    return number


def check_kwargs(owner: Any, kwargs: dict[str, Any], where: str) -> None:
    """Check ``kwargs`` against ``owner``'s signature: known names, types like the defaults.

    A parameter whose default is a bool takes a bool; an int default, an int >= 0; a float
    default, a finite number >= 0; a str default, a str. Other parameters are the owner's to check.

    Raises:
        InputError: naming ``where``, the argument, the value and the accepted ones.
    """
    params = inspect.signature(owner).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for name, value in kwargs.items():
        param = params.get(name)
        if param is None or param.kind is param.POSITIONAL_ONLY:
            known = [n for n, p in params.items() if p.kind is not p.POSITIONAL_ONLY]
            raise InputError(f"{where} takes no argument {name!r}; it takes {known or 'none'}")
        default = param.default
        field = f"{where}: {name}"
        if name == "seed" and value is not None:
            check_number(value, field, integer=True, fix="pass an int >= 0 or None")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(f"{field} must be True or False, got {short(value)}")
        elif isinstance(default, int):
            check_number(value, field, integer=True)
        elif isinstance(default, float):
            check_number(value, field)
        elif isinstance(default, str) and not isinstance(value, str):
            raise InputError(f"{field} must be a string, got {type(value).__name__} {short(value)}")


def read_text(path: str | os.PathLike[str], what: str, *, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file, or an :class:`InputError` that says what is wrong with it.

    Raises:
        FileNotFoundError: nothing at ``path`` (kept as is: callers word their own hint).
        InputError: a directory, an unreadable file, a file over ``limit`` bytes, or bytes
            that are not UTF-8 text (a binary file).
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {str(p)!r} is a directory; pass the file inside it")
    if not p.exists():
        raise FileNotFoundError(f"{what} {str(p)!r} not found; check the path")
    try:
        size = p.stat().st_size
        if size > limit:
            raise InputError(f"{what} {str(p)!r} is {size} bytes, over the {limit}-byte limit")
        data = p.read_bytes()
    except PermissionError as exc:
        raise InputError(f"{what} {str(p)!r} cannot be read ({exc.strerror}); "
                         "check its permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {str(p)!r} is not UTF-8 text (byte {exc.start}: "
                         f"{data[exc.start:exc.start + 4]!r}); is it a binary file?") from None


def _depth(value: Any, limit: int, where: str) -> None:
    """Refuse nesting deeper than ``limit`` without recursion (an explicit stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise InputError(f"{where} nests lists/mappings deeper than {limit} levels; "
                             "flatten it")
        stack.extend((c, depth + 1) for c in children)


def load_json(text: str, where: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` with bounded nesting; malformed JSON becomes an :class:`InputError`."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise InputError(f"{where} nests JSON deeper than Python can read; flatten it") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON ({exc})") from None
    _depth(doc, max_depth, where)
    return doc


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases and duplicate keys and bounds nesting."""

    max_depth = MAX_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"YAML alias *{event.anchor} is refused (aliases can expand a few "
                "bytes into gigabytes); write the value out in full", event.start_mark)
        self._nesting += 1
        try:
            if self._nesting > self.max_depth:
                raise yaml.constructor.ConstructorError(
                    None, None, f"nesting deeper than {self.max_depth} levels; flatten it",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"duplicate key {short(key)} (the second would silently replace the "
                        f"first); keep one", key_node.start_mark)
                seen[key] = True
            except TypeError:
                pass  # an unhashable key: SafeLoader reports it below
        return super().construct_mapping(node, deep=deep)


def _flow_depth(text: str, where: str, limit: int = 4 * MAX_DEPTH) -> None:
    """Refuse ``[[[[...`` before PyYAML's scanner, which is quadratic in the flow depth."""
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > limit:
                raise InputError(f"{where}: YAML nests more than {limit} brackets; flatten it")
        elif ch in "]}" and depth:
            depth -= 1


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML text safely (no objects, no aliases, no duplicate keys, bounded nesting).

    Raises:
        InputError: naming ``where`` and the line of the problem.

    Example:
        >>> load_yaml("a: 1\\nb: [2, 3]", "example")
        {'a': 1, 'b': [2, 3]}
        >>> load_yaml("a: 1\\na: 2", "example")
        Traceback (most recent call last):
        ...
        openautoglm._validate.InputError: example: not valid YAML: while reading a mapping...
    """
    _flow_depth(text, where)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise InputError(f"{where}: YAML nested too deeply to read; flatten it") from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{where}: not valid YAML: {message[:300]}") from None
