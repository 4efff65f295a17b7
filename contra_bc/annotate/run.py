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
from contra_bc.config import AnnotateConfig
from contra_bc.errors import UserError
from contra_bc.formats.annotations import (annotations_path, make_entries, recording_ref, validate, video_sha1,
                                           write_annotations)
from contra_bc.formats.recording import find_recordings, read_recording

MEDIA_RESOLUTIONS = ("low", "medium", "high")
THINKING_LEVELS = ("minimal", "low", "medium", "high")


@dataclass
class Settings:
    """What one annotation run does; the defaults are the options' (contra_bc/config.py: AnnotateConfig).
    The names ending in _s are seconds; they are stored in each annotations file's provenance."""

    model: str = field(default_factory=gemini.default_model)
    prompt_file: Path | None = None
    out_dir: Path | None = None
    window_seconds: float = AnnotateConfig.window_seconds
    sample_fps: float = AnnotateConfig.sample_fps
    media_resolution: str = AnnotateConfig.media_resolution
    thinking_level: str | None = AnnotateConfig.thinking_level  # None: as little thinking as the model allows
    max_output_tokens: int = AnnotateConfig.max_output_tokens
    cooldown_s: float = AnnotateConfig.cooldown
    crf: int = 28  # the clips' H.264 quality: not an option
    inline_max_mb: float = AnnotateConfig.inline_max_mb
    timeout_s: float = AnnotateConfig.timeout
    retries: int = AnnotateConfig.retries
    retry_base_s: float = AnnotateConfig.retry_base
    file_active_timeout_s: float = AnnotateConfig.file_active_timeout
    concurrency: int = AnnotateConfig.concurrency
    price_input: float = AnnotateConfig.price_input
    price_output: float = AnnotateConfig.price_output
    force: bool = False
    batch: bool = False
    batch_timeout_s: float = AnnotateConfig.batch_timeout

    @classmethod
    def from_config(cls, cfg: AnnotateConfig) -> "Settings":
        level = cfg.thinking_level.lower()
        return cls(model=cfg.model or gemini.default_model(), prompt_file=cfg.prompt, out_dir=cfg.out_dir,
                   window_seconds=cfg.window_seconds, sample_fps=cfg.sample_fps,
                   media_resolution=cfg.media_resolution.lower(), thinking_level=None if level == "off" else level,
                   max_output_tokens=cfg.max_output_tokens, cooldown_s=cfg.cooldown, inline_max_mb=cfg.inline_max_mb,
                   timeout_s=cfg.timeout, retries=cfg.retries, retry_base_s=cfg.retry_base,
                   file_active_timeout_s=cfg.file_active_timeout, concurrency=cfg.concurrency,
                   price_input=cfg.price_input, price_output=cfg.price_output, force=cfg.force, batch=cfg.batch,
                   batch_timeout_s=cfg.batch_timeout)

    def check(self) -> None:
        if self.media_resolution not in MEDIA_RESOLUTIONS:
            raise UserError(f"--media-resolution must be one of {', '.join(MEDIA_RESOLUTIONS)}, "
                            f"not {self.media_resolution!r}.")
        if self.thinking_level is not None and self.thinking_level not in THINKING_LEVELS:
            raise UserError(f"--thinking-level must be one of {', '.join(THINKING_LEVELS)} or 'off', "
                            f"not {self.thinking_level!r}.")
        if not 0 < self.sample_fps <= 24:
            raise UserError(f"--sample-fps must be above 0 and at most 24 (Gemini's limit), not {self.sample_fps}.")
        for name, value, low in (("--window-seconds", self.window_seconds, 5),
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
    try:
        validate(doc, out_path)  # a damaged file is never "up to date"
    except UserError as exc:
        return f"it is damaged ({exc})"
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
    try:
        if settings.batch:
            return await _annotate_batch(client, pending, settings, prompt, redact, on_result)
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


@dataclass
class Clip:
    """One window of one recording, encoded and ready to send."""

    window: int
    n_windows: int
    start_step: int
    stop_step: int
    clip_seconds: float
    mp4_bytes: int
    transport: str                   # "inline" or "files"
    contents: list                   # google-genai Content list (video part + prompt text)
    uploaded: str | None = None      # Files API name, deleted afterwards
    log: list = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"window {self.window + 1}/{self.n_windows} (steps {self.start_step}-{self.stop_step - 1})"


class _Recording:
    """What annotating one recording needs: the recording, its clock and its clips."""

    def __init__(self, rec_path: Path, out_path: Path, settings: Settings):
        self.rec = read_recording(rec_path)
        if self.rec.n_steps == 0:
            raise UserError(f"{rec_path} has no steps, so there is nothing to annotate.")
        self.path, self.out_path = rec_path, out_path
        self.hz = float(self.rec.meta["hz"])
        self.rate = max(1, int(round(self.hz)))   # the MP4 plays the steps at (about) real time
        self.time_scale = self.rate / self.hz     # recording seconds per video second
        self.windows = _windows(self.rec.n_steps, self.hz, settings.window_seconds)


async def _prepare_clip(client, job: _Recording, w: int, tmp: Path, settings: Settings, prompt: Prompt,
                        policy, redact, previous_instruction: str | None) -> Clip:
    """Encode window ``w`` as MP4 and wrap it inline or as an uploaded (ACTIVE) file."""
    from google.genai import types

    from contra_bc.formats.video import encode_mp4

    s0, s1 = job.windows[w]
    mp4 = tmp / f"{job.path.name}-w{w:03d}.mp4"
    n_frames = await asyncio.to_thread(encode_mp4, job.rec.frames(s0, s1), mp4, job.rate, settings.crf)
    clip_seconds = n_frames / job.rate
    text = prompt.text + "\n\n" + clip_context(
        game=job.rec.meta.get("game", "unknown"), clip_seconds=clip_seconds, window_index=w,
        n_windows=len(job.windows), clip_start_s=s0 / job.hz, previous_instruction=previous_instruction)
    size = mp4.stat().st_size
    clip = Clip(window=w, n_windows=len(job.windows), start_step=s0, stop_step=s1, clip_seconds=clip_seconds,
                mp4_bytes=size, transport="inline", contents=[])
    request_bytes = size * 4 / 3 + len(text.encode()) + 4096  # base64 inflates inline data by 4/3
    try:
        if request_bytes <= settings.inline_max_mb * 1e6:
            video = gemini.video_part(data=mp4.read_bytes(), fps=settings.sample_fps)
        else:
            clip.transport = "files"
            uploaded = await gemini.upload_video(client, mp4, display_name=f"contra-bc {job.path.name} w{w}",
                                                 policy=policy, redact=redact, log=clip.log)
            clip.uploaded = uploaded.name
            active = await gemini.wait_active(client, uploaded, active_timeout_s=settings.file_active_timeout_s,
                                              policy=policy, redact=redact, log=clip.log)
            video = gemini.video_part(file=active, fps=settings.sample_fps)
    except gemini.GeminiError as exc:
        await _cleanup(client, clip, redact)
        raise gemini.GeminiError(f"{clip.where}: {exc}", exc.kind) from None
    clip.contents = [types.Content(role="user", parts=[video, types.Part(text=text)])]
    return clip


async def _cleanup(client, clip: Clip, redact) -> None:
    """Delete the clip's uploaded file, if any (also after failures)."""
    if clip.uploaded:
        warning = await gemini.delete_file(client, clip.uploaded, redact)
        clip.uploaded = None
        if warning:
            clip.log.append({"cleanup": warning})


def _read_answer(job: _Recording, clip: Clip, response, settings: Settings, redact):
    """Check one response; (WindowAnswer, usage, finish_reason) or GeminiError naming the window."""
    try:
        text, usage, finish = gemini.check_response(response, max_output_tokens=settings.max_output_tokens,
                                                    redact=redact)
        answer = parse_answer(text, clip_seconds=clip.clip_seconds, offset_s=clip.start_step / job.hz,
                              window=clip.window, time_scale=job.time_scale)
    except gemini.GeminiError as exc:
        raise gemini.GeminiError(f"{clip.where}: {exc}", exc.kind) from None
    except AnswerError as exc:
        raise gemini.GeminiError(f"{clip.where}: {exc}", "answer") from None
    return answer, usage, finish


class _Merger:
    """Collects the windows of one recording in order and writes the annotations file."""

    def __init__(self, job: _Recording):
        self.job = job
        self.accepted: list[dict] = []
        self.rejected: list[dict] = []
        self.narratives: list[str] = []
        self.windows: list[dict] = []

    @property
    def last_instruction(self) -> str | None:
        return self.accepted[-1]["text"] if self.accepted else None

    def add(self, clip: Clip, answer, usage: dict, finish: str | None, attempts: int, cooldown_s: float):
        kept, cooled = apply_cooldown(self.accepted, answer.accepted, cooldown_s)
        self.accepted.extend(kept)
        self.rejected.extend(answer.rejected + cooled)
        if answer.narrative:
            self.narratives.append(answer.narrative)
        self.windows.append({"window": clip.window, "start_step": clip.start_step, "end_step": clip.stop_step - 1,
                             "clip_seconds": round(clip.clip_seconds, 3), "mp4_bytes": clip.mp4_bytes,
                             "transport": clip.transport, "attempts": attempts, "retries": clip.log,
                             "finish_reason": finish, "usage": usage})

    def write(self, settings: Settings, prompt: Prompt, *, mode: str, batch_jobs: list[str] | None = None) -> dict:
        job = self.job
        entries, hidden = make_entries([{"start": e["start"], "end": e["end"], "text": e["text"]}
                                        for e in self.accepted], job.hz, job.rec.n_steps)
        rejected = self.rejected + hidden
        usage = {k: sum(w["usage"][k] for w in self.windows) for k in self.windows[0]["usage"]}
        discount = 0.5 if mode == "batch" else 1.0  # the Batch API bills half the standard price
        cost = discount * (usage["prompt_tokens"] * settings.price_input
                           + (usage["output_tokens"] + usage["thoughts_tokens"]) * settings.price_output) / 1e6
        warnings = [r["cleanup"] for w in self.windows for r in w["retries"] if "cleanup" in r]
        provenance = {
            "model": settings.model, "prompt_version": prompt.version, "prompt_sha1": prompt.sha1,
            "prompt_file": prompt.path, "mode": mode, "settings": settings.request_settings(),
            "mp4_fps": job.rate, "windows": self.windows, "usage": usage,
            "prices_usd_per_million": {"input": settings.price_input, "output": settings.price_output,
                                       "factor": discount},
            "cost_usd": round(cost, 6), "warnings": warnings,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "contra_bc_version": __version__, "google_genai_version": _sdk_version(),
        }
        if batch_jobs:
            provenance["batch_jobs"] = batch_jobs
        write_annotations(job.out_path, recording=recording_ref(job.rec), source="gemini", entries=entries,
                          narrative="\n\n".join(self.narratives), provenance=provenance, rejected=rejected)
        return _result(job.path, job.out_path, "annotated", entries=len(entries), rejected=len(rejected),
                       windows=len(self.windows), prompt_tokens=usage["prompt_tokens"],
                       output_tokens=usage["output_tokens"] + usage["thoughts_tokens"], cost_usd=round(cost, 6),
                       message="; ".join(warnings))


def _policy(settings: Settings) -> gemini.RetryPolicy:
    return gemini.RetryPolicy(attempts=settings.retries + 1, base_s=settings.retry_base_s)


async def _annotate_recording(client, rec_path: Path, out_path: Path, settings: Settings, prompt: Prompt,
                              redact) -> dict:
    """Direct mode: windows in order, each told the instruction the previous one ended with."""
    job = await asyncio.to_thread(_Recording, rec_path, out_path, settings)
    policy = _policy(settings)
    config = _config(settings)
    merger = _Merger(job)
    with tempfile.TemporaryDirectory(prefix="contra-bc-annotate-") as tmp:
        for w in range(len(job.windows)):
            clip = await _prepare_clip(client, job, w, Path(tmp), settings, prompt, policy, redact,
                                       merger.last_instruction)
            try:
                response, attempts = await gemini.with_retries(
                    lambda: client.aio.models.generate_content(model=settings.model, contents=clip.contents,
                                                               config=config),
                    policy=policy, what="the generateContent request", redact=redact, log=clip.log)
            except gemini.GeminiError as exc:
                raise gemini.GeminiError(f"{clip.where}: {exc}", exc.kind) from None
            finally:
                await _cleanup(client, clip, redact)  # never leave our video on the server
            answer, usage, finish = _read_answer(job, clip, response, settings, redact)
            merger.add(clip, answer, usage, finish, attempts, settings.cooldown_s)
    return await asyncio.to_thread(merger.write, settings, prompt, mode="direct")


def _config(settings: Settings):
    return gemini.generate_config(media_resolution=settings.media_resolution,
                                  max_output_tokens=settings.max_output_tokens,
                                  thinking_level=settings.thinking_level, model=settings.model)


# ---------------------------------------------------------------- Batch API
BATCH_INLINE_LIMIT = 20e6  # bytes of inlined requests per batch job (the API's documented limit)


async def _annotate_batch(client, pending, settings: Settings, prompt: Prompt, redact, on_result):
    """Batch mode: all windows of all recordings in batch jobs, polled until done, then merged.

    Windows are sent together, so a window is not told the previous window's last
    instruction; the cool-down is still enforced when the windows are merged.
    """
    from google.genai import types

    policy = _policy(settings)
    config = _config(settings)
    outcome: dict[int, dict] = {}
    jobs: dict[int, _Recording] = {}
    clips: dict[int, list[Clip]] = {}

    def fail(i, rec_path, out_path, exc):
        outcome[i] = _result(rec_path, out_path, "error", message=redact(exc))
        if on_result:
            on_result(outcome[i])

    with tempfile.TemporaryDirectory(prefix="contra-bc-annotate-") as tmp:
        try:
            for i, rec_path, out_path in pending:
                try:
                    jobs[i] = await asyncio.to_thread(_Recording, rec_path, out_path, settings)
                    clips[i] = []
                    for w in range(len(jobs[i].windows)):
                        clips[i].append(await _prepare_clip(client, jobs[i], w, Path(tmp), settings, prompt,
                                                            policy, redact, None))
                except (gemini.GeminiError, UserError) as exc:
                    fail(i, rec_path, out_path, exc)
                    jobs.pop(i, None)
            groups: list[list[tuple[int, int]]] = [[]]
            size = 0.0
            for i in jobs:
                for w, clip in enumerate(clips[i]):
                    # what the request weighs on the wire: the base64 video (if inline), the prompt, the schema
                    weight = len(types.InlinedRequest(model=settings.model, contents=clip.contents, config=config,
                                                      metadata={"key": f"{i}:{w}"}).model_dump_json(exclude_none=True))
                    if groups[-1] and size + weight > BATCH_INLINE_LIMIT:
                        groups.append([])
                        size = 0.0
                    groups[-1].append((i, w))
                    size += weight
            responses: dict[tuple[int, int], object] = {}
            batch_names: list[str] = []
            for group in (g for g in groups if g):
                requests = [types.InlinedRequest(model=settings.model, contents=clips[i][w].contents, config=config,
                                                 metadata={"key": f"{i}:{w}"}) for i, w in group]
                try:
                    name, results = await _run_batch_job(client, requests, settings, policy, redact)
                except gemini.GeminiError as exc:
                    for i in {i for i, _ in group}:
                        if i in jobs:
                            fail(i, jobs[i].path, jobs[i].out_path, exc)
                            jobs.pop(i)
                    continue
                batch_names.append(name)
                for (i, w), result in zip(group, results):
                    responses[(i, w)] = result
        finally:
            for i in clips:
                for clip in clips[i]:
                    await _cleanup(client, clip, redact)
    for i, job in jobs.items():
        merger = _Merger(job)
        try:
            for w, clip in enumerate(clips[i]):
                result = responses[(i, w)]
                if result.error is not None:
                    raise gemini.GeminiError(f"{clip.where}: the batch request failed: "
                                             f"{redact(result.error.message or result.error)}", "api")
                answer, usage, finish = _read_answer(job, clip, result.response, settings, redact)
                merger.add(clip, answer, usage, finish, 1, settings.cooldown_s)
            outcome[i] = merger.write(settings, prompt, mode="batch", batch_jobs=batch_names)
        except gemini.GeminiError as exc:
            outcome[i] = _result(job.path, job.out_path, "error", message=redact(exc))
        if on_result:
            on_result(outcome[i])
    return sorted(outcome.items())


async def _run_batch_job(client, requests, settings: Settings, policy, redact):
    """Create one batch job, poll until it ends; (name, inlined responses in request order)."""
    import uuid

    # A create that failed on the way back (a timeout, a dropped connection, a 5xx) may still have made the
    # job, and a job is billed: so each create carries a unique name, and before any retry we look for it.
    tag = f"contra-bc annotate {uuid.uuid4().hex[:16]}"

    async def create():
        try:
            return await client.aio.batches.create(model=settings.model, src=requests, config={"display_name": tag})
        except Exception:
            found = await _find_batch(client, tag, redact)
            if found is not None:
                return found
            raise

    batch, _ = await gemini.with_retries(create, policy=policy, what="creating the batch job", redact=redact, log=[])
    name = batch.name
    deadline = asyncio.get_running_loop().time() + settings.batch_timeout_s
    interval = 0.5
    done = False
    try:
        while True:
            state = gemini._enum_name(batch.state) or ""
            if state == "JOB_STATE_SUCCEEDED":
                done = True
                break
            if state in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"):
                done = True
                detail = redact(getattr(batch.error, "message", "") or "") if batch.error else ""
                raise gemini.GeminiError(f"batch job {name} ended in {state}{': ' + detail if detail else ''}",
                                         "batch")
            now = asyncio.get_running_loop().time()
            if now >= deadline:
                raise gemini.GeminiError(f"batch job {name} was still {state} after --batch-timeout "
                                         f"{settings.batch_timeout_s:g} s, so it was cancelled; run again with a "
                                         f"longer --batch-timeout, or without --batch", "batch")
            await asyncio.sleep(min(interval, deadline - now))
            interval = min(30.0, interval * 1.5)
            batch, _ = await gemini.with_retries(lambda: client.aio.batches.get(name=name), policy=policy,
                                                 what="checking the batch job", redact=redact, log=[])
    finally:
        if not done:  # timed out or interrupted: do not leave a paid job running unseen
            try:
                await client.aio.batches.cancel(name=name)
            except Exception:  # best effort; the error being raised matters more
                pass
    results = list(getattr(batch.dest, "inlined_responses", None) or [])
    if len(results) != len(requests):
        raise gemini.GeminiError(f"batch job {name} returned {len(results)} answers for {len(requests)} requests",
                                 "batch")
    keys = [q.metadata["key"] for q in requests]
    by_key = {(r.metadata or {}).get("key"): r for r in results}
    if set(keys) <= set(by_key):  # match by our key; otherwise the API's order is the request order
        results = [by_key[k] for k in keys]
    return name, results


async def _find_batch(client, tag: str, redact):
    """The batch job named ``tag`` if one exists, else None; GeminiError if that cannot be known."""
    try:
        pager = await client.aio.batches.list(config={"page_size": 100})
        async for job in pager:
            if getattr(job, "display_name", None) == tag:
                return job
    except Exception as exc:
        raise gemini.GeminiError(redact(f"creating the batch job failed, and listing the batch jobs to see whether it "
                                        f"was created anyway failed too ({type(exc).__name__}: {exc}); not creating "
                                        f"another (each is billed). Look for a job named {tag!r} in the "
                                        f"Gemini console before running again")[:600], "batch") from None
    return None


def _sdk_version() -> str:
    try:
        from google.genai import version

        return version.__version__
    except Exception:  # provenance only
        return "unknown"


# ---------------------------------------------------------------- hand-written tables
def import_table(paths: list[Path], table_file: Path, *, out_dir: Path | None = None, force: bool = False,
                 on_result=None) -> list[dict]:
    """Write the annotations file of every recording under ``paths`` from one `| Start | End | Text |`
    table (no network): the same times on each recording's clock, for runs that play the same way.
    Each file is written whole before the next; a stopped call is resumed by running it again."""
    import hashlib

    recordings = find_recordings(paths)
    rows, text = read_table(table_file)
    table_sha1 = hashlib.sha1(text.encode()).hexdigest()
    if out_dir is not None:
        names = [p.name for p in recordings]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(f"--out-dir {out_dir} would get one file for several recordings named "
                            f"{', '.join(twice)} (the file is named after the recording). Annotate those "
                            f"folders in separate calls with their own --out-dir, or leave --out-dir out to "
                            f"write annotations.json inside each recording.")
        out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for rec_path in recordings:
        results.append(_import_one(rec_path, table_file, rows, table_sha1, out_dir, force))
        if on_result:
            on_result(results[-1])
    return results


def _import_one(rec_path: Path, table_file: Path, rows: list, table_sha1: str, out_dir: Path | None,
                force: bool) -> dict:
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
    entries, rejected = make_entries(rows, hz, rec.n_steps)  # rows keep their "line" for the report
    provenance = {"table_file": str(table_file), "table_sha1": table_sha1, "rows": len(rows),
                  "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "contra_bc_version": __version__}
    write_annotations(out_path, recording=recording_ref(rec), source="table", entries=entries,
                      provenance=provenance, rejected=rejected)
    return _result(rec_path, out_path, "annotated", entries=len(entries), rejected=len(rejected),
                   message="; ".join(f"rejected line {r['entry'].get('line', '?')} {r['entry'].get('text', '')!r}: "
                                     f"{r['reason']}" for r in rejected))


def table_rows(results: list[dict]) -> list[dict]:
    """The summary table of `annotate` / `import_table`: one row per recording, a total under several."""
    rows = [{"recording": Path(r["recording"]).name, "status": r["status"], "entries": r["entries"],
             "rejected": r["rejected"], "windows": r["windows"], "tokens in": r["prompt_tokens"],
             "tokens out": r["output_tokens"], "cost USD": f"{r['cost_usd']:.4f}"} for r in results]
    if len(rows) > 1:
        rows.append({"recording": "total", "status": "", "entries": sum(r["entries"] for r in results),
                     "rejected": sum(r["rejected"] for r in results), "windows": sum(r["windows"] for r in results),
                     "tokens in": sum(r["prompt_tokens"] for r in results),
                     "tokens out": sum(r["output_tokens"] for r in results),
                     "cost USD": f"{sum(r['cost_usd'] for r in results):.4f}"})
    return rows
