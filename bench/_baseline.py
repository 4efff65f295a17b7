"""Shared by the emulator benches: a scripted recording and the bare-loop baseline on it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def emulator_bench_args() -> argparse.Namespace:
    """The options every emulator bench takes: what to record, how long, and --json."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--game", default="Airstriker-Genesis-v0")
    ap.add_argument("--input", default="bot:random")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def record_and_time_bare_loop(game: str, source: str, steps: int, path: Path, hz: float = 20.0):
    """Record ``steps`` steps of ``source`` into ``path``; return (recording, emulator, record_s, bare_s).

    The bare loop replays the same actions doing only what any replay must: set the
    buttons, step, read the screen and RAM, hash both.
    """
    from contra_bc.emulator import digest64
    from contra_bc.formats.recording import read_recording
    from contra_bc.parallel import shared_emulator
    from contra_bc.record.scripted import RecordJob, record_job

    t0 = time.perf_counter()
    record_job(RecordJob(game, None, source, str(path), hz=hz, max_steps=steps, until="never"))
    record_s = time.perf_counter() - t0
    rec = read_recording(path)
    emu = shared_emulator(game)
    emu.reset(rec.start_state())
    t0 = time.perf_counter()
    for a in rec.actions.tolist():
        emu.step(a)
        digest64(emu.screen())
        digest64(emu.ram())
    return rec, emu, record_s, time.perf_counter() - t0
