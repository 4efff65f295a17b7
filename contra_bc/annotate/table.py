"""Hand-written annotations in the seed's Markdown table format.

    | Start | End | Text |
    |---|---|---|
    | 00:03 | 00:07 | Destroy the red-pulsing turret on the platform. |

Start and End are MM:SS (or HH:MM:SS) from the start of the recording; an empty
End, "-" or "null" means "until the next entry". Lines outside the table are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from contra_bc.errors import UserError
from contra_bc.formats.annotations import parse_clock

_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_OPEN_END = {"", "-", "—", "null", "none", "open"}


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def parse_table(text: str, where: str) -> list[dict]:
    """Rows of the first table whose header is Start | End | Text -> [{"start", "end", "text", "line"}]."""
    rows: list[dict] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("|"):
            if in_table and rows:
                break  # the table ended
            continue
        cells = _cells(stripped)
        if not in_table:
            if [c.lower() for c in cells[:3]] == ["start", "end", "text"] and len(cells) == 3:
                in_table = True
            continue
        if _SEPARATOR.match(stripped):
            continue
        if len(cells) != 3:
            raise UserError(f"{where} line {number}: expected 3 cells (Start | End | Text), found {len(cells)}: "
                            f"{stripped!r}. A '|' inside the text must be written as '\\|'.")
        start_raw, end_raw, body = cells
        try:
            start = parse_clock(start_raw)
            end = None if end_raw.lower() in _OPEN_END else parse_clock(end_raw)
        except ValueError as exc:
            raise UserError(f"{where} line {number}: {exc}. Write times as MM:SS, e.g. 01:05.") from None
        if not body:
            raise UserError(f"{where} line {number}: the Text cell is empty; write the instruction or delete the row.")
        rows.append({"start": start, "end": end, "text": body, "line": number})
    if not in_table:
        raise UserError(f"{where} has no table with the header `| Start | End | Text |`. Write one like:\n"
                        f"| Start | End | Text |\n|---|---|---|\n| 00:03 | 00:07 | Destroy the turret on the platform. |")
    if not rows:
        raise UserError(f"{where}: the Start | End | Text table has no rows.")
    return rows


def read_table(path: Path) -> tuple[list[dict], str]:
    """(rows, file text); UserError if the file is missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"The table file {path} does not exist.") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise UserError(f"{path} is not a UTF-8 text file ({exc}).") from None
    return parse_table(text, str(path)), text
