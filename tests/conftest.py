"""Shared test helpers: run the real CLI in a subprocess (one emulator per process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPOST_ROM = ROOT / "contra_bc" / "games" / "integrations" / "Outpost-Nes" / "rom.nes"
needs_outpost = pytest.mark.skipif(not OUTPOST_ROM.exists(), reason="Outpost-Nes cartridge not built yet")


def cli_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("COLUMNS", "200")
    env.update(extra or {})
    return env


def run_cli(*args, check: bool = False, timeout: float = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """``contra-bc ARGS`` in a fresh Python process; returns the completed process."""
    proc = subprocess.run([sys.executable, "-m", "contra_bc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(env), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"contra-bc {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def last_json(text: str):
    """The result of a --json run: the last line of its JSON Lines."""
    lines = text.strip().splitlines()
    if not lines:
        raise json.JSONDecodeError("no output", text, 0)
    return json.loads(lines[-1])


def run_json(*args, **kw):
    proc = run_cli(*args, "--json", **kw)
    try:
        return proc.returncode, last_json(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"no JSON on stdout (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc


def ctrl_c_when(ready, *args, wait: float = 120) -> tuple[int, str]:
    """Start ``contra-bc ARGS``, press Ctrl-C (SIGINT) once ``ready()`` is true, and return its exit code
    and stderr. Fails if it ends or takes over WAIT seconds before it is ready."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "contra_bc", *map(str, args)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + wait
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=wait)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stderr


@pytest.fixture(scope="session")
def airstriker_recording(tmp_path_factory) -> Path:
    """A 300-step scripted Airstriker recording, made once per test session."""
    out = tmp_path_factory.mktemp("rec") / "airstriker"
    run_cli("record", "--input", "bot:airstriker", "--game", "Airstriker-Genesis-v0", "--max-steps", 300,
            "--episode-until", "never", "--out", out, check=True)
    return out


@pytest.fixture(scope="module")
def display():
    """A private Xvfb server on a free display number (Xvfb picks it with -displayfd)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("needs the Xvfb binary")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp",
                             "-noreset"],  # no reset (and refused connections) when the last client leaves
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()
    if not number:
        proc.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


def signal_frozen(proc, sig) -> None:
    """Freeze PROC, queue SIG, thaw it: the signal is pending before PROC can run one more
    instruction, and lands wherever it happens to be (no race with how fast it works)."""
    import signal

    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
