"""The annotation prompt: a versioned text file, plus the JSON schema of the answer."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from contra_bc.errors import UserError

DEFAULT_PROMPT = Path(__file__).resolve().parent.parent / "prompts" / "annotate-v1.md"
_VERSION_LINE = re.compile(r"^\s*prompt-version:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Prompt:
    text: str       # the instructions sent to the model (version line removed)
    version: str    # from the "prompt-version:" line, else "custom-<sha1[:12]>"
    sha1: str       # of the whole file, so an edit without a version bump is still noticed
    path: str


def load_prompt(path: Path | None = None) -> Prompt:
    """Read the packaged prompt, or a user's file given with --prompt."""
    path = Path(path) if path else DEFAULT_PROMPT
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"The prompt file {path} does not exist. Pass an existing file to --prompt, "
                        f"or leave --prompt out to use the packaged {DEFAULT_PROMPT.name}.") from None
    except UnicodeDecodeError:
        raise UserError(f"The prompt file {path} is not UTF-8 text; save it as UTF-8.") from None
    sha1 = hashlib.sha1(raw.encode()).hexdigest()
    match = _VERSION_LINE.search(raw)
    version = match.group(1) if match else f"custom-{sha1[:12]}"
    text = _VERSION_LINE.sub("", raw, count=1).strip() if match else raw.strip()
    if not text:
        raise UserError(f"The prompt file {path} is empty; write the instructions for the model in it.")
    return Prompt(text=text, version=version, sha1=sha1, path=str(path))


def clip_context(*, game: str, clip_seconds: float, window_index: int, n_windows: int,
                 clip_start_s: float, previous_instruction: str | None) -> str:
    """Per-request facts appended to the prompt: which clip this is and how long."""
    lines = [
        "## This clip",
        f"- Game: {game}.",
        f"- Length: {format_clock(clip_seconds)} ({clip_seconds:.1f} s). Every time you give must lie "
        f"between 00:00 and {format_clock(clip_seconds)}.",
    ]
    if n_windows > 1:
        lines.append(f"- It is part {window_index + 1} of {n_windows} of a longer run; it starts "
                     f"{format_clock(clip_start_s)} into the run, but give times from the start of this clip.")
    if previous_instruction:
        lines.append(f"- The instruction active when the previous part ended was: \"{previous_instruction}\". "
                     f"Do not repeat it; continue from there.")
    return "\n".join(lines)


def format_clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def response_schema():
    """The structured-output schema (google-genai types; imported lazily)."""
    from google.genai import types

    instruction = types.Schema(
        type=types.Type.OBJECT,
        properties={
            "start": types.Schema(type=types.Type.STRING, description="MM:SS from the clip start"),
            "end": types.Schema(type=types.Type.STRING, nullable=True,
                                description="MM:SS when achieved, or null if unfinished"),
            "instruction": types.Schema(type=types.Type.STRING, description="one imperative sentence"),
        },
        required=["start", "end", "instruction"],
        property_ordering=["start", "end", "instruction"],
    )
    return types.Schema(
        type=types.Type.OBJECT,
        properties={
            "narrative": types.Schema(type=types.Type.STRING),
            "instructions": types.Schema(type=types.Type.ARRAY, items=instruction),
        },
        required=["narrative", "instructions"],
        property_ordering=["narrative", "instructions"],
    )
