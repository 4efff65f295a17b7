"""Movies as recordings and back: the part of ``.bk2`` / ``.fm2`` handling that needs the emulator.

The files themselves are read and written by ``contra_bc/formats/movies.py``. Here: which
registry game a movie was made on (by name and ROM hash), how movie frames map to recording
steps, and the export of a recording as a movie.

Frame mapping (the same as stable-retro's own ``.bk2`` recording and playback):
movie frame 0 is our reset frame (the one frame run with no buttons after the
start state is loaded, ``RESET_FRAMES``); movie frames 1.. are the frames of
step 0, 1, ... (``frames_per_step`` frames each). Input on frame 0 is dropped,
as stable-retro drops it, and noted in the recording's meta.

See docs/formats.md for the exact fields read and written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.movies import MOVIE_SUFFIXES, Movie, rom_md5, write_bk2, write_fm2


# ---------------------------------------------------------------- which game (ROM hashes)
def identify_game(movie: Movie):
    """The registry game the movie was made on, checked by name and ROM hash."""
    from contra_bc.emulator import expected_rom_sha1, list_games, missing_rom_error, rom_path

    candidates = [g for g in list_games() if g.platform == movie.platform]
    named = next((g for g in candidates if g.name == movie.game_name), None)
    if named is not None:
        if rom_path(named) is None:
            raise missing_rom_error(named)
        expected = expected_rom_sha1(named)
        if movie.rom_sha1 and expected != "unknown" and movie.rom_sha1 != expected.lower():
            raise _mismatch(movie, f"SHA-1 {movie.rom_sha1}", f"{named.name} expects SHA-1 {expected}")
        return named
    installed = [g for g in candidates if rom_path(g) is not None]
    for g in installed:
        if movie.rom_sha1 and expected_rom_sha1(g).lower() == movie.rom_sha1:
            return g
        if movie.rom_md5 and rom_md5(rom_path(g)) == movie.rom_md5:
            return g
    have = "; ".join(f"{g.name} (SHA-1 {expected_rom_sha1(g)}, MD5 {rom_md5(rom_path(g))})" for g in installed)
    wanted = (f"SHA-1 {movie.rom_sha1}" if movie.rom_sha1 else
              f"MD5 {movie.rom_md5}" if movie.rom_md5 else "no ROM hash in its header")
    raise _mismatch(movie, wanted, f"the installed {movie.platform} games are: {have or 'none'}")


def _mismatch(movie: Movie, wanted: str, have: str) -> UserError:
    name = movie.game_name or movie.rom_filename or "?"
    return UserError(f"{movie.path} was made on ROM {name!r} with {wanted}, but {have}. A movie only replays "
                     f"on the exact ROM it was made with: import that ROM with `python -m stable_retro.import "
                     f"DIR` and check it with `contra-bc games`.")


# ---------------------------------------------------------------- movie -> steps
@dataclass
class MoviePlan:
    """A movie cut into steps of ``frames_per_step`` frames."""

    actions: np.ndarray
    frames_total: int
    frames_used: int
    notes: list


def movie_steps(movie: Movie, frames_per_step: int) -> MoviePlan:
    """Step actions from movie frames 1..; frame 0 is the reset frame (see the module doc)."""
    notes = []
    if movie.frames[0]:
        from contra_bc.emulator import action_names

        notes.append(f"frame 0 pressed {'+'.join(action_names(movie.buttons, int(movie.frames[0])))}; the reset "
                     f"frame runs with no buttons (as in stable-retro's playback), so that input was dropped")
    if movie.commands[0]:
        notes.append("frame 0 carries a reset/power command; the movie starts at power-on anyway")
    later = np.flatnonzero(movie.commands[1:])
    if len(later):
        frame = int(later[0]) + 1
        raise UserError(f"{movie.path} resets or power-cycles the console at frame {frame}; a recording is a "
                        f"sequence of button presses from one start state and cannot hold a reset. Cut the "
                        f"movie before frame {frame} to import the part before it.")
    body = movie.frames[1:]
    n_steps = len(body) // frames_per_step
    used = n_steps * frames_per_step
    grouped = body[:used].reshape(n_steps, frames_per_step)
    uneven = np.flatnonzero((grouped != grouped[:, :1]).any(axis=1))
    if len(uneven):
        step = int(uneven[0])
        raise UserError(f"{movie.path} changes its input inside step {step} (movie frames "
                        f"{1 + step * frames_per_step}..{(step + 1) * frames_per_step}) so it cannot be cut into "
                        f"steps of {frames_per_step} frames without losing input. Use --frames-per-step 1.")
    if used < len(body):
        notes.append(f"the last {len(body) - used} frame(s) do not fill a step of {frames_per_step} and were left out")
    return MoviePlan(actions=grouped[:, 0].copy() if n_steps else np.zeros(0, np.int64),
                     frames_total=len(movie.frames), frames_used=1 + used, notes=notes)


# ---------------------------------------------------------------- recording -> movie
def export_recording(recording: Path, out: Path) -> dict:
    """Write a recording as .bk2 or .fm2 (by suffix); returns a summary."""
    from contra_bc.emulator import game_of_recording, rom_path
    from contra_bc.formats.recording import read_recording

    out = Path(out)
    kind = out.suffix.lower()
    if kind not in MOVIE_SUFFIXES:
        raise UserError(f"--to {out}: the movie file must end in .bk2 or .fm2.")
    if not atomic.new_output(out):
        raise UserError(f"{out} already exists; contra-bc never overwrites a file. Choose another --to.")
    if not out.parent.is_dir():
        raise UserError(f"The folder of {out} does not exist; create it first.")
    rec = read_recording(Path(recording))
    meta = rec.meta
    if not rec.complete:
        raise UserError(f"{recording} is incomplete ({meta.get('status')}); export only complete recordings.")
    game = game_of_recording(meta, rec.path)  # a movie replays only on the ROM its recording was made on
    fps = int(meta["frames_per_step"])
    reset_frames = int(meta.get("reset_frames", 1))
    if reset_frames != 1:
        raise UserError(f"{recording} has reset_frames {reset_frames}; movies map exactly one reset frame.")
    power_on = meta.get("start") == "power-on"
    frames = np.concatenate([np.zeros(1, np.int64), np.repeat(rec.actions, fps)])
    comments = [f"from contra-bc recording {rec.path.name} ({rec.n_steps} steps x {fps} frames, "
                f"source {meta.get('source')}: {meta.get('source_detail')})"]
    tmp = atomic.temp_path(out)
    if kind == ".bk2":
        write_bk2(tmp, game_name=game.name, platform=game.platform, rom_sha1=meta.get("rom_sha1") or "?",
                  buttons=meta["buttons"], frames=frames, start_state=rec.start_state(), power_on=power_on,
                  comments=comments)
    else:
        if game.platform != "Nes":
            raise UserError(f"{recording} is a {game.platform} recording; .fm2 is FCEUX's NES format. "
                            f"Export it as .bk2 instead.")
        if not power_on:
            raise UserError(f"{recording} starts from the state {meta.get('state')!r}, not from power-on, and "
                            f"FCEUX cannot load stable-retro states, so an .fm2 of it would not replay. Export it "
                            f"as .bk2 (stable-retro plays it with its start state), or export a power-on "
                            f"recording (one imported from a power-on movie).")
        rom = rom_path(game)
        if rom is None:
            from contra_bc.emulator import missing_rom_error

            raise missing_rom_error(game)
        write_fm2(tmp, rom_filename=game.name, rom_md5=rom_md5(rom), buttons=meta["buttons"], frames=frames,
                  comments=comments)
    try:
        atomic.commit_new(tmp, out)
    except FileExistsError:
        raise UserError(f"{out} appeared while exporting; contra-bc never overwrites a file. Choose another "
                        f"--to.") from None
    return {"recording": str(rec.path), "movie": str(out), "format": kind[1:], "steps": rec.n_steps,
            "frames": int(len(frames)), "start": "power-on" if power_on else "state", "game": game.name}
