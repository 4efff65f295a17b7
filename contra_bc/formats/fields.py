"""Checks of a JSON document's fields, shared by every format's reader.

    problems = check_fields(meta, {"hz": number(above=0), "buttons": button_list()})
    if problems: raise UserError(f"{path}: {'; '.join(problems)} ...")

Each check takes a value and returns None (fine) or what is wrong with it, in words a person
can act on. ``check_fields`` reports a missing key or a wrong value for each entry of the spec,
so a hand-edited or damaged file is refused once, with every reason, before any of it is used.
"""

from __future__ import annotations

import math
from typing import Callable

from contra_bc.errors import UserError

Check = Callable[[object], "str | None"]
MISSING = object()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _range(v, above=None, at_least=None, at_most=None) -> str | None:
    if above is not None and v <= above:
        return f"must be greater than {above}, not {v}"
    if at_least is not None and v < at_least:
        return f"must be at least {at_least}, not {v}"
    if at_most is not None and v > at_most:
        return f"must be at most {at_most}, not {v}"
    return None


def integer(at_least: int | None = None, at_most: int | None = None) -> Check:
    return lambda v: (f"must be an integer, not {v!r}" if not _is_int(v)
                      else _range(v, at_least=at_least, at_most=at_most))


def number(above: float | None = None, at_least: float | None = None, at_most: float | None = None) -> Check:
    def check(v):
        if not (_is_int(v) or isinstance(v, float)) or not math.isfinite(v):
            return f"must be a finite number, not {v!r}"
        return _range(v, above, at_least, at_most)
    return check


def string(non_empty: bool = True) -> Check:
    def check(v):
        if not isinstance(v, str) or (non_empty and not v):
            return f"must be a{' non-empty' if non_empty else ''} string, not {v!r}"
        return None
    return check


def boolean() -> Check:
    return lambda v: None if isinstance(v, bool) else f"must be true or false, not {v!r}"


def one_of(*choices) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(map(repr, choices))}, not {v!r}"


def optional(inner: Check) -> Check:
    return lambda v: None if v is None else inner(v)


def absent_or(inner: Check) -> Check:
    """A key that older files do not have: checked only where it is present."""
    def check(v):
        return inner(v)
    check.may_be_absent = True
    return check


def list_of(item: Check, min_len: int = 0) -> Check:
    def check(v):
        if not isinstance(v, list):
            return f"must be a list, not {type(v).__name__}"
        if len(v) < min_len:
            return f"must hold at least {min_len} item(s), not {len(v)}"
        for i, x in enumerate(v):
            why = item(x)
            if why:
                return f"item {i} {why}"
        return None
    return check


def mapping(spec: dict[str, Check] | None = None) -> Check:
    def check(v):
        if not isinstance(v, dict):
            return f"must be an object, not {type(v).__name__}"
        problems = check_fields(v, spec or {})
        return "; ".join(problems) if problems else None
    return check


def each_value(item: Check) -> Check:
    """An object whose every value passes ``item`` (e.g. policy name -> summary)."""
    def check(v):
        if not isinstance(v, dict):
            return f"must be an object, not {type(v).__name__}"
        for name, x in v.items():
            why = item(x)
            if why:
                return f"[{name!r}] {why}"
        return None
    return check


def button_list() -> Check:
    """A platform's button slots: names, or null for an unused slot; at least one name."""
    def check(v):
        why = list_of(optional(string()))(v)
        if why:
            return why
        if not any(v):
            return "names no button"
        return None
    return check


def check_fields(doc: dict, spec: dict[str, Check]) -> list[str]:
    """Every problem of ``doc`` against ``spec``, as 'key what-is-wrong' strings."""
    if not isinstance(doc, dict):
        return [f"the document must be a JSON object, not {type(doc).__name__}"]
    problems = []
    for key, check in spec.items():
        value = doc.get(key, MISSING)
        if value is MISSING:
            if getattr(check, "may_be_absent", False):
                continue
            problems.append(f"`{key}` is missing")
            continue
        why = check(value)
        if why:
            problems.append(f"`{key}` {why}")
    return problems


def require_fields(doc, spec: dict[str, Check], where, what: str, fix: str) -> None:
    """UserError listing every problem of ``doc`` (a ``what`` read from ``where``), and how to fix it."""
    problems = check_fields(doc, spec)
    if problems:
        raise UserError(f"{where} is not a valid {what}: {'; '.join(problems)}. {fix}")
