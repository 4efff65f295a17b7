"""`contra-bc downsample-check`: what a 20 Hz max-pooling recorder does to per-frame play.

P2P's recorder logs inputs in 50 ms windows and counts a button pressed at any
time in a window as held for the whole window. This module applies the same
pooling to a per-frame recording, replays the pooled actions from the same
start state, and reports where the run parts from the original and whether it
still wins.

Pooling modes over each window of ``window`` steps (window = from_hz / to_hz):
  max       a button down in any step of the window is down for all of it (recap)
  first     the window's first action for all of it
  last      the window's last action for all of it
  majority  each button down for all of the window if down in more than half its steps
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contra_bc import images
from contra_bc.emulator import game_of_recording
from contra_bc.episode import EpisodeRunner
from contra_bc.errors import UserError
from contra_bc.formats.recording import read_recording

MODES = ("max", "first", "last", "majority")


def pool_actions(actions: np.ndarray, window: int, mode: str, n_buttons: int = 16) -> np.ndarray:
    """Pool per-step button bitmasks over consecutive windows; same length as the input."""
    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}.")
    actions = np.asarray(actions, dtype=np.int64)
    if window <= 1 or len(actions) == 0:
        return actions.copy()
    out = np.empty_like(actions)
    for start in range(0, len(actions), window):
        chunk = actions[start:start + window]
        if mode == "max":
            value = int(np.bitwise_or.reduce(chunk))
        elif mode == "first":
            value = int(chunk[0])
        elif mode == "last":
            value = int(chunk[-1])
        else:
            bits = (chunk[:, None] >> np.arange(n_buttons)) & 1
            value = int(((bits.sum(axis=0) * 2 > len(chunk)) << np.arange(n_buttons)).sum())
        out[start:start + window] = value
    return out


def window_for(rec_hz: float, from_hz: float | None, to_hz: float, window: int | None) -> int:
    """Steps per pooling window: explicit, or from_hz / to_hz (from_hz defaults to the recording's hz)."""
    if window is not None:
        if window < 1:
            raise UserError("--window must be at least 1 step.")
        return window
    src = rec_hz if from_hz is None else from_hz
    ratio = src / to_hz
    if to_hz <= 0 or ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise UserError(f"Cannot pool {src:g} Hz steps into {to_hz:g} Hz windows: the ratio {ratio:g} must be a "
                        f"whole number >= 1. Use --window N to give the window in steps.")
    return int(round(ratio))


@dataclass
class DownsampleJob:
    path: str
    mode: str = "max"
    from_hz: float | None = None
    to_hz: float = 20.0
    window: int | None = None
    report_dir: str | None = None


def check(job: DownsampleJob) -> dict:
    """Pool one recording's actions, replay them, compare; returns a JSON-able result."""
    try:
        return _check(job)
    except UserError as exc:
        return {"path": job.path, "status": "error", "message": str(exc)}


def _check(job: DownsampleJob) -> dict:
    from contra_bc.parallel import shared_emulator

    started = time.perf_counter()
    path = Path(job.path)
    rec = read_recording(path)
    meta = rec.meta
    if int(meta["frames_per_step"]) != 1:
        raise UserError(f"{path} was recorded with frames_per_step {meta['frames_per_step']}: each step already "
                        f"spans several frames, so there are no per-frame inputs to pool. downsample-check needs "
                        f"per-frame recordings (`record --frames-per-step 1`, e.g. --hz 60).")
    if not rec.complete:
        raise UserError(f"{path} is incomplete ({meta.get('status')}): its outcome is unknown, so whether pooling "
                        f"loses the run cannot be told. Check it with `contra-bc replay-verify` and re-record it.")
    window = window_for(float(meta["hz"]), job.from_hz, job.to_hz, job.window)
    game = game_of_recording(meta, path)
    emu = shared_emulator(game)

    original = rec.actions
    pooled = pool_actions(original, window, job.mode, len(meta["buttons"]))
    changed = float(np.mean(pooled != original)) if len(original) else 0.0
    frame_hashes, ram_hashes = rec.column("frame_hash"), rec.column("ram_hash")

    runner = EpisodeRunner(emu, frames_per_step=1, until=meta.get("episode_until", "never"))
    runner.reset(rec.start_state())
    first = first_visible = png = None
    for k in range(rec.n_steps):
        row = runner.step(int(pooled[k]), "script")
        if first is None and (row["frame_hash"] != frame_hashes[k] or row["ram_hash"] != ram_hashes[k]):
            first = k
        # the picture shows the first step whose screen differs (RAM often parts a few steps earlier)
        if first_visible is None and row["frame_hash"] != frame_hashes[k]:
            first_visible = k
            if job.report_dir:
                png = str(_divergence_png(rec, k, emu.screen(), Path(job.report_dir), job.mode, window, first))
        if runner.done:
            break
    pooled_outcome = runner.final_outcome()
    result = {
        "path": str(path),
        "status": "ok",
        "game": game.name,
        "steps": rec.n_steps,
        "hz": float(meta["hz"]),
        "window": window,
        "mode": job.mode,
        "original_outcome": meta["outcome"],
        "pooled_outcome": pooled_outcome,
        "pooled_steps": runner.steps,
        "actions_changed": round(changed, 4),
        "diverged": first is not None,
        "first_divergence_step": first,
        "first_divergence_s": None if first is None else round(first / float(meta["hz"]), 3),
        "first_visible_divergence_step": first_visible,
        "lost_win": meta["outcome"] == "win" and pooled_outcome != "win",
        "seconds": round(time.perf_counter() - started, 3),
    }
    if png is not None:
        result["png"] = png
    return result


def _divergence_png(rec, step: int, pooled_screen, report_dir: Path, mode: str, window: int,
                    first: int | None) -> Path:
    hz = float(rec.meta["hz"])
    original = next(iter(rec.frames(step + 1, step + 2)), None)
    name = f"{rec.path.name}-{mode}{window}-divergence-step{step:06d}.png"
    ram_note = f"; RAM parted first, at step {first} ({first / hz:.2f} s)" if first is not None and first < step else ""
    return images.side_by_side(
        [(f"original after step {step}", original), (f"pooled ({mode}, {window} steps)", pooled_screen),
         ("difference", images.difference(original, pooled_screen))],
        report_dir / name,
        title=f"{rec.path.name}: the pooled replay's screen first differs at step {step} ({step / hz:.2f} s){ram_note}")


def summarize(results: list[dict]) -> dict:
    ok = [r for r in results if r["status"] == "ok"]
    winners = [r for r in ok if r["original_outcome"] == "win"]
    lost = [r for r in winners if r["lost_win"]]
    diverged = [r for r in ok if r["diverged"]]
    firsts = [r["first_divergence_s"] for r in diverged]
    return {
        "recordings": len(results),
        "checked": len(ok),
        "errors": len(results) - len(ok),
        "winning_runs": len(winners),
        "winning_runs_lost": len(lost),
        "diverged": len(diverged),
        "median_first_divergence_s": float(np.median(firsts)) if firsts else None,
        "mean_actions_changed": float(np.mean([r["actions_changed"] for r in ok])) if ok else None,
        "headline": f"{len(lost)} of {len(winners)} winning runs fail when downsampled",
    }


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}.")


def check_all(paths: list[Path], *, mode: str = "max", from_hz: float | None = None, to_hz: float = 20.0,
              window: int | None = None, report_dir: Path = Path("downsample-report"), workers: int = 0,
              each=None) -> list[dict]:
    """`check` every recording found under ``paths`` in worker processes; ``each(i, result)`` as each ends."""
    from contra_bc.formats.recording import find_recordings, games_of
    from contra_bc.parallel import run_with_progress

    check_mode(mode)
    recs = find_recordings(paths)
    jobs = [DownsampleJob(str(r), mode, from_hz, to_hz, window, str(report_dir)) for r in recs]
    return run_with_progress(check, jobs, workers=workers, games=games_of(recs), label=f"downsample-check ({mode})",
                             each=each)


def table_rows(results: list[dict]) -> list[dict]:
    """The summary table of `check_all`: one row per recording that could be checked."""
    return [{"recording": Path(r["path"]).name, "window": r["window"], "original": r["original_outcome"],
             "pooled": r["pooled_outcome"], "actions changed": f"{r['actions_changed']:.1%}",
             "first divergence": "-" if r["first_divergence_step"] is None
             else f"step {r['first_divergence_step']} ({r['first_divergence_s']} s)"}
            for r in results if r["status"] == "ok"]
