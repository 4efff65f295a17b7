"""Check the model's answer ourselves (never trust `response.parsed`) and merge windows.

The model answers per clip with times relative to the clip. Each entry is checked
here (JSON shape, "MM:SS" times, inside the clip, start <= end, non-empty text) and
moved onto the recording's clock; what fails is kept with a reason, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from contra_bc.formats.annotations import parse_clock


class AnswerError(Exception):
    """The answer as a whole is unusable (not JSON, wrong shape)."""


@dataclass
class WindowAnswer:
    narrative: str
    accepted: list[dict] = field(default_factory=list)   # {"start", "end", "text"} in recording seconds
    rejected: list[dict] = field(default_factory=list)   # {"entry", "reason", "window"}


def parse_answer(text: str | None, *, clip_seconds: float, offset_s: float, window: int,
                 time_scale: float = 1.0) -> WindowAnswer:
    """JSON answer for one clip -> entries on the recording's clock (seconds) + rejected ones.

    ``clip_seconds`` is the clip length on the video's clock; a video second is
    ``time_scale`` recording seconds (the MP4 frame rate is an integer, hz may not be).
    """
    if not text or not text.strip():
        raise AnswerError("the answer is empty")
    body = text.strip()
    if body.startswith("```"):  # tolerate a fenced block even though JSON-only was asked for
        body = body.strip("`").removeprefix("json").strip()
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"the answer is not valid JSON ({exc.msg} at character {exc.pos}); "
                          f"it starts with {body[:80]!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instructions"), list):
        raise AnswerError("the answer is JSON but not an object with an \"instructions\" list")
    narrative = doc.get("narrative")
    answer = WindowAnswer(narrative=narrative.strip() if isinstance(narrative, str) else "")
    for item in doc["instructions"]:
        entry, reason = _check_entry(item, clip_seconds)
        if reason:
            answer.rejected.append({"entry": item, "reason": reason, "window": window})
            continue
        answer.accepted.append({"start": round(offset_s + entry["start"] * time_scale, 3),
                                "end": None if entry["end"] is None else round(offset_s + entry["end"] * time_scale, 3),
                                "text": entry["text"], "window": window})
    if answer.rejected and not answer.accepted:  # an answer none of whose instructions is usable is a failure
        reasons = "; ".join(sorted({r["reason"] for r in answer.rejected}))[:300]
        raise AnswerError(f"every one of its {len(answer.rejected)} instruction(s) was rejected ({reasons})")
    return answer


def _clock(value) -> float:
    """A time as the model gave it: "MM:SS" (asked for), or a plain number of seconds (tolerated)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        if not value >= 0 or value == float("inf"):
            raise ValueError(value)
        return float(value)
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        return parse_clock(text)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(value)
    return seconds


def _check_entry(item, clip_seconds: float) -> tuple[dict | None, str | None]:
    if not isinstance(item, dict):
        return None, "not an object"
    text = item.get("instruction")
    if not isinstance(text, str) or not text.strip():
        return None, "empty instruction"
    try:
        start = _clock(item.get("start", ""))
    except ValueError:
        return None, f"start {item.get('start')!r} is not a MM:SS time"
    end_raw = item.get("end")
    end = None
    if end_raw not in (None, "", "null"):
        try:
            end = _clock(end_raw)
        except ValueError:
            return None, f"end {end_raw!r} is not a MM:SS time"
    if start >= clip_seconds:
        return None, f"starts at {start:.0f} s, after the clip ends ({clip_seconds:.1f} s)"
    if end is not None and end < start:
        return None, "ends before it starts"
    if end is not None:
        end = min(end, clip_seconds)  # clipped to the clip
    return {"start": start, "end": end, "text": " ".join(text.split())}, None


def apply_cooldown(previous: list[dict], incoming: list[dict], cooldown_s: float) -> tuple[list[dict], list[dict]]:
    """Enforce the cool-down across a window boundary.

    Inside one clip the model may start a new instruction sooner when the situation
    truly changes; at a boundary it cannot see the previous clip, so an instruction
    starting within ``cooldown_s`` of the last accepted start is rejected.
    """
    if not previous or cooldown_s <= 0:
        return incoming, []
    last_start = previous[-1]["start"]
    incoming = sorted(incoming, key=lambda e: e["start"])
    kept, rejected = [], []
    for e in incoming:
        if e["start"] - last_start < cooldown_s:
            rejected.append({"entry": e, "reason": f"starts {e['start'] - last_start:.1f} s after the previous "
                             f"instruction, inside the {cooldown_s:g} s cool-down across a window boundary",
                             "window": e.get("window")})
        else:
            kept.append(e)
            break
    # Only the first entries of the new window can collide with the old one.
    idx = len(kept) + len(rejected)
    return kept + incoming[idx:], rejected
