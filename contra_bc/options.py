"""Options declared once: a config field carries its flags, help, range and choices.

    @dataclass
    class PlayConfig:
        episodes: int = option(1, "--episodes", "-n", help="Headless evaluation episodes.", low=1)

From that one declaration:
- ``command(PlayConfig)`` gives a typer command its options (one per field that has flags) and
  hands the function a checked ``PlayConfig``; ``command(TrainConfig, merged=True)`` hands it the
  flags given (None for those left out) to merge with a `--config` file and a resumed run;
- ``check(cfg)`` refuses a value of the wrong type, a non-finite number, one out of its range or
  not among its choices, and an output folder that is a file, with one paragraph naming the flag.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
import typing
from pathlib import Path

from contra_bc.errors import UserError


def option(default, *flags: str, help: str, low=None, high=None, low_ok: bool = True, high_ok: bool = True,
           choices: tuple | None = None, lower: bool = False, hidden: bool = False, output_dir: bool = False,
           tuple_of: type | None = None, length: int | None = None, list_of: type | None = None):
    """A config field that is also a command-line option (``default=...``: required)."""
    meta = {"flags": flags, "help": help, "low": low, "high": high, "low_ok": low_ok, "high_ok": high_ok,
            "choices": choices, "lower": lower, "hidden": hidden, "output_dir": output_dir, "tuple_of": tuple_of,
            "length": length, "list_of": list_of}
    return dataclasses.field(default=default, metadata=meta)


def option_fields(cls) -> list[dataclasses.Field]:
    """The fields of a config class that are command-line options, in declaration order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flags")]


def flag_of(f: dataclasses.Field) -> str:
    """The long flag a person types for a field ("--jitter" for "--jitter/--no-jitter")."""
    return f.metadata["flags"][0].split("/")[0]


# ---------------------------------------------------------------- checks
def check(cfg, values: dict | None = None, where: str | None = None) -> None:
    """UserError naming every option of ``cfg`` (an instance, or a class with ``values``) whose value does
    not fit its declaration: type, finite number, range, choices, an output folder that is a file."""
    cls = cfg if isinstance(cfg, type) else type(cfg)
    hints = typing.get_type_hints(cls)
    problems = []
    for f in dataclasses.fields(cls):
        if values is not None:
            if f.name not in values:
                continue
            value = values[f.name]
        else:
            value = getattr(cfg, f.name)
        name = flag_of(f) if f.metadata.get("flags") else f"`{f.name}`"
        why = _problem(value, hints[f.name], f)
        if why:
            problems.append(f"{name} {why}")
    if problems:
        head = f"{where}: " if where else ""
        raise UserError(head + "; ".join(problems) + ".")


def _problem(value, hint, f: dataclasses.Field) -> str | None:
    md = f.metadata
    if value is ... and md.get("flags"):
        return "is required"
    if not _fits(value, hint, md):
        return f"must be {_type_words(hint, md)}, not {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = md.get("low"), md.get("high")
        if (low is not None and (value < low or (value == low and not md.get("low_ok", True)))) or \
                (high is not None and (value > high or (value == high and not md.get("high_ok", True)))):
            return f"must be {_range_words(md)}, not {value}"
    choices = md.get("choices")
    if choices and value is not None and (value.lower() if md.get("lower") and isinstance(value, str) else value) \
            not in choices:
        return f"must be one of {', '.join(map(str, choices))}, not {value!r}"
    if md.get("output_dir") and value is not None and value is not ...:
        path = Path(value)
        for place in [path, *path.parents]:
            if place.exists() and not place.is_dir():
                where = "is a file" if place == path else f"lies under {place}, which is a file"
                return f"{path} {where}; give a directory path (nothing is written there)"
            if place.exists():
                break
    return None


def _range_words(md: dict) -> str:
    low, high = md.get("low"), md.get("high")
    if low is not None and high is not None:
        return f"in {'[' if md.get('low_ok', True) else '('}{low}, {high}{']' if md.get('high_ok', True) else ')'}"
    if low is not None:
        return f"at least {low}" if md.get("low_ok", True) else f"greater than {low}"
    return f"at most {high}" if md.get("high_ok", True) else f"less than {high}"


def _fits(value, hint, md: dict) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is ...:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a, md) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, (str, Path))
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        item = md.get("tuple_of") or md.get("list_of")
        if md.get("length") is not None and len(value) != md["length"]:
            return False
        return item is None or all(_fits(v, item, {}) for v in value)
    return True


def _type_words(hint, md: dict) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    if md.get("tuple_of"):
        return f"a list of {md.get('length') or 'some'} {words.get(md['tuple_of'], 'value')[2:]}s"
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return " or ".join(words.get(a, getattr(a, "__name__", str(a))) for a in args)


# ---------------------------------------------------------------- typer
def command(cls, *, merged: bool = False):
    """Give a typer command the options of config class ``cls``.

    The decorated function declares its positional arguments (and any option not in ``cls``) as
    usual and takes ``cfg`` (a checked ``cls``) or, with ``merged``, ``flags`` (the options given on
    the command line, None for those left out: `train` merges them over its `--config` file and a
    resumed run's options before checking). ``--help`` shows each option's help from ``cls``."""

    def decorate(fn):
        import typer

        hints = typing.get_type_hints(cls)
        fields = option_fields(cls)
        signature = inspect.signature(fn)
        own = [p for p in signature.parameters.values() if p.name not in ("cfg", "flags")]
        taken = {p.name for p in own} & {f.name for f in fields}
        if taken:
            raise TypeError(f"{fn.__name__} declares {sorted(taken)}, which {cls.__name__} already declares")
        generated = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_typer_option(typer, f, merged),
                                       annotation=_typer_type(hints[f.name], f, merged)) for f in fields]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f in fields if f.name in kwargs}
            if merged:
                return fn(*args, flags=values, **kwargs)
            values = {k: (tuple(v) if isinstance(v, list) and hints[k] is tuple else v) for k, v in values.items()}
            cfg = cls(**values)
            check(cfg)
            return fn(*args, cfg=cfg, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + generated)
        wrapper.config_class = cls
        return wrapper

    return decorate


def _typer_option(typer, f: dataclasses.Field, merged: bool):
    md = f.metadata
    default = f.default
    help_text = md["help"]
    if merged:
        if default not in (None, ...):
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" [default: {shown}]"
        return typer.Option(None, *md["flags"], help=help_text, hidden=md.get("hidden", False), show_default=False)
    if isinstance(default, tuple):
        default = list(default)
    return typer.Option(default, *md["flags"], help=help_text, hidden=md.get("hidden", False))


def _typer_type(hint, f: dataclasses.Field, merged: bool):
    """The annotation typer understands for a field's type (typing.Optional, List, Tuple)."""
    md = f.metadata
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else [hint]
    base = args[0] if args else hint
    item = md.get("tuple_of") or md.get("list_of") or str
    if md.get("tuple_of"):
        count = md.get("length") or 1
        base = typing.Tuple[(item,) * count]
    elif md.get("list_of") or base is list:
        base = typing.List[item]
    optional = merged or type(None) in typing.get_args(hint) or f.default is None
    return typing.Optional[base] if optional else base
