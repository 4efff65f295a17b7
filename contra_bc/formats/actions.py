"""Action files: a CSV or parquet table of one action per step, as `record --input FILE` and
`import frames` read them.

A column ``action`` holds bitmasks (bit i = button i of the platform's order, empty slots never set),
or a column ``buttons`` holds names joined by "+" (``RIGHT+A``; an empty cell is no button).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contra_bc.errors import UserError


def action_from_names(buttons: list, names: list[str]) -> int:
    """Bitmask for the named buttons; UserError naming the valid ones otherwise."""
    index = {b.upper(): i for i, b in enumerate(buttons) if b}
    action = 0
    for name in names:
        key = name.strip().upper()
        if not key:
            continue
        if key not in index:
            raise UserError(f"Unknown button {name!r}. Buttons: {', '.join(b for b in buttons if b)}.")
        action |= 1 << index[key]
    return action



def read_action_file(path: Path, buttons: list) -> np.ndarray:
    """Actions from CSV or parquet: a column ``action`` (bitmask) or ``buttons`` ("RIGHT+A")."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Action file {path} does not exist.")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path).to_pydict()
        elif path.suffix.lower() == ".csv":
            import csv

            with open(path, newline="") as fh:
                lines = list(csv.reader(fh))
            header, body = (lines[0], lines[1:]) if lines else ([], [])
            # a blank line is a step with no button down (csv.DictReader would skip it)
            table = {k: [(r[j] if j < len(r) else "") for r in body] for j, k in enumerate(header)}
        else:
            raise UserError(f"{path}: action files are .csv or .parquet (or use bot:NAME, .bk2, .fm2).")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"Action file {path} cannot be read ({exc}).") from None
    allowed = sum(1 << i for i, b in enumerate(buttons) if b)  # a platform's empty slots are never pressed
    if "action" in table:
        try:
            values = [int(a) for a in table["action"]]
        except (TypeError, ValueError):
            raise UserError(f"{path}: column 'action' must hold integer bitmasks.") from None
        bad = [i for i, a in enumerate(values) if a < 0 or a & ~allowed]
        if bad:
            slots = ", ".join(f"bit {i} {b}" for i, b in enumerate(buttons) if b)
            raise UserError(f"{path}: action {values[bad[0]]} at row {bad[0]} presses a button the platform does not "
                            f"have; an action is a bitmask over {slots} (0..{allowed}, empty slots never set).")
        return np.array(values, dtype=np.int64)
    if "buttons" in table:
        return np.array([action_from_names(buttons, (s or "").split("+")) for s in table["buttons"]], dtype=np.int64)
    raise UserError(f"{path} needs a column 'action' (bitmask, bit i = button i of {buttons}) "
                    f"or 'buttons' (names joined by '+', e.g. RIGHT+A).")
