"""Annotations format v1: timestamped task instructions for one recording.

One JSON file, by default ``<recording>/annotations.json``:

    {"format": "contra-bc/annotations", "format_version": 1,
     "recording": {"name", "steps", "hz", "frames_per_step", "start_state_sha1", "video_sha1"},
     "source": "gemini" | "table" | ...,
     "provenance": {...},                      # model, prompt version, settings, usage, cost
     "narrative": "...",
     "entries": [{"start_step", "end_step", "start_s", "end_s", "text"}, ...],
     "rejected": [{"entry": {...}, "reason": "..."}, ...]}

Steps are integers and inclusive at both ends; ``start_s = start_step / hz``.
Entries are sorted, do not overlap, and at most one is active at a step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats import fields as F

FORMAT = "contra-bc/annotations"
VERSION = 1
FILENAME = "annotations.json"


def video_sha1(recording_path: Path) -> str:
    """SHA-1 over the recording's video segments in order (identifies the pixels annotated)."""
    h = hashlib.sha1()
    for seg in sorted((Path(recording_path) / "video").glob("*.mkv")):
        h.update(seg.read_bytes())
    return h.hexdigest()


def recording_ref(rec) -> dict:
    """What an annotation file records about the recording it annotates."""
    return {
        "name": rec.path.name,
        "steps": rec.n_steps,
        "hz": float(rec.meta["hz"]),
        "frames_per_step": int(rec.meta["frames_per_step"]),
        "start_state_sha1": rec.meta.get("start_state_sha1"),
        "video_sha1": video_sha1(rec.path),
    }


def seconds_to_step(seconds: float, hz: float, n_steps: int) -> int:
    """The step shown at ``seconds`` into the recording, clipped to [0, n_steps-1]."""
    return max(0, min(n_steps - 1, int(seconds * hz + 1e-9)))


def parse_clock(text: str) -> float:
    """'MM:SS', 'MM:SS.s' or 'HH:MM:SS' -> seconds; ValueError otherwise."""
    parts = text.strip().split(":")
    if not 2 <= len(parts) <= 3 or not all(p.strip() for p in parts):
        raise ValueError(f"not a MM:SS time: {text!r}")
    value = 0.0
    for p in parts:
        value = value * 60 + float(p)
    if value < 0:
        raise ValueError(f"negative time: {text!r}")
    return value


def make_entries(raw: list[dict], hz: float, n_steps: int) -> tuple[list[dict], list[dict]]:
    """Validate raw entries {start, end (None = until the next one/end), text} given in seconds.

    Returns (entries, rejected). Times are clipped to the video; an entry that starts
    after the video, has empty text or ends before it starts is rejected with a reason.
    Overlaps are resolved by ending the earlier entry where the next one starts.
    """
    duration = n_steps / hz
    ok, rejected = [], []
    for item in raw:
        text = (item.get("text") or "").strip()
        start, end = item.get("start"), item.get("end")
        if not text:
            rejected.append({"entry": item, "reason": "empty text"})
            continue
        if start is None or start < 0:
            rejected.append({"entry": item, "reason": "missing or negative start time"})
            continue
        if start >= duration:
            rejected.append({"entry": item, "reason": f"starts at {start:.2f} s, after the video ends ({duration:.2f} s)"})
            continue
        if end is not None and end < start:
            rejected.append({"entry": item, "reason": "ends before it starts"})
            continue
        ok.append({"start": float(start), "end": None if end is None else float(end), "text": text})
    ok.sort(key=lambda e: e["start"])
    entries = []
    for i, e in enumerate(ok):
        start_step = seconds_to_step(e["start"], hz, n_steps)
        next_start = seconds_to_step(ok[i + 1]["start"], hz, n_steps) if i + 1 < len(ok) else n_steps
        end_step = n_steps - 1 if e["end"] is None else seconds_to_step(e["end"], hz, n_steps)
        end_step = min(end_step, next_start - 1)
        if end_step < start_step:
            rejected.append({"entry": e, "reason": "hidden by the next entry starting at the same step"})
            continue
        entries.append({"start_step": start_step, "end_step": end_step,
                        "start_s": round(start_step / hz, 3), "end_s": round(end_step / hz, 3),
                        "text": e["text"]})
    return entries, rejected


def write_annotations(path: Path, *, recording: dict, source: str, entries: list[dict],
                      narrative: str = "", provenance: dict | None = None,
                      rejected: list[dict] | None = None) -> dict:
    doc = {"format": FORMAT, "format_version": VERSION, "recording": recording, "source": source,
           "provenance": provenance or {}, "narrative": narrative, "entries": entries,
           "rejected": rejected or []}
    validate(doc, Path(path))
    atomic.write_json(Path(path), doc)
    return doc


FIX = ("Make it again with `contra-bc annotate RECORDING` (or --from-table FILE); a hand-edited file must keep "
       "the fields docs/formats.md lists.")


def validate(doc: dict, where: Path) -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{where} is not a contra-bc annotations file (format {found!r}). {FIX}")
    F.require_fields(doc, {"format_version": F.integer()}, where, "annotations file", FIX)
    if doc["format_version"] != VERSION:
        raise UserError(f"{where} is annotations format v{doc.get('format_version')}; this contra-bc reads v{VERSION}.")
    F.require_fields(doc, {
        "recording": F.mapping({"steps": F.integer(at_least=0), "hz": F.number(above=0),
                                "frames_per_step": F.integer(at_least=1)}),
        "source": F.string(),
        "entries": F.list_of(F.mapping({"start_step": F.integer(), "end_step": F.integer(), "text": F.string()})),
    }, where, "annotations file", FIX)
    n = int(doc["recording"]["steps"])
    last_end = -1
    for i, e in enumerate(doc.get("entries", [])):
        s, t = e.get("start_step"), e.get("end_step")
        if not isinstance(s, int) or not isinstance(t, int) or not (0 <= s <= t < max(n, 1)):
            raise UserError(f"{where}: entry {i} has steps {s}..{t}, outside 0..{n - 1} or reversed.")
        if s <= last_end:
            raise UserError(f"{where}: entry {i} overlaps the previous one; entries must not overlap.")
        if not str(e.get("text", "")).strip():
            raise UserError(f"{where}: entry {i} has empty text.")
        last_end = t


def read_annotations(path: Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"No annotations at {path}. Make them with `contra-bc annotate` "
                        f"(or `contra-bc annotate --from-table FILE`).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}).") from None
    validate(doc, path)
    return doc


def annotations_path(recording_path: Path, annotations_dir: Path | None = None) -> Path:
    """Where a recording's annotations live: inside it, or DIR/<name>.annotations.json."""
    recording_path = Path(recording_path)
    if annotations_dir is None:
        return recording_path / FILENAME
    return Path(annotations_dir) / f"{recording_path.name}.annotations.json"


def text_per_step(doc: dict, n_steps: int) -> list[str | None]:
    """The instruction active at each step (start <= step <= end), else None."""
    out: list[str | None] = [None] * n_steps
    for e in doc["entries"]:
        for k in range(e["start_step"], min(e["end_step"], n_steps - 1) + 1):
            out[k] = e["text"]
    return out
