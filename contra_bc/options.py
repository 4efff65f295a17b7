"""One check for option values, by name, shared by the CLI and config files (train --config)."""

from __future__ import annotations

import math

from contra_bc.errors import UserError

# One check for every command's numeric options, by option name: (lowest, highest, lowest allowed?).
# Every float must also be finite; typer's own min/max does the rest where it is declared.
_AT_LEAST_1 = (1, None, True)
_POSITIVE = (0, None, False)
_NOT_NEGATIVE = (0, None, True)
OPTION_RANGES = {
    "hz": _POSITIVE, "from_hz": _POSITIVE, "to_hz": _POSITIVE, "lr": _POSITIVE, "timeout": _POSITIVE,
    "window_seconds": _POSITIVE, "sample_fps": _POSITIVE, "inline_max_mb": _NOT_NEGATIVE, "retry_base": _POSITIVE,
    "file_active_timeout": _POSITIVE, "batch_timeout": _POSITIVE,
    "workers": _NOT_NEGATIVE, "countdown": _NOT_NEGATIVE, "cooldown": _NOT_NEGATIVE, "temperature": _NOT_NEGATIVE,
    "price_input": _NOT_NEGATIVE, "price_output": _NOT_NEGATIVE, "seed": _NOT_NEGATIVE, "retries": _NOT_NEGATIVE,
    "min_changes_per_minute": _NOT_NEGATIVE, "filter_min_steps": _NOT_NEGATIVE, "min_distance": _NOT_NEGATIVE,
    "window": _AT_LEAST_1, "focus": _AT_LEAST_1, "sequence": _AT_LEAST_1, "stop_at": _AT_LEAST_1, "max_steps": _AT_LEAST_1,
    "batch_size": _AT_LEAST_1, "grad_accum": _AT_LEAST_1, "eval_every": _AT_LEAST_1, "save_every": _AT_LEAST_1,
    "log_every": _AT_LEAST_1, "eval_batches": _AT_LEAST_1, "chunks": _AT_LEAST_1, "batch": _AT_LEAST_1, "batches": _AT_LEAST_1,
    "repeats": _AT_LEAST_1, "concurrency": _AT_LEAST_1, "max_output_tokens": _AT_LEAST_1, "episodes": _AT_LEAST_1,
    "toy_steps": _AT_LEAST_1, "frames_per_step": _AT_LEAST_1, "threads": _AT_LEAST_1,
    "val_fraction": (0, 1, True), "text_dropout": (0, 1, True), "p": (0, 1, True),
    "max_hold_fraction": (0, 1, False), "frame_size": (8, 1024, True), "press_weight": (1, None, True),
    "aux_weight": _NOT_NEGATIVE, "press_slack": _NOT_NEGATIVE,
}


def check_option_values(values: dict) -> None:
    """UserError naming the first option whose value is not a finite number in its range."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{flag} must be a finite number, not {value}.")
        low, high, low_ok = OPTION_RANGES.get(name, (None, None, True))
        if high is not None:
            need = f"in {'[' if low_ok else '('}{low}, {high}]"
        else:
            need = f"at least {low}" if low_ok else f"greater than {low}"
        if (low is not None and (value < low or (value == low and not low_ok))) or (high is not None and value > high):
            raise UserError(f"{flag} must be {need}, not {value}.")


# Options naming a directory a command writes into (export's --to names a file and is checked there).
OUTPUT_DIRS = ("out", "report_dir", "out_dir")


def check_output_dirs(values: dict) -> None:
    """UserError if an output directory option names a file, or lies under one."""
    from pathlib import Path

    for name in OUTPUT_DIRS:
        value = values.get(name)
        if value is None:
            continue
        path = Path(value)
        for place in [path, *path.parents]:
            if place.exists() and not place.is_dir():
                flag = "--" + name.replace("_", "-")
                where = "is a file" if place == path else f"lies under {place}, which is a file"
                raise UserError(f"{flag} {path} {where}; give a directory path (nothing is written there).")
            if place.exists():
                break
