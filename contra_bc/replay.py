"""`contra-bc replay-verify`: prove a recording reproduces its run bit for bit.

Replays every action from the start state and compares, after each step, the
screen hash and the RAM hash with the recorded ones. The first diverging step is
the first step whose frame OR RAM differs; an action changed at step k is
therefore reported at some step >= k (the first step whose effect shows in the
screen or RAM, often k itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from contra_bc import images
from contra_bc.emulator import game_of_recording
from contra_bc.episode import EpisodeRunner
from contra_bc.errors import UserError
from contra_bc.formats.recording import read_recording


@dataclass
class VerifyJob:
    path: str
    check_video: bool = False
    report_dir: str | None = None


UNVERIFIABLE = "unverifiable"  # imported frames and actions: no start state, nothing to replay from


def verify(job: VerifyJob) -> dict:
    """Replay one recording; returns a JSON-able result (status verified, diverged, unverifiable or error)."""
    try:
        return _verify(job)
    except UserError as exc:
        return {"path": str(job.path), "status": "error", "message": str(exc)}


def _verify(job: VerifyJob) -> dict:
    from contra_bc.parallel import shared_emulator

    started = time.perf_counter()
    path = Path(job.path)
    rec = read_recording(path)
    if not rec.replayable:  # says so plainly: this is no divergence, there is nothing to replay from
        return {"path": str(path), "game": rec.meta["game"], "steps": rec.n_steps, "complete": rec.complete,
                "frames_per_step": int(rec.meta["frames_per_step"]), "status": UNVERIFIABLE,
                "message": f"imported from {rec.meta.get('source_detail')}: it has no emulator start state, so it "
                           f"cannot be replayed and proved; its frames and actions are as the source gave them"}
    game = game_of_recording(rec.meta, path)
    start_state = rec.start_state()
    emu = shared_emulator(game)

    meta = rec.meta
    frames_per_step = int(meta["frames_per_step"])
    runner = EpisodeRunner(emu, frames_per_step=frames_per_step, until=meta.get("episode_until", "never"))
    runner.reset(start_state)
    result = {"path": str(path), "game": game.name, "steps": rec.n_steps, "complete": rec.complete,
              "frames_per_step": frames_per_step}
    if runner.first_frame_hash != meta["first_frame_hash"]:
        result.update(status="diverged", first_divergence={"step": -1, "frame": True, "ram": False,
                                                           "time_s": 0.0},
                      message="the first frame after reset differs (different emulator core or ROM?)")
        return result

    actions = rec.actions
    frame_hashes = rec.column("frame_hash")
    ram_hashes = rec.column("ram_hash")
    divergence = None
    for k in range(rec.n_steps):
        row = runner.step(int(actions[k]), "script")
        frame_ok = row["frame_hash"] == frame_hashes[k]
        ram_ok = row["ram_hash"] == ram_hashes[k]
        if not (frame_ok and ram_ok):
            divergence = {"step": k, "frame": not frame_ok, "ram": not ram_ok,
                          "time_s": round(rec.time_of_step(k), 3)}
            if job.report_dir:
                divergence["png"] = str(_divergence_png(rec, k, emu.screen(), Path(job.report_dir), frame_ok))
            break
    result["verified_steps"] = rec.n_steps if divergence is None else divergence["step"]
    result["outcome_recorded"] = meta.get("outcome")
    if divergence is None:
        replayed = runner.final_outcome()
        result["outcome_replayed"] = replayed
        if rec.complete and replayed != meta.get("outcome"):
            divergence = {"step": rec.n_steps, "frame": False, "ram": False, "outcome": True,
                          "time_s": round(rec.time_of_step(rec.n_steps), 3)}
    if divergence is not None:
        result.update(status="diverged", first_divergence=divergence)
    else:
        result["status"] = "verified"
    if job.check_video and result["status"] == "verified":
        result["video"] = check_video(rec)
        if not result["video"]["ok"]:
            result["status"] = "diverged"
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def check_video(rec) -> dict:
    """Decode the video and compare frame i with the hash of the screen step i's actor saw."""
    from contra_bc.emulator import digest64

    meta = rec.meta
    expected = [meta["first_frame_hash"]] + list(rec.column("frame_hash")[:-1])
    n = 0
    bad = None
    for n, frame in enumerate(rec.frames()):
        if digest64(frame) != expected[n]:
            bad = n
            break
    else:
        n = n + 1 if rec.n_steps else 0
    ok = bad is None and (n == rec.n_steps or not rec.complete)
    out = {"ok": ok, "frames_checked": n if bad is None else bad, "frames_expected": rec.n_steps}
    if bad is not None:
        out["first_bad_frame"] = bad
    elif n != rec.n_steps:
        out["missing_frames"] = rec.n_steps - n
    return out


def _divergence_png(rec, step: int, replayed, report_dir: Path, frame_ok: bool) -> Path:
    """Recorded | replayed | difference, for the screen after ``step``."""
    recorded = next(iter(rec.frames(step + 1, step + 2)), None)
    name = f"{rec.path.name}-divergence-step{step:06d}.png"
    label = "recorded (video frame %d)" % (step + 1) if recorded is not None else "recorded (not in video)"
    return images.side_by_side(
        [(label, recorded), (f"replayed after step {step}", replayed),
         ("difference", images.difference(recorded, replayed))],
        report_dir / name, title=f"{rec.path.name}: first divergence at step {step} "
                                 f"({rec.time_of_step(step):.2f} s)"
                                 + (": RAM differs, the screens are identical" if frame_ok else ""))



def verify_all(paths: list[Path], *, check_video: bool = False, report_dir: Path = Path("replay-report"),
               workers: int = 0, each=None) -> list[dict]:
    """`verify` every recording found under ``paths`` in worker processes; ``each(i, result)`` as each ends."""
    from contra_bc.formats.recording import find_recordings, games_of
    from contra_bc.parallel import run_with_progress

    recs = find_recordings(paths)
    jobs = [VerifyJob(str(r), check_video, str(report_dir)) for r in recs]
    return run_with_progress(verify, jobs, workers=workers, games=games_of(recs), label="replay-verify", each=each)


def table_rows(results: list[dict]) -> list[dict]:
    """The summary table of `verify_all`: one row per recording."""
    rows = []
    for r in results:
        d = r.get("first_divergence") or {}
        rows.append({"recording": r["path"], "status": r["status"], "steps": r.get("steps", "-"),
                     "complete": r.get("complete", "-"),
                     "first divergence": "-" if not d else f"step {d['step']} ({d['time_s']} s)",
                     "outcome": r.get("outcome_recorded", "-")})
    return rows
