"""`contra-bc annotate` against a local stand-in for Gemini (the only fake: 127.0.0.1 HTTP).

The real google-genai client talks to FakeGemini through CONTRA_BC_GEMINI_BASE_URL;
recordings are real (made by `contra-bc record` in a subprocess), clips are real MP4s.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from typer.testing import CliRunner

from conftest import ROOT, last_json, needs_outpost, run_cli
from contra_bc.cli import app
from contra_bc.annotate.table import parse_table
from contra_bc.formats.annotations import read_annotations, text_per_step
from contra_bc.formats.recording import read_recording

KEY = "test-key-7f3a9c-DO-NOT-LEAK"
MODEL = "gemini-3-flash-preview"
HZ = 20.0


def answer(*instructions, narrative="The player pressed on steadily."):
    return {"narrative": narrative,
            "instructions": [{"start": s, "end": e, "instruction": t} for s, e, t in instructions]}


GOOD = answer(("00:01", "00:03", "Destroy the armoured gunship near the top of the screen."),
              ("00:09", None, "Weave between the falling debris to reach the next wave."),
              ("00:30", "00:31", "An entry that starts after the clip ends."),
              ("00:05", "00:02", "An entry that ends before it starts."),
              ("00:06", "00:07", "   "))


class FakeGemini:
    """generateContent + the Files API (resumable upload, get, delete), scripted per request."""

    def __init__(self):
        self.script: list[tuple] = []       # behaviours for successive generateContent calls
        self.requests: list[dict] = []      # every request: method, path, headers, json, t
        self.files: dict[str, dict] = {}    # name -> {"state", "polls", "bytes", "deleted"}
        self.active_after_polls = 1         # None: never becomes ACTIVE
        self.batches: dict[str, dict] = {}  # name -> {"requests", "polls", "cancelled"}
        self.batch_done_after_polls = 1     # None: never finishes
        self.lose_batch_creates = 0         # creates that make the job but answer 503
        self.delay_s = 0.0                  # generateContent handling time
        self.hold_until_inflight = 0        # > 0: hold each generateContent until this many are in flight
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body, headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _record(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw and not self.path.startswith("/upload-session/") else None
                except ValueError:
                    body = None
                entry = {"method": method, "path": self.path, "headers": dict(self.headers), "json": body,
                         "raw": raw, "t": time.monotonic()}
                with fake.lock:
                    fake.requests.append(entry)
                return entry

            def do_POST(self):
                req = self._record("POST")
                if self.path.endswith(":generateContent"):
                    return fake.generate(self, req)
                if self.path.endswith(":batchGenerateContent"):
                    name = f"batches/b{len(fake.batches)}"
                    fake.batches[name] = {"requests": req["json"]["batch"]["inputConfig"]["requests"]["requests"],
                                          "polls": 0, "cancelled": False,
                                          "display_name": req["json"]["batch"].get("displayName")}
                    if fake.lose_batch_creates > 0:  # the job exists, but the answer never gets back
                        fake.lose_batch_creates -= 1
                        return self._send(503, {"error": {"code": 503, "message": "The service is unavailable.",
                                                          "status": "UNAVAILABLE"}})
                    return self._send(200, fake.batch_json(name))
                if self.path.endswith(":cancel"):
                    name = self.path.split("/v1beta/", 1)[-1].removesuffix(":cancel")
                    fake.batches[name]["cancelled"] = True
                    return self._send(200, {})
                if self.path.startswith("/upload/v1beta/files"):
                    name = f"files/clip{len(fake.files)}"
                    fake.files[name] = {"state": "PROCESSING", "polls": 0, "bytes": b"", "deleted": False,
                                        "declared": int(self.headers["X-Goog-Upload-Header-Content-Length"])}
                    port = self.server.server_address[1]
                    return self._send(200, {}, {"X-Goog-Upload-URL": f"http://127.0.0.1:{port}/upload-session/{name}",
                                                "X-Goog-Upload-Status": "active"})
                if self.path.startswith("/upload-session/"):
                    name = self.path[len("/upload-session/"):]
                    fake.files[name]["bytes"] += req["raw"]
                    final = "finalize" in self.headers.get("X-Goog-Upload-Command", "")
                    body = {"file": fake.file_json(name)} if final else {}
                    return self._send(200, body, {"X-Goog-Upload-Status": "final" if final else "active"})
                self._send(404, {"error": {"code": 404, "message": f"no route {self.path}", "status": "NOT_FOUND"}})

            def do_GET(self):
                self._record("GET")
                name = self.path.split("/v1beta/", 1)[-1].split("?")[0]
                if name == "batches":  # batches.list: a ListOperationsResponse
                    return self._send(200, {"operations": [fake.batch_json(n) for n in fake.batches]})
                if name in fake.batches:
                    fake.batches[name]["polls"] += 1
                    return self._send(200, fake.batch_json(name))
                if name in fake.files:
                    f = fake.files[name]
                    f["polls"] += 1
                    if fake.active_after_polls is not None and f["polls"] >= fake.active_after_polls:
                        f["state"] = "ACTIVE"
                    return self._send(200, fake.file_json(name))
                self._send(404, {"error": {"code": 404, "message": "no such file", "status": "NOT_FOUND"}})

            def do_DELETE(self):
                self._record("DELETE")
                name = self.path.split("/v1beta/", 1)[-1].split("?")[0]
                if name in fake.files:
                    fake.files[name]["deleted"] = True
                    return self._send(200, {})
                self._send(404, {"error": {"code": 404, "message": "no such file", "status": "NOT_FOUND"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def file_json(self, name):
        f = self.files[name]
        return {"name": name, "mimeType": "video/mp4", "sizeBytes": str(len(f["bytes"])), "state": f["state"],
                "uri": f"{self.url}/v1beta/{name}"}

    def next_behaviour(self):
        with self.lock:
            return self.script.pop(0) if self.script else ("good", GOOD)

    @staticmethod
    def reply(behaviour) -> tuple[int, dict]:
        kind, *args = behaviour
        usage = {"promptTokenCount": 1200, "candidatesTokenCount": 150, "thoughtsTokenCount": 50,
                 "totalTokenCount": 1400}

        def candidate(text, finish="STOP"):
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                    "finishReason": finish, "index": 0}],
                    "usageMetadata": usage, "modelVersion": MODEL}

        if kind == "good":
            return 200, candidate(json.dumps(args[0]))
        if kind == "text":
            return 200, candidate(args[0])
        if kind == "max_tokens":
            return 200, candidate('{"narrative": "The player ran and', "MAX_TOKENS")
        if kind == "blocked":
            return 200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}
        if kind == "status":
            code, status, message, extra = args
            return code, {"error": {"code": code, "message": message, "status": status, **extra}}
        raise AssertionError(kind)

    @staticmethod
    def thinking_error(model: str, config: dict) -> str | None:
        """What the API answers 400 for (public docs, "Gemini thinking"): thinkingLevel is for Gemini 3 models
        (Pro: LOW or HIGH), thinkingBudget for 2.5 ones; never both in one request."""
        thinking = (config or {}).get("thinkingConfig") or {}
        level, budget = thinking.get("thinkingLevel"), thinking.get("thinkingBudget")
        if level is not None and budget is not None:
            return "thinking_level and thinking_budget cannot both be set"
        if model.startswith("gemini-2.5") and level is not None:
            return "thinking_level is not supported by this model"
        if model.startswith("gemini-3") and "pro" in model and level not in (None, "LOW", "HIGH"):
            return f"thinking level {level} is not supported by this model"
        if model.startswith("gemini-2.5-pro") and budget is not None and budget < 128:
            return "this model only works in thinking mode: thinking budget must be at least 128"
        return None

    def generate(self, handler, req):
        with self.lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            time.sleep(self.delay_s)
            deadline = time.monotonic() + 120  # a client that never overlaps requests fails the test, not hangs it
            while self.hold_until_inflight and self.max_inflight < self.hold_until_inflight \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            model = req["path"].split("/models/", 1)[-1].split(":", 1)[0]
            error = self.thinking_error(model, (req["json"] or {}).get("generationConfig"))
            if error:
                return handler._send(400, {"error": {"code": 400, "message": error, "status": "INVALID_ARGUMENT"}})
            handler._send(*self.reply(self.next_behaviour()))
        finally:
            with self.lock:
                self.inflight -= 1

    def batch_json(self, name):
        job = self.batches[name]
        done = self.batch_done_after_polls is not None and job["polls"] >= self.batch_done_after_polls
        meta = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
                "name": name, "model": f"models/{MODEL}", "displayName": job.get("display_name"),
                "state": "BATCH_STATE_CANCELLED" if job["cancelled"] else
                         "BATCH_STATE_SUCCEEDED" if done else "BATCH_STATE_PENDING"}
        if done and not job["cancelled"]:
            if "answers" not in job:  # answer each request once, in a shuffled order (keys must match up)
                answers = []
                for request in job["requests"]:
                    code, body = self.reply(self.next_behaviour())
                    item = {"response": body} if code == 200 else {"error": body["error"]}
                    answers.append({**item, "metadata": request.get("metadata", {})})
                job["answers"] = answers[::-1]
            meta["output"] = {"inlinedResponses": {"inlinedResponses": job["answers"]}}
        return {"name": name, "metadata": meta, "done": done}

    def generate_requests(self):
        return [r for r in self.requests if r["path"].endswith(":generateContent")]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeGemini()
    yield server
    server.close()


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    """Two real 200-step (10 s) Airstriker recordings in one folder."""
    out = tmp_path_factory.mktemp("annotate") / "session"
    run_cli("record", "--input", "bot:airstriker", "--game", "Airstriker-Genesis-v0", "--max-steps", 200,
            "--episodes", 2, "--workers", 1, "--episode-until", "never", "--out", out, check=True)
    return out


def gemini_env(fake, **extra):
    env = {"CONTRA_BC_GEMINI_BASE_URL": fake.url, "GEMINI_API_KEY": KEY, "GOOGLE_API_KEY": "",
           "CONTRA_BC_GEMINI_MODEL": "", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    env.update(extra)
    return env


class Ran:
    def __init__(self, result):
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception


def cli(*args, env=None) -> Ran:
    """`contra-bc ARGS` in this process (annotate runs no emulator), with ENV on top of os.environ."""
    return Ran(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})}))


def annotate(fake, *args, env=None):
    proc = cli("annotate", *args, "--json", env=gemini_env(fake, **(env or {})))
    try:
        results = last_json(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}") from None
    return proc, results


def wire(obj: dict, camel: str):
    """A field as the SDK put it on the wire (nested objects keep their snake_case names)."""
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj[camel] if camel in obj else obj[snake]


def first(session_dir) -> Path:
    return session_dir / "episode-0000"


# ---------------------------------------------------------------- the good path
def test_good_answer_becomes_checked_entries(fake, session_dir, tmp_path):
    proc, results = annotate(fake, first(session_dir), "--out-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    [r] = results
    assert r["status"] == "annotated" and r["entries"] == 2 and r["rejected"] == 3 and r["windows"] == 1
    out = tmp_path / "episode-0000.annotations.json"
    assert r["out"] == str(out)
    doc = read_annotations(out)
    assert doc["source"] == "gemini" and doc["recording"]["steps"] == 200 and doc["recording"]["hz"] == HZ
    assert [(e["start_step"], e["end_step"]) for e in doc["entries"]] == [(20, 60), (180, 199)]
    assert doc["entries"][0]["text"].startswith("Destroy the armoured gunship")
    reasons = sorted(x["reason"] for x in doc["rejected"])
    assert reasons[0] == "empty instruction" and reasons[1] == "ends before it starts"
    assert "after the clip ends" in reasons[2]
    assert doc["narrative"] == "The player pressed on steadily."
    per_step = text_per_step(doc, 200)
    assert per_step[19] is None and per_step[20] == per_step[60] == doc["entries"][0]["text"] and per_step[61] is None
    prov = doc["provenance"]
    assert prov["model"] == MODEL and prov["prompt_version"] == "annotate-v1"
    assert prov["usage"] == {"prompt_tokens": 1200, "output_tokens": 150, "thoughts_tokens": 50, "total_tokens": 1400}
    assert prov["cost_usd"] == pytest.approx((1200 * 0.50 + 200 * 3.00) / 1e6)
    assert prov["windows"][0]["transport"] == "inline" and prov["windows"][0]["attempts"] == 1
    assert prov["settings"]["sample_fps"] == 5.0 and prov["settings"]["media_resolution"] == "medium"

    # What went over the wire: a real MP4 inline with a sampling rate, the prompt, a schema, the key header.
    [req] = fake.generate_requests()
    assert req["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert req["headers"].get("x-goog-api-key") == KEY
    video, text = req["json"]["contents"][0]["parts"]
    mp4 = base64.b64decode(video["inlineData"]["data"])
    assert wire(video["inlineData"], "mimeType") == "video/mp4" and mp4[4:8] == b"ftyp"
    assert video["videoMetadata"]["fps"] == 5.0
    assert "8 seconds" in text["text"] and "prompt-version" not in text["text"] and "00:10" in text["text"]
    config = req["json"]["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["mediaResolution"] == "MEDIA_RESOLUTION_MEDIUM"
    assert set(config["responseSchema"]["properties"]) == {"narrative", "instructions"}
    assert wire(config["thinkingConfig"], "thinkingLevel") == "LOW"


def test_windows_are_offset_and_keep_the_cooldown(fake, session_dir, tmp_path):
    fake.script = [("good", answer(("00:00", "00:02", "Clear the first wave of fighters."))),
                   ("good", answer(("00:01", "00:02", "Too soon after the previous instruction."),
                                   ("00:04", None, "Chase down the last bomber near the clouds.")))]
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path, "--window-seconds", 5)
    assert proc.returncode == 0 and r["windows"] == 2, proc.stderr
    doc = read_annotations(tmp_path / "episode-0000.annotations.json")
    # window 2 starts at step 100 (5 s): 00:04 there is 9 s = step 180
    assert [(e["start_step"], e["end_step"]) for e in doc["entries"]] == [(0, 40), (180, 199)]
    [cooled] = doc["rejected"]
    assert "cool-down" in cooled["reason"] and cooled["window"] == 1
    second = fake.generate_requests()[1]["json"]["contents"][0]["parts"][1]["text"]
    assert "Clear the first wave of fighters." in second and "part 2 of 2" in second
    assert [w["start_step"] for w in doc["provenance"]["windows"]] == [0, 100]


def test_resume_skips_matching_files_and_force_redoes(fake, session_dir, tmp_path):
    proc, results = annotate(fake, session_dir, "--out-dir", tmp_path)
    assert proc.returncode == 0 and [r["status"] for r in results] == ["annotated", "annotated"]
    assert len(fake.generate_requests()) == 2
    before = (tmp_path / "episode-0001.annotations.json").read_bytes()
    proc, results = annotate(fake, session_dir, "--out-dir", tmp_path)
    assert [r["status"] for r in results] == ["up to date", "up to date"]
    assert len(fake.generate_requests()) == 2 and (tmp_path / "episode-0001.annotations.json").read_bytes() == before
    # another model: the existing file is kept, not silently replaced
    proc, results = annotate(fake, session_dir, "--out-dir", tmp_path, "--model", "gemini-other")
    assert [r["status"] for r in results] == ["kept", "kept"] and "--force" in results[0]["message"]
    assert len(fake.generate_requests()) == 2
    proc, results = annotate(fake, session_dir, "--out-dir", tmp_path, "--model", "gemini-other", "--force")
    assert [r["status"] for r in results] == ["annotated", "annotated"] and len(fake.generate_requests()) == 4
    assert read_annotations(tmp_path / "episode-0000.annotations.json")["provenance"]["model"] == "gemini-other"
    assert fake.generate_requests()[-1]["path"] == "/v1beta/models/gemini-other:generateContent"


def test_concurrency_limit(fake, session_dir, tmp_path):
    """Never more requests in flight than --concurrency, and that many do overlap. The second half does
    not depend on timing: the fake holds each request until two are in flight (or 120 s pass, which
    only a client that serialises them would take)."""
    fake.delay_s = 0.5
    annotate(fake, session_dir, "--out-dir", tmp_path / "a", "--concurrency", 1)
    assert fake.max_inflight == 1
    fake.delay_s, fake.max_inflight, fake.hold_until_inflight = 0.0, 0, 2
    annotate(fake, session_dir, "--out-dir", tmp_path / "b", "--concurrency", 2)
    assert fake.max_inflight == 2


# ---------------------------------------------------------------- failures, each with its outcome
def test_429_waits_the_servers_retry_delay_then_succeeds(fake, session_dir, tmp_path):
    retry_info = {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.6s"}]}
    fake.script = [("status", 429, "RESOURCE_EXHAUSTED", "Quota exceeded.", retry_info), ("good", GOOD)]
    # the backoff base is huge, so finishing quickly proves the server's delay was used
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path, "--retry-base", 60)
    assert proc.returncode == 0 and r["status"] == "annotated", proc.stderr
    first_try, second_try = fake.generate_requests()
    assert 0.6 <= second_try["t"] - first_try["t"] < 5
    window = read_annotations(tmp_path / "episode-0000.annotations.json")["provenance"]["windows"][0]
    assert window["attempts"] == 2
    assert window["retries"][0]["wait_s"] == 0.6 and window["retries"][0]["server_delay"] is True
    assert "429" in window["retries"][0]["error"]


def test_500s_back_off_then_give_up_with_a_clear_error(fake, session_dir, tmp_path):
    err500 = ("status", 500, "INTERNAL", "Internal error.", {})
    fake.script = [err500, err500, ("good", GOOD)]
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path / "a", "--retry-base", 0.05)
    assert r["status"] == "annotated" and len(fake.generate_requests()) == 3
    fake.script = [err500] * 3
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path / "b", "--retry-base", 0.05, "--retries", 2)
    assert proc.returncode == 1 and r["status"] == "error"
    assert "after 3 attempt(s)" in r["message"] and "HTTP 500" in r["message"]
    assert not (tmp_path / "b" / "episode-0000.annotations.json").exists()


@pytest.mark.parametrize("behaviour, expected", [
    (("good", answer(("00:30", "00:31", "Starts after the clip."), ("soon", None, "No time at all."))),
     "every one of its 2 instruction(s) was rejected"),
    (("text", '{"narrative": "x", "instructions": [{"start": "00:01",'), "not valid JSON"),
    (("text", '["a list, not an object"]'), "\"instructions\" list"),
    (("max_tokens",), "MAX_TOKENS"),
    (("blocked",), "block_reason SAFETY"),
])
def test_unusable_answers_fail_the_recording_clearly(fake, session_dir, tmp_path, behaviour, expected):
    fake.script = [behaviour]
    proc = cli("annotate", first(session_dir), "--out-dir", tmp_path, env=gemini_env(fake))
    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert expected in text and "window 1/1" in text
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_files_api_path_uploads_polls_and_deletes(fake, session_dir, tmp_path):
    fake.active_after_polls = 2
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path, "--inline-max-mb", 0)
    assert proc.returncode == 0 and r["status"] == "annotated", proc.stderr
    [(name, f)] = fake.files.items()
    assert f["bytes"][4:8] == b"ftyp" and len(f["bytes"]) == f["declared"] and f["deleted"]
    [req] = fake.generate_requests()
    video = req["json"]["contents"][0]["parts"][0]
    assert wire(video["fileData"], "fileUri") == f"{fake.url}/v1beta/{name}" and video["videoMetadata"]["fps"] == 5.0
    gets = [x for x in fake.requests if x["method"] == "GET"]
    assert len(gets) == 2 and gets[-1]["t"] < req["t"]  # polled until ACTIVE, then asked
    doc = read_annotations(tmp_path / "episode-0000.annotations.json")
    assert doc["provenance"]["windows"][0]["transport"] == "files"


def test_upload_that_never_becomes_active_times_out_and_is_deleted(fake, session_dir, tmp_path):
    fake.active_after_polls = None
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path, "--inline-max-mb", 0,
                         "--file-active-timeout", 1)
    assert proc.returncode == 1 and r["status"] == "error"
    assert "still PROCESSING after 1 s" in r["message"]
    [f] = fake.files.values()
    assert f["deleted"] and not fake.generate_requests()


def test_network_errors_are_retried_then_reported(session_dir, tmp_path):
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"CONTRA_BC_GEMINI_BASE_URL": f"http://127.0.0.1:{port}", "GEMINI_API_KEY": KEY, "GOOGLE_API_KEY": ""}
    proc = cli("annotate", first(session_dir), "--out-dir", tmp_path, "--retries", 2, "--retry-base", 0.01,
               "--json", env=env)
    [r] = last_json(proc.stdout)
    assert proc.returncode == 1 and r["status"] == "error"
    assert "after 3 attempt(s)" in r["message"] and "network error" in r["message"]


def test_retry_after_header_and_retry_info():
    import httpx2
    from google.genai import errors

    from contra_bc.annotate.gemini import server_retry_delay

    info = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}
    assert server_retry_delay(errors.APIError(429, info)) == 7.0
    plain = {"error": {"code": 503, "status": "UNAVAILABLE", "message": "busy"}}
    assert server_retry_delay(errors.APIError(503, plain, httpx2.Response(503, headers={"Retry-After": "3"}))) == 3.0
    assert server_retry_delay(errors.APIError(503, plain, httpx2.Response(503))) is None


def test_key_comes_from_env_and_never_leaks(fake, session_dir, tmp_path):
    fake.script = [("status", 400, "INVALID_ARGUMENT", f"API key not valid: {KEY}", {})]
    proc = run_cli("annotate", first(session_dir), "--out-dir", tmp_path, env=gemini_env(fake), timeout=120)
    assert proc.returncode == 1 and "API key not valid" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr and "<redacted key>" in proc.stderr
    # a good run: the key is sent as a header but written nowhere
    annotate(fake, first(session_dir), "--out-dir", tmp_path)
    written = list(tmp_path.rglob("*"))
    assert written and all(KEY.encode() not in p.read_bytes() for p in written if p.is_file())
    assert all(KEY not in r["path"] for r in fake.requests)
    # GOOGLE_API_KEY wins over GEMINI_API_KEY, like the SDK
    annotate(fake, first(session_dir), "--out-dir", tmp_path / "g", env={"GOOGLE_API_KEY": "google-key"})
    assert fake.generate_requests()[-1]["headers"]["x-goog-api-key"] == "google-key"


def test_missing_key_is_a_user_error(fake, session_dir, tmp_path):
    proc = run_cli("annotate", first(session_dir), "--out-dir", tmp_path,
                   env=gemini_env(fake, GEMINI_API_KEY="", GOOGLE_API_KEY=""))
    assert proc.returncode == 2 and "GEMINI_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert not fake.requests


def test_bad_options_are_user_errors(fake, session_dir, tmp_path):
    for args, text in ((["--media-resolution", "ultra"], "--media-resolution"),
                       (["--prompt", tmp_path / "nope.md"], "does not exist")):
        proc = cli("annotate", first(session_dir), *args, env=gemini_env(fake))
        assert proc.returncode == 2 and text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not fake.requests


def test_custom_prompt_file_sets_the_version(fake, session_dir, tmp_path):
    prompt = tmp_path / "mine.md"
    prompt.write_text("prompt-version: mine-3\nAnnotate this clip as JSON.\n")
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path / "out", "--prompt", prompt)
    assert r["status"] == "annotated"
    doc = read_annotations(tmp_path / "out" / "episode-0000.annotations.json")
    assert doc["provenance"]["prompt_version"] == "mine-3"
    assert "Annotate this clip as JSON." in fake.generate_requests()[0]["json"]["contents"][0]["parts"][1]["text"]


# ---------------------------------------------------------------- Batch API
def test_batch_mode_sends_every_window_in_one_job(fake, session_dir, tmp_path):
    fake.batch_done_after_polls = 2
    fake.script = [("good", answer(("00:00", "00:02", "Clear the first wave of fighters."))),
                   ("good", answer(("00:04", None, "Chase down the last bomber near the clouds."))),
                   ("good", answer(("00:01", "00:03", "Sink the lead gunship first."))),
                   ("status", 400, "INVALID_ARGUMENT", "Request payload is invalid.", {})]
    proc, results = annotate(fake, session_dir, "--out-dir", tmp_path, "--batch", "--window-seconds", 5)
    assert [r["status"] for r in results] == ["annotated", "error"] and proc.returncode == 1
    assert "window 2/2" in results[1]["message"] and "Request payload is invalid." in results[1]["message"]
    assert not fake.generate_requests()
    [(name, job)] = fake.batches.items()
    assert len(job["requests"]) == 4 and job["polls"] == 2 and not job["cancelled"]
    request = job["requests"][0]["request"]
    assert request["model"] == f"models/{MODEL}" and "responseSchema" in request["generationConfig"]
    assert request["contents"][0]["parts"][0]["videoMetadata"]["fps"] == 5.0
    doc = read_annotations(tmp_path / "episode-0000.annotations.json")
    # answers came back in reverse order: matched by key, window 2's entry is at 5 s + 4 s
    assert [(e["start_step"], e["end_step"]) for e in doc["entries"]] == [(0, 40), (180, 199)]
    prov = doc["provenance"]
    assert prov["mode"] == "batch" and prov["batch_jobs"] == [name]
    assert prov["cost_usd"] == pytest.approx(2 * 0.5 * (1200 * 0.50 + 200 * 3.00) / 1e6)
    assert not (tmp_path / "episode-0001.annotations.json").exists()


def test_a_batch_create_whose_answer_was_lost_is_found_not_made_twice(fake, session_dir, tmp_path):
    fake.lose_batch_creates = 1
    proc, results = annotate(fake, first(session_dir), "--out-dir", tmp_path, "--batch", "--retry-base", "0.01")
    assert proc.returncode == 0 and [r["status"] for r in results] == ["annotated"], proc.stdout + proc.stderr
    assert len(fake.batches) == 1  # one job, one bill
    assert any(r["method"] == "GET" and r["path"].split("?")[0].endswith("/batches") for r in fake.requests)


def test_batch_that_never_finishes_is_cancelled(fake, session_dir, tmp_path):
    fake.batch_done_after_polls = None
    proc, results = annotate(fake, first(session_dir), "--out-dir", tmp_path, "--batch", "--batch-timeout", 1)
    assert proc.returncode == 1 and results[0]["status"] == "error"
    assert "still JOB_STATE_PENDING after --batch-timeout 1 s" in results[0]["message"]
    [job] = fake.batches.values()
    assert job["cancelled"] and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- hand-written tables (no network)
TABLE = """Notes above the table are ignored.

| Start | End | Text |
|---|---|---|
| 00:01 | 00:04 | Shoot down the lead fighter \\| fast. |
| 00:06 |  | Hold the centre lane until the wave passes. |
| 00:30 | 00:35 | After the video ends. |
"""


def test_table_import_writes_entries_without_network(session_dir, tmp_path):
    table = tmp_path / "t.md"
    table.write_text(TABLE)
    env = {"GEMINI_API_KEY": "", "GOOGLE_API_KEY": "", "CONTRA_BC_GEMINI_BASE_URL": "http://127.0.0.1:9"}
    proc = cli("annotate", first(session_dir), "--from-table", table, "--out-dir", tmp_path / "out", "--json",
                   env=env)
    assert proc.returncode == 0, proc.stderr
    [r] = last_json(proc.stdout)
    assert r["status"] == "annotated" and r["entries"] == 2 and r["rejected"] == 1
    doc = read_annotations(tmp_path / "out" / "episode-0000.annotations.json")
    assert doc["source"] == "table" and doc["provenance"]["rows"] == 3
    assert [(e["start_step"], e["end_step"], e["text"]) for e in doc["entries"]] == [
        (20, 80, "Shoot down the lead fighter | fast."), (120, 199, "Hold the centre lane until the wave passes.")]
    assert "after the video ends" in doc["rejected"][0]["reason"] and doc["rejected"][0]["entry"]["line"] == 7
    # same table again: up to date; a changed table needs --force
    again = cli("annotate", first(session_dir), "--from-table", table, "--out-dir", tmp_path / "out", "--json",
                    env=env)
    assert last_json(again.stdout)[0]["status"] == "up to date"
    table.write_text(TABLE.replace("00:06", "00:07"))
    changed = cli("annotate", first(session_dir), "--from-table", table, "--out-dir", tmp_path / "out", env=env)
    assert changed.returncode == 2 and "--force" in changed.stderr
    forced = cli("annotate", first(session_dir), "--from-table", table, "--out-dir", tmp_path / "out",
                     "--force", env=env)
    assert forced.returncode == 0
    assert read_annotations(tmp_path / "out" / "episode-0000.annotations.json")["entries"][1]["start_step"] == 140


def test_bad_tables_are_user_errors(session_dir, tmp_path):
    cases = {"| Start | End | Text |\n|---|---|---|\n| 0:1x | 00:04 | Jump. |\n": "line 3",
             "| Start | End | Text |\n|---|---|---|\n| 00:01 | 00:04 |\n": "expected 3 cells",
             "no table here\n": "| Start | End | Text |",
             "| Start | End | Text |\n|---|---|---|\n| 00:01 | 00:04 |  |\n": "Text cell is empty"}
    for i, (text, message) in enumerate(cases.items()):
        table = tmp_path / f"bad{i}.md"
        table.write_text(text)
        proc = cli("annotate", first(session_dir), "--from-table", table, "--out-dir", tmp_path / "out")
        assert proc.returncode == 2 and message in " ".join(proc.stderr.split()), proc.stderr
        assert "Traceback" not in proc.stderr
    proc = cli("annotate", session_dir, "--from-table", tmp_path / "bad0.md")
    assert proc.returncode == 2 and "line 3" in " ".join(proc.stderr.split())


def test_one_table_annotates_every_recording_in_one_call(session_dir, tmp_path):
    table = tmp_path / "good.md"
    table.write_text("| Start | End | Text |\n|---|---|---|\n| 00:01 | 00:04 | Fly up to the top lane. |\n")
    proc = cli("annotate", session_dir, "--from-table", table, "--out-dir", tmp_path / "all", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()[:-1]]
    assert [e["event"] for e in events] == ["recording", "recording"]
    assert [r["status"] for r in last_json(proc.stdout)] == ["annotated", "annotated"]
    for rec in sorted(p for p in session_dir.iterdir() if p.is_dir()):
        doc = read_annotations(tmp_path / "all" / f"{rec.name}.annotations.json")
        assert doc["recording"]["steps"] == read_recording(rec).n_steps and len(doc["entries"]) == 1
    again = cli("annotate", session_dir, "--from-table", table, "--out-dir", tmp_path / "all", "--json")
    assert [r["status"] for r in last_json(again.stdout)] == ["up to date", "up to date"]
    clash = tmp_path / "twice"  # two recordings of the same name would share one file in --out-dir
    for name in ("a", "b"):
        (clash / name).mkdir(parents=True)
        (clash / name / "episode-0000").symlink_to(sorted(session_dir.iterdir())[0], target_is_directory=True)
    proc = cli("annotate", clash / "a", clash / "b", "--from-table", table, "--out-dir", tmp_path / "clash")
    assert proc.returncode == 2 and "episode-0000" in proc.stderr and not (tmp_path / "clash").exists()


def test_example_table_parses():
    rows = parse_table((ROOT / "examples" / "outpost-level1-annotations.md").read_text(), "example")
    assert 5 <= len(rows) <= 12
    assert all(r["end"] is None or r["end"] >= r["start"] for r in rows)
    assert all(b["start"] - a["start"] >= 3 for a, b in zip(rows, rows[1:]))
    assert rows[-1]["start"] <= 50 and rows[-1]["end"] is None
    lowered = " ".join(r["text"].lower() for r in rows)
    assert " left" not in lowered and " right" not in lowered


@needs_outpost
def test_example_table_matches_an_outpost_expert_run(tmp_path):
    rec_path = tmp_path / "expert"
    run_cli("record", "--input", "bot:expert", "--game", "Outpost-Nes", "--max-steps", 2000, "--seed", 0,
            "--out", rec_path, check=True)
    proc = cli("annotate", rec_path, "--from-table", ROOT / "examples" / "outpost-level1-annotations.md", "--json")
    [r] = last_json(proc.stdout)
    assert r["status"] == "annotated" and r["rejected"] == 0 and r["entries"] == 9
    doc = read_annotations(rec_path / "annotations.json")
    rec = read_recording(rec_path)
    screen = rec.column("var_screen")
    expected = {"soldiers marching": 0, "first pit": 0, "turret": 1, "mine with a short hop": 1,
                "pair of soldiers": 2, "both pits": 2, "lone soldier": 3, "both laser bars": 3, "gate": 4}
    for e in doc["entries"]:
        [want] = [s for k, s in expected.items() if k in e["text"]]
        assert screen[(e["start_step"] + e["end_step"]) // 2] == want, e
    assert doc["entries"][-1]["end_step"] == rec.n_steps - 1 and rec.meta["outcome"] == "win"


@pytest.mark.parametrize("model,level,expected", [
    ("gemini-3-flash-preview", "off", {"thinkingLevel": "MINIMAL"}),
    ("gemini-3-pro-preview", "off", {"thinkingLevel": "LOW"}),
    ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}),
    ("gemini-2.5-flash", "off", {"thinkingBudget": 0}),
    ("gemini-2.5-pro", "off", {"thinkingBudget": 128}),
])
def test_thinking_is_configured_for_the_models_family(fake, session_dir, tmp_path, model, level, expected):
    """`off` never leaves the config out (Gemini 3 would then think at HIGH); 2.5 models take a budget."""
    proc, results = annotate(fake, first(session_dir), "--out-dir", tmp_path / "ann", "--model", model,
                             "--thinking-level", level)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [req] = fake.generate_requests()
    thinking = req["json"]["generationConfig"]["thinkingConfig"]
    assert {wire(thinking, k): None for k in expected} and {k: wire(thinking, k) for k in expected} == expected
    assert len([v for v in thinking.values() if v is not None]) == 1


def test_times_given_as_plain_numbers_are_read_as_seconds(fake, session_dir, tmp_path):
    fake.script = [("good", answer((1, 3, "Destroy the armoured gunship near the top of the screen."),
                                   ("9.5", None, "Weave between the falling debris to reach the next wave.")))]
    proc, [r] = annotate(fake, first(session_dir), "--out-dir", tmp_path)
    assert proc.returncode == 0 and r["status"] == "annotated" and r["entries"] == 2, r
    doc = read_annotations(tmp_path / "episode-0000.annotations.json")
    assert [e["start_s"] for e in doc["entries"]] == [1.0, 9.5]
