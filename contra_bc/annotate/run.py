"""Annotate recordings: clips -> Gemini -> checked entries -> annotations files.

Per recording: split into windows of --window-seconds, encode each as a
compressed MP4 from the lossless video, send it inline (small) or through the
Files API (large), check the answer ourselves, move times back onto the
recording's clock, keep the cool-down across windows, convert to steps and write
the annotations file atomically. Recordings run concurrently (asyncio, a
semaphore); windows of one recording run in order so each knows the previous
instruction. A recording whose file already matches (video, prompt, model) is
skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from contra_bc import __version__
from contra_bc.annotate import gemini
from contra_bc.annotate.prompt import Prompt, clip_context, load_prompt
from contra_bc.annotate.response import AnswerError, apply_cooldown, parse_answer
from contra_bc.annotate.table import read_table
from contra_bc.errors import UserError
from contra_bc.formats.annotations import (annotations_path, make_entries, recording_ref, video_sha1,
                                           write_annotations)
from contra_bc.formats.recording import find_recordings, read_recording

# Gemini 3 Flash preview list prices in USD per million tokens (standard tier, checked
# when this was written; pass --price-input/--price-output for current ones).
PRICE_INPUT = 0.50
PRICE_OUTPUT = 3.00   # output and thinking tokens
MEDIA_RESOLUTIONS = ("low", "medium", "high")
THINKING_LEVELS = ("minimal", "low", "medium", "high")


@dataclass
class Settings:
    model: str = field(default_factory=gemini.default_model)
    prompt_file: Path | None = None
    out_dir: Path | None = None
    window_seconds: float = 60.0
    sample_fps: float = 5.0
    media_resolution: str = "medium"
    thinking_level: str | None = "low"
    max_output_tokens: int = 16384
    cooldown_s: float = 8.0
    crf: int = 28
    inline_max_mb: float = 15.0
    timeout_s: float = 300.0
    retries: int = 5
    retry_base_s: float = 2.0
    file_active_timeout_s: float = 300.0
    concurrency: int = 4
    price_input: float = PRICE_INPUT
    price_output: float = PRICE_OUTPUT
    force: bool = False

    def check(self) -> None:
        if self.media_resolution not in MEDIA_RESOLUTIONS:
            raise UserError(f"--media-resolution must be one of {', '.join(MEDIA_RESOLUTIONS)}, "
                            f"not {self.media_resolution!r}.")
        if self.thinking_level is not None and self.thinking_level not in THINKING_LEVELS:
            raise UserError(f"--thinking-level must be one of {', '.join(THINKING_LEVELS)} or 'off', "
                            f"not {self.thinking_level!r}.")
        for name, value, low in (("--window-seconds", self.window_seconds, 5), ("--sample-fps", self.sample_fps, 0.1),
                                 ("--timeout", self.timeout_s, 1), ("--concurrency", self.concurrency, 1),
                                 ("--max-output-tokens", self.max_output_tokens, 256)):
            if value < low:
                raise UserError(f"{name} must be at least {low}, not {value}.")
        if not self.model.strip():
            raise UserError(f"The model name is empty; pass --model or set {gemini.MODEL_VAR}.")

    def request_settings(self) -> dict:
        keys = ("window_seconds", "sample_fps", "media_resolution", "thinking_level", "max_output_tokens",
                "cooldown_s", "crf", "inline_max_mb", "timeout_s", "retries")
        return {k: v for k, v in asdict(self).items() if k in keys}


def _output_path(rec_path: Path, out_dir: Path | None) -> Path:
    return annotations_path(rec_path, out_dir)


def _existing(out_path: Path, rec_path: Path, *, source: str, same_key: dict) -> str | None:
    """None if nothing is there; "same" if it matches; else why it differs."""
    if not out_path.exists():
        return None
    try:
        doc = json.loads(out_path.read_text())
    except (OSError, ValueError):
        return "an unreadable file is there"
    if doc.get("source") != source:
        return f"it holds {doc.get('source')!r} annotations"
    if doc.get("recording", {}).get("video_sha1") != video_sha1(rec_path):
        return "it was made for a different video (the recording changed)"
    prov = doc.get("provenance", {})
    for k, v in same_key.items():
        if prov.get(k) != v:
            return f"it was made with {k} {prov.get(k)!r}, not {v!r}"
    return "same"


def _result(rec_path: Path, out_path: Path, status: str, **extra) -> dict:
    base = {"recording": str(rec_path), "out": str(out_path), "status": status, "entries": 0, "rejected": 0,
            "windows": 0, "prompt_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "message": ""}
    base.update(extra)
    return base


# ---------------------------------------------------------------- Gemini
def annotate(paths: list[Path], settings: Settings, on_result=None) -> list[dict]:
    """Annotate every recording under ``paths``; one result dict per recording, in order."""
    settings.check()
    prompt = load_prompt(settings.prompt_file)
    recordings = find_recordings(paths)
    if settings.out_dir is not None:
        settings.out_dir.mkdir(parents=True, exist_ok=True)
    same_key = {"model": settings.model, "prompt_version": prompt.version, "prompt_sha1": prompt.sha1}
    results: list[dict | None] = [None] * len(recordings)
    pending = []
    for i, rec_path in enumerate(recordings):
        out_path = _output_path(rec_path, settings.out_dir)
        state = None if settings.force else _existing(out_path, rec_path, source="gemini", same_key=same_key)
        if state == "same":
            results[i] = _result(rec_path, out_path, "up to date", message="matches video, prompt and model")
        elif state is not None:
            results[i] = _result(rec_path, out_path, "kept",
                                 message=f"an annotations file exists and {state}; pass --force to replace it")
        else:
            pending.append((i, rec_path, out_path))
        if results[i] is not None and on_result:
            on_result(results[i])
    if pending:
        key = gemini.api_key_from_env()
        for i, result in asyncio.run(_annotate_all(pending, settings, prompt, key, on_result)):
            results[i] = result
    return results


async def _annotate_all(pending, settings: Settings, prompt: Prompt, key: str, on_result):
    redact = gemini.Redactor(key)
    client = gemini.make_client(key, settings.timeout_s)
    limit = asyncio.Semaphore(settings.concurrency)

    async def one(i, rec_path, out_path):
        async with limit:
            try:
                result = await _annotate_recording(client, rec_path, out_path, settings, prompt, redact)
            except (gemini.GeminiError, UserError) as exc:
                result = _result(rec_path, out_path, "error", message=redact(exc))
        if on_result:
            on_result(result)
        return i, result

    try:
        return await asyncio.gather(*(one(*p) for p in pending))
    finally:
        await client.aio.aclose()


def _windows(n_steps: int, hz: float, window_seconds: float) -> list[tuple[int, int]]:
    """[start, stop) step ranges; a short tail (< half a window, < 10 s) joins the previous window."""
    per = max(1, int(round(window_seconds * hz)))
    windows = [[s, min(n_steps, s + per)] for s in range(0, n_steps, per)]
    if len(windows) > 1 and windows[-1][1] - windows[-1][0] < min(per / 2, 10 * hz):
        windows[-2][1] = windows.pop()[1]
    return [tuple(w) for w in windows]


async def _annotate_recording(client, rec_path: Path, out_path: Path, settings: Settings, prompt: Prompt,
                              redact) -> dict:
    from contra_bc.formats.video import encode_mp4

    rec = await asyncio.to_thread(read_recording, rec_path)
    if rec.n_steps == 0:
        raise UserError(f"{rec_path} has no steps, so there is nothing to annotate.")
    hz = float(rec.meta["hz"])
    rate = max(1, int(round(hz)))      # the MP4 plays the steps at (about) real time
    time_scale = rate / hz             # recording seconds per video second
    windows = _windows(rec.n_steps, hz, settings.window_seconds)
    policy = gemini.RetryPolicy(attempts=settings.retries + 1, base_s=settings.retry_base_s)
    config = gemini.generate_config(media_resolution=settings.media_resolution,
                                    max_output_tokens=settings.max_output_tokens,
                                    thinking_level=settings.thinking_level)
    accepted: list[dict] = []
    rejected: list[dict] = []
    narratives: list[str] = []
    window_log: list[dict] = []
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="contra-bc-annotate-") as tmp:
        for w, (s0, s1) in enumerate(windows):
            where = f"window {w + 1}/{len(windows)} (steps {s0}-{s1 - 1})"
            mp4 = Path(tmp) / f"{rec_path.name}-w{w:03d}.mp4"
            n_frames = await asyncio.to_thread(encode_mp4, rec.frames(s0, s1), mp4, rate, settings.crf)
            clip_seconds = n_frames / rate
            context = clip_context(game=rec.meta.get("game", "unknown"), clip_seconds=clip_seconds,
                                   window_index=w, n_windows=len(windows), clip_start_s=s0 / hz,
                                   previous_instruction=accepted[-1]["text"] if accepted else None)
            log: list[dict] = []
            try:
                response, transport, attempts, warning = await _ask(
                    client, mp4, f"{prompt.text}\n\n{context}", settings, config, policy, redact, log,
                    display_name=f"contra-bc {rec_path.name} w{w}")
                if warning:
                    warnings.append(warning)
                text, usage, finish = gemini.check_response(response, max_output_tokens=settings.max_output_tokens,
                                                            redact=redact)
                answer = parse_answer(text, clip_seconds=clip_seconds, offset_s=s0 / hz, window=w,
                                      time_scale=time_scale)
            except gemini.GeminiError as exc:
                raise gemini.GeminiError(f"{where}: {exc}", exc.kind) from None
            except AnswerError as exc:
                raise gemini.GeminiError(f"{where}: {exc}", "answer") from None
            kept, cooled = apply_cooldown(accepted, answer.accepted, settings.cooldown_s)
            accepted.extend(kept)
            rejected.extend(answer.rejected + cooled)
            if answer.narrative:
                narratives.append(answer.narrative)
            window_log.append({"window": w, "start_step": s0, "end_step": s1 - 1, "clip_seconds": round(clip_seconds, 3),
                               "mp4_bytes": mp4.stat().st_size, "transport": transport, "attempts": attempts,
                               "retries": log, "finish_reason": finish, "usage": usage})
    entries, clipped = make_entries([{"start": e["start"], "end": e["end"], "text": e["text"]} for e in accepted],
                                    hz, rec.n_steps)
    rejected.extend(clipped)
    usage = {k: sum(wl["usage"][k] for wl in window_log) for k in window_log[0]["usage"]}
    cost = (usage["prompt_tokens"] * settings.price_input
            + (usage["output_tokens"] + usage["thoughts_tokens"]) * settings.price_output) / 1e6
    provenance = {
        "model": settings.model, "prompt_version": prompt.version, "prompt_sha1": prompt.sha1,
        "prompt_file": prompt.path, "settings": settings.request_settings(), "mp4_fps": rate,
        "windows": window_log, "usage": usage,
        "prices_usd_per_million": {"input": settings.price_input, "output": settings.price_output},
        "cost_usd": round(cost, 6), "warnings": warnings,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "contra_bc_version": __version__, "google_genai_version": _sdk_version(),
    }
    await asyncio.to_thread(write_annotations, out_path, recording=recording_ref(rec), source="gemini",
                            entries=entries, narrative="\n\n".join(narratives), provenance=provenance,
                            rejected=rejected)
    return _result(rec_path, out_path, "annotated", entries=len(entries), rejected=len(rejected),
                   windows=len(windows), prompt_tokens=usage["prompt_tokens"],
                   output_tokens=usage["output_tokens"] + usage["thoughts_tokens"], cost_usd=round(cost, 6),
                   message="; ".join(warnings))


async def _ask(client, mp4: Path, text: str, settings: Settings, config, policy, redact, log, *, display_name):
    """One generateContent call with the clip inline or via the Files API; (response, transport, attempts, warning)."""
    from google.genai import types

    size = mp4.stat().st_size
    request_bytes = size * 4 / 3 + len(text.encode()) + 4096  # base64 inflates inline data by 4/3
    uploaded = None
    warning = None
    try:
        if request_bytes <= settings.inline_max_mb * 1e6:
            transport = "inline"
            video = gemini.video_part(data=mp4.read_bytes(), fps=settings.sample_fps)
        else:
            transport = "files"
            uploaded = await gemini.upload_video(client, mp4, display_name=display_name, policy=policy,
                                                 redact=redact, log=log)
            active = await gemini.wait_active(client, uploaded, active_timeout_s=settings.file_active_timeout_s,
                                              policy=policy, redact=redact, log=log)
            video = gemini.video_part(file=active, fps=settings.sample_fps)
        contents = [types.Content(role="user", parts=[video, types.Part(text=text)])]
        response, attempts = await gemini.with_retries(
            lambda: client.aio.models.generate_content(model=settings.model, contents=contents, config=config),
            policy=policy, what="the generateContent request", redact=redact, log=log)
    finally:
        if uploaded is not None and uploaded.name:  # also on failure: never leave our video on the server
            warning = await gemini.delete_file(client, uploaded.name, redact)
            if warning:
                log.append({"cleanup": warning})
    return response, transport, attempts, warning


def _sdk_version() -> str:
    try:
        from google.genai import version

        return version.__version__
    except Exception:  # provenance only
        return "unknown"


# ---------------------------------------------------------------- hand-written tables
def import_table(paths: list[Path], table_file: Path, *, out_dir: Path | None = None, force: bool = False) -> dict:
    """Write the annotations file of ONE recording from a `| Start | End | Text |` table (no network)."""
    import hashlib

    recordings = find_recordings(paths)
    if len(recordings) != 1:
        raise UserError(f"--from-table annotates exactly one recording, but {len(recordings)} were found under "
                        f"{', '.join(map(str, paths))}. Pass the one recording directory the table describes.")
    rec_path = recordings[0]
    rows, text = read_table(table_file)
    table_sha1 = hashlib.sha1(text.encode()).hexdigest()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    out_path = _output_path(rec_path, out_dir)
    state = None if force else _existing(out_path, rec_path, source="table", same_key={"table_sha1": table_sha1})
    if state == "same":
        return _result(rec_path, out_path, "up to date", message="matches the table and the video")
    if state is not None:
        raise UserError(f"{out_path} exists and {state}. Pass --force to replace it, or --out-dir DIR to write "
                        f"elsewhere.")
    rec = read_recording(rec_path)
    if rec.n_steps == 0:
        raise UserError(f"{rec_path} has no steps, so there is nothing to annotate.")
    hz = float(rec.meta["hz"])
    entries, rejected = make_entries([{k: r[k] for k in ("start", "end", "text")} for r in rows], hz, rec.n_steps)
    provenance = {"table_file": str(table_file), "table_sha1": table_sha1, "rows": len(rows),
                  "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "contra_bc_version": __version__}
    write_annotations(out_path, recording=recording_ref(rec), source="table", entries=entries,
                      provenance=provenance, rejected=rejected)
    return _result(rec_path, out_path, "annotated", entries=len(entries), rejected=len(rejected),
                   message="; ".join(f"rejected {r['entry'].get('text', '')!r}: {r['reason']}" for r in rejected))
