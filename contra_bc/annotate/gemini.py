"""The Gemini boundary: key, client, retries, video transport, answer checks.

google-genai is imported inside functions so `contra-bc --help` stays fast.
Facts this module relies on (google-genai 3.4): the SDK does not retry unless
asked and ignores Retry-After, so retries live here; network errors are not
APIError; `HttpOptions.timeout` is in milliseconds; `response.parsed` is None on
bad JSON or truncation, so the caller checks `response.text` and finish_reason.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from contra_bc.errors import UserError

KEY_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # the SDK's own order: GOOGLE_API_KEY wins
MODEL_VAR = "CONTRA_BC_GEMINI_MODEL"
BASE_URL_VAR = "CONTRA_BC_GEMINI_BASE_URL"        # for tests and proxies: a stand-in for the API
API_VERSION_VAR = "CONTRA_BC_GEMINI_API_VERSION"
DEFAULT_MODEL = "gemini-3-flash-preview"
DEFAULT_API_VERSION = "v1beta"
BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                   "IMAGE_PROHIBITED_CONTENT", "LANGUAGE", "OTHER"}


class GeminiError(Exception):
    """One request failed for good; the message is safe to show (no key)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def default_model() -> str:
    return os.environ.get(MODEL_VAR) or DEFAULT_MODEL


def api_key_from_env() -> str:
    for var in KEY_VARS:
        key = os.environ.get(var, "").strip()
        if key:
            return key
    raise UserError("No Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) in the environment, "
                    "e.g. `export GEMINI_API_KEY=...` with a key from https://aistudio.google.com/apikey, "
                    "then run the command again. To import hand-written annotations without a key, use "
                    "`contra-bc annotate RECORDING --from-table FILE`.")


class Redactor:
    """Removes the API key from any text before it is shown or written."""

    def __init__(self, key: str):
        self.key = key

    def __call__(self, text) -> str:
        text = str(text)
        return text.replace(self.key, "<redacted key>") if self.key else text


def make_client(key: str, timeout_s: float):
    from google import genai
    from google.genai import types

    options = types.HttpOptions(timeout=int(timeout_s * 1000),
                                api_version=os.environ.get(API_VERSION_VAR) or DEFAULT_API_VERSION)
    base_url = os.environ.get(BASE_URL_VAR)
    if base_url:
        options.base_url = base_url
    return genai.Client(api_key=key, http_options=options)


# ---------------------------------------------------------------- retries
@dataclass
class RetryPolicy:
    attempts: int = 6           # tries in all, the first one included
    base_s: float = 2.0         # backoff: base * 2**k, with jitter, capped
    max_delay_s: float = 120.0


def _network_errors() -> tuple:
    errors: list = [asyncio.TimeoutError, TimeoutError, ConnectionError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(__import__(name).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def server_retry_delay(exc) -> float | None:
    """The wait the server asked for: RetryInfo.retryDelay ("7s") in the error details, or Retry-After."""
    details = getattr(exc, "details", None)
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"\s*([0-9.]+)s\s*", str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    return None


def _retryable(exc) -> bool:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        return exc.code in (408, 429) or (isinstance(exc.code, int) and exc.code >= 500)
    return isinstance(exc, _network_errors())


async def with_retries(call, *, policy: RetryPolicy, what: str, redact: Redactor, log: list):
    """Await ``call()``; retry 429/5xx/network errors with backoff, honouring the server's delay."""
    from google.genai import errors

    for attempt in range(1, policy.attempts + 1):
        try:
            return await call(), attempt
        except GeminiError:
            raise
        except Exception as exc:  # classified below
            if not isinstance(exc, (errors.APIError, *_network_errors())):
                # e.g. a 200 whose body the SDK cannot read: this request's failure, not the whole run's
                raise GeminiError(redact(f"{what} failed: unexpected {type(exc).__name__} from the SDK: {exc}")[:500],
                                  "sdk") from None
            reason = _describe(exc, redact)
            if not _retryable(exc) or attempt == policy.attempts:
                kind = "network" if not isinstance(exc, errors.APIError) else "api"
                tries = f" after {attempt} attempt(s)" if attempt > 1 else ""
                raise GeminiError(f"{what} failed{tries}: {reason}", kind) from None
            asked = server_retry_delay(exc) if isinstance(exc, errors.APIError) else None
            delay = asked if asked is not None else policy.base_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
            delay = min(delay, policy.max_delay_s)
            log.append({"attempt": attempt, "error": reason, "wait_s": round(delay, 3),
                        "server_delay": asked is not None})
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _describe(exc, redact: Redactor) -> str:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        message = exc.message or ""
        return redact(f"HTTP {exc.code} {exc.status or ''} {message}".strip())[:500]
    return redact(f"network error {type(exc).__name__}: {exc}")[:500]


# ---------------------------------------------------------------- video transport
async def upload_video(client, path: Path, *, display_name: str, policy: RetryPolicy,
                       redact: Redactor, log: list):
    """Files API resumable upload; returns the File (usually still PROCESSING)."""
    from google.genai import types

    async def call():
        try:
            return await client.aio.files.upload(file=str(path), config=types.UploadFileConfig(
                mime_type="video/mp4", display_name=display_name))
        except (ValueError, KeyError) as exc:  # the SDK's own upload-protocol failures
            raise GeminiError(redact(f"uploading the video (Files API) failed: {exc}"), "upload") from None

    uploaded, _ = await with_retries(call, policy=policy, what="uploading the video (Files API)",
                                     redact=redact, log=log)
    return uploaded


async def wait_active(client, uploaded, *, active_timeout_s: float, policy: RetryPolicy,
                      redact: Redactor, log: list):
    """Poll files.get until ACTIVE; FAILED or the timeout -> GeminiError."""
    deadline = time.monotonic() + active_timeout_s
    interval = 0.5  # short clips are usually ready within a second or two; back off to 5 s
    current = uploaded
    while True:
        state = _enum_name(current.state)
        if state == "ACTIVE":
            return current
        if state == "FAILED":
            detail = redact(getattr(current.error, "message", "") or "") if current.error else ""
            raise GeminiError(f"Gemini could not process the uploaded video {uploaded.name} "
                              f"(state FAILED{': ' + detail if detail else ''})", "upload")
        if time.monotonic() >= deadline:
            raise GeminiError(f"the uploaded video {uploaded.name} was still {state or 'not ready'} after "
                              f"{active_timeout_s:g} s; raise --file-active-timeout or try again later", "upload")
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(5.0, interval * 1.5)
        current, _ = await with_retries(lambda: client.aio.files.get(name=uploaded.name), policy=policy,
                                        what="checking the uploaded video", redact=redact, log=log)


async def delete_file(client, name: str, redact: Redactor) -> str | None:
    """Best effort; returns a warning instead of raising (the file expires in 48 h anyway)."""
    try:
        await client.aio.files.delete(name=name)
        return None
    except Exception as exc:  # a failed clean-up must not hide the real result
        return redact(f"could not delete uploaded file {name}: {type(exc).__name__}: {exc}")[:300]


def video_part(*, data: bytes | None = None, file=None, fps: float):
    from google.genai import types

    meta = types.VideoMetadata(fps=fps)
    if file is not None:
        return types.Part(file_data=types.FileData(file_uri=file.uri, mime_type="video/mp4"), video_metadata=meta)
    return types.Part(inline_data=types.Blob(data=data, mime_type="video/mp4"), video_metadata=meta)


# Gemini 2.5 takes a thinking budget in tokens, not a level (sending a level is a 400): the level's share.
BUDGET_OF_LEVEL = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}


def thinking_config(model: str, level: str | None) -> dict:
    """The thinking fields for ``model``: a level for Gemini 3 and later, a token budget for Gemini 2.5.

    ``None`` ("off") asks for as little thinking as the model allows: leaving the config out would mean
    the model's default, which for Gemini 3 is HIGH, the most expensive. Gemini 3 Pro knows only LOW and
    HIGH; 2.5 Flash turns thinking off with budget 0; 2.5 Pro cannot, and takes 128 at least.
    """
    name = model.lower().rsplit("/", 1)[-1]
    pro = "pro" in name
    if name.startswith("gemini-2.5") or name.startswith("gemini-2.0"):
        if level is None:
            return {"thinking_budget": 128 if pro else 0}
        return {"thinking_budget": max(128, BUDGET_OF_LEVEL[level]) if pro else BUDGET_OF_LEVEL[level]}
    if level is None:
        level = "low" if pro else "minimal"
    if pro and level in ("minimal", "medium"):
        level = "low" if level == "minimal" else "high"
    return {"thinking_level": level.upper()}


def generate_config(*, media_resolution: str, max_output_tokens: int, thinking_level: str | None,
                    model: str = "gemini-3-flash-preview"):
    from google.genai import types

    from contra_bc.annotate.prompt import response_schema

    return types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema=response_schema(),
        media_resolution=f"MEDIA_RESOLUTION_{media_resolution.upper()}",
        max_output_tokens=max_output_tokens,
        thinking_config=types.ThinkingConfig(**thinking_config(model, thinking_level)),
    )


# ---------------------------------------------------------------- answer checks
def _enum_name(value) -> str | None:
    if value is None:
        return None
    return getattr(value, "name", None) or str(value).split(".")[-1]


def check_response(response, *, max_output_tokens: int, redact: Redactor) -> tuple[str, dict, str | None]:
    """(text, usage, finish_reason); GeminiError for blocked or truncated answers."""
    feedback = getattr(response, "prompt_feedback", None)
    block = _enum_name(getattr(feedback, "block_reason", None)) if feedback else None
    if block and block != "BLOCKED_REASON_UNSPECIFIED":
        message = redact(getattr(feedback, "block_reason_message", "") or "")
        raise GeminiError(f"Gemini blocked the request (block_reason {block}{': ' + message if message else ''}); "
                          f"nothing was annotated for this clip", "blocked")
    candidates = response.candidates or []
    if not candidates:
        raise GeminiError("Gemini returned no answer (no candidates) and gave no reason", "empty")
    finish = _enum_name(candidates[0].finish_reason)
    if finish == "MAX_TOKENS":
        raise GeminiError(f"the answer was cut off at --max-output-tokens {max_output_tokens} "
                          f"(finish_reason MAX_TOKENS), so its JSON is incomplete; raise --max-output-tokens "
                          f"or use a shorter --window-seconds", "truncated")
    if finish in BLOCKING_FINISH:
        raise GeminiError(f"Gemini withheld the answer (finish_reason {finish})", "blocked")
    return response.text or "", usage_of(response), finish


def usage_of(response) -> dict:
    u = getattr(response, "usage_metadata", None)
    get = (lambda name: int(getattr(u, name, None) or 0)) if u else (lambda name: 0)
    return {"prompt_tokens": get("prompt_token_count"), "output_tokens": get("candidates_token_count"),
            "thoughts_tokens": get("thoughts_token_count"), "total_tokens": get("total_token_count")}
