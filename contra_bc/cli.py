"""The `contra-bc` command line. Thin: options -> a library call -> rich output.

Exit codes shared by every subcommand:
  0 success, 1 a check failed (divergence, lost run), 2 bad input (a clear message),
  3 not built yet, 130 interrupted.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

from contra_bc import __version__
from contra_bc.errors import UserError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Behaviour cloning toolkit for NES Contra: exact 20 Hz recording, replay verification, "
         "annotation, datasets, a Pixels2Play-style policy.\n\n"
         "Exit codes: 0 ok, 1 a check failed, 2 bad input, 3 not built yet, 130 interrupted.",
)


def handle_errors(fn):
    """UserError -> one paragraph on stderr and exit 2; Ctrl-C -> exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from contra_bc.ui import err

        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130)

    return wrapper


def not_built(name: str, issue: str):
    from contra_bc.ui import err

    err.print(f"`contra-bc {name}` is not built yet ({issue}); it does nothing rather than fake a result.")
    raise typer.Exit(3)


def _version(value: bool):
    if value:
        print(f"contra-bc {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    pass


# ---------------------------------------------------------------- games
@app.command()
@handle_errors
def games(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the games: ROM present?, start states, buttons.

    Example: `contra-bc games`

    Exit codes: 0.
    """
    from contra_bc.emulator import expected_rom_sha1, list_games, list_states, rom_path
    from contra_bc.ui import out, print_json

    rows = []
    for g in list_games():
        rom = rom_path(g)
        rows.append({"game": g.name, "title": g.title, "platform": g.platform, "integration": g.integration,
                     "rom_present": rom is not None, "rom_sha1": expected_rom_sha1(g),
                     "states": list_states(g), "buttons": g.button_names,
                     "import": None if rom else (g.import_hint or "python -m stable_retro.import DIR")})
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    t = Table(title="contra-bc games")
    for col in ("game", "ROM", "states", "buttons"):
        t.add_column(col)
    for r in rows:
        rom = "[green]present[/]" if r["rom_present"] else f"[red]missing[/] (sha1 {r['rom_sha1']}; `{r['import']}`)"
        t.add_row(r["game"], rom, ", ".join(r["states"]) or "-", " ".join(r["buttons"]))
    out.print(t)


# ---------------------------------------------------------------- record
@app.command()
@handle_errors
def record(
    input: Optional[str] = typer.Option(None, "--input", "-i", help="bot:NAME, an action file (.csv/.parquet: "
                                        "column `action` bitmask or `buttons` like RIGHT+A), or a movie (.bk2/.fm2). "
                                        "Without it, opens the interactive window for a human."),
    game: str = typer.Option("Outpost-Nes", "--game", "-g", help="Game from `contra-bc games`."),
    state: Optional[str] = typer.Option(None, "--state", "-s", help="Start state (default: the game's first)."),
    out: Path = typer.Option(..., "--out", "-o", help="New recording directory; a session folder of "
                             "OUT/episode-NNNN with --episodes or the window."),
    hz: float = typer.Option(20.0, "--hz", help="Steps per second the recording represents (and the pace of the window)."),
    frames_per_step: int = typer.Option(1, "--frames-per-step", min=1, help="Emulator frames per step."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop an episode after this many "
                                            "steps (default: 6000 scripted, no limit in the window)."),
    seed: int = typer.Option(0, "--seed", help="Seed for bots (episode i uses seed+i)."),
    episodes: Optional[int] = typer.Option(None, "--episodes", min=1, help="Record this many episodes into "
                                           "OUT/episode-NNNN (default: 1 scripted; in the window, until you stop)."),
    until: str = typer.Option("level", "--episode-until", help="End an episode at: life, level, game-over, never."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace scripted input at --hz (default: as fast as possible)."),
    workers: int = typer.Option(0, "--workers", help="Parallel processes for --episodes (0: one per core)."),
    scale: int = typer.Option(3, "--scale", min=1, max=8, help="Window: integer zoom, nearest-neighbour pixels."),
    keymap: Optional[Path] = typer.Option(None, "--keymap", help="Window: TOML file overriding the key map "
                                          "([keys] and [gamepad] tables; see below)."),
    countdown: float = typer.Option(3.0, "--countdown", min=0, help="Window: seconds of countdown before each "
                                    "episode and after a pause."),
    resume: bool = typer.Option(False, "--resume", help="Window: continue the session in OUT; new episodes are "
                                "numbered after the ones there, which are never touched."),
    json_out: bool = typer.Option(False, "--json", help="Print the recordings' meta as JSON."),
):
    """Record episodes: scripted input headless, or a human in a 20 Hz window.

    Examples:

    `contra-bc record --input bot:expert --game Outpost-Nes --out runs/expert --episodes 10`

    `contra-bc record --input actions.csv --game Airstriker-Genesis-v0 --out runs/a1`

    `contra-bc record --game Outpost-Nes --out sessions/alice --episode-until life` (a human plays in a window)

    **The window** runs one emulator step per tick (`--hz 20`: every 50 ms; `--hz 60` is normal speed;
    `--hz 20 --frames-per-step 3` also normal speed with a decision every 3 frames). The buttons held at
    the tick, plus any pressed and released since the previous tick, are that step's action. Under no
    display, run it as `xvfb-run -a contra-bc record ...`.

    **Keys** (RetroArch-like): arrows = d-pad, Z or J = B, X or K = A, Enter = START,
    Right Shift = SELECT (Genesis also: C or L = C, A/S/D = X/Y/Z, Right Shift = MODE).
    P = pause/resume, N = end the episode and keep it, Backspace = discard it and record it again,
    Esc (or closing the window) = keep the episode and stop. Gamepad: hat or left stick = d-pad,
    buttons 0/2 = B, 1/3 = A, 6 = SELECT, 7 = START. A `--keymap` TOML file replaces entries:
    `[keys]` `A = ["x", "space"]`, `pause = ["f1"]`; `[gamepad]` `A = [1]`, `deadzone = 0.5`.

    Exit codes: 0 recorded, 2 bad input (including no display for the window), 130 interrupted
    (the flushed prefix is kept, marked incomplete).
    """
    from contra_bc.episode import UNTIL

    if until not in UNTIL:
        raise UserError(f"--episode-until must be one of {', '.join(UNTIL)}, not {until!r}.")
    if input is None:
        return _record_window(game, state, out, hz, frames_per_step, max_steps, episodes, until, scale,
                              keymap, countdown, resume, json_out)
    episodes = episodes or 1
    max_steps = max_steps or 6000
    from contra_bc.record import scripted
    from contra_bc.ui import err, print_json

    scripted.make_source(input, __import__("contra_bc.emulator").emulator.get_game(game), seed)  # validate early
    if episodes == 1:
        jobs = [scripted.RecordJob(game, state, input, str(out), hz, frames_per_step, max_steps, seed, until, realtime)]
    else:
        if out.exists() and any(out.iterdir()):
            raise UserError(f"{out} exists and is not empty; choose a new session folder.")
        jobs = [scripted.RecordJob(game, state, input, str(out / f"episode-{i:04d}"), hz, frames_per_step,
                                   max_steps, seed + i, until, realtime) for i in range(episodes)]
    metas = _run_jobs(scripted.record_job, jobs, workers, game, "recording")
    if json_out:
        print_json(metas)
        return
    _table([{"recording": m.get("path", j.out), "steps": m["steps"], "outcome": m["outcome"],
             "deaths": m.get("deaths", 0), "complete": m["complete"]} for j, m in zip(jobs, metas)],
           "recordings")
    err.print(f"wrote {len(metas)} recording(s) under {out}")


def _record_window(game, state, out, hz, frames_per_step, max_steps, episodes, until, scale, keymap,
                   countdown, resume, json_out):
    from contra_bc.record.session import SessionConfig, record_session
    from contra_bc.ui import err, print_json

    result = record_session(SessionConfig(game=game, out=out, state=state, hz=hz, frames_per_step=frames_per_step,
                                          until=until, max_steps=max_steps, episodes=episodes, resume=resume,
                                          scale=scale, keymap=keymap, countdown=countdown))
    if json_out:
        print_json(result["kept"])
        return
    _table([{"episode": Path(m["path"]).name, "steps": m["steps"], "outcome": m["outcome"],
             "end": m["end_reason"], "p99 lateness ms": m["timing"]["lateness_p99_ms"],
             "missed ticks": m["timing"]["missed_ticks"]} for m in result["kept"]], "episodes kept")
    err.print(f"session {out}: {len(result['kept'])} episode(s) kept, {result['discarded']} discarded in this run")


def _run_jobs(fn, jobs, workers, game, label):
    from contra_bc.parallel import default_workers, run_many
    from contra_bc.ui import progress

    workers = workers or default_workers()
    with progress() as bar:
        task = bar.add_task(label, total=len(jobs))
        return run_many(fn, jobs, workers=min(workers, len(jobs)), games=[game],
                        on_result=lambda i, r: bar.advance(task))


def _table(rows: list[dict], title: str):
    from rich.table import Table

    from contra_bc.ui import out

    if not rows:
        return
    t = Table(title=title)
    for k in rows[0]:
        t.add_column(k)
    for r in rows:
        t.add_row(*[str(v) for v in r.values()])
    out.print(t)


# ---------------------------------------------------------------- replay-verify
@app.command("replay-verify")
@handle_errors
def replay_verify(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings."),
    check_video: bool = typer.Option(False, "--check-video", help="Also decode the video and check every frame."),
    report_dir: Path = typer.Option(Path("replay-report"), "--report-dir", help="Where divergence PNGs go."),
    workers: int = typer.Option(0, "--workers", help="Parallel processes (0: one per core)."),
    json_out: bool = typer.Option(False, "--json", help="Print results as JSON."),
):
    """Replay recordings from their start state and prove they reproduce bit for bit.

    Compares each step's frame hash and RAM hash and the final outcome. The first
    divergence is the first step whose frame or RAM differs (so an action changed at
    step k shows at a step >= k); a PNG (recorded | replayed | difference) is written.

    Example: `contra-bc replay-verify runs/expert --check-video`

    Exit codes: 0 all verified, 1 any divergence, 2 unreadable input.
    """
    from contra_bc.formats.recording import find_recordings
    from contra_bc.parallel import default_workers, run_many
    from contra_bc.replay import VerifyJob, verify
    from contra_bc.ui import err, print_json, progress

    recs = find_recordings(paths)
    games = set()
    for r in recs:
        try:
            import json as _json

            games.add(_json.loads((r / "meta.json").read_text()).get("game"))
        except Exception:
            pass
    jobs = [VerifyJob(str(r), check_video, str(report_dir)) for r in recs]
    with progress() as bar:
        task = bar.add_task("replay-verify", total=len(jobs))
        results = run_many(verify, jobs, workers=min(workers or default_workers(), len(jobs)), games=games,
                           on_result=lambda i, r: bar.advance(task))
    if json_out:
        print_json(results)
    else:
        rows = []
        for r in results:
            d = r.get("first_divergence") or {}
            rows.append({"recording": r["path"], "status": r["status"], "steps": r.get("steps", "-"),
                         "complete": r.get("complete", "-"),
                         "first divergence": "-" if not d else f"step {d['step']} ({d['time_s']} s)",
                         "outcome": r.get("outcome_recorded", "-")})
        _table(rows, "replay-verify")
        for r in results:
            if r["status"] == "error":
                err.print(f"[red]error[/] {r['path']}: {r['message']}", soft_wrap=True)
            elif r.get("first_divergence", {}).get("png"):
                err.print(f"divergence picture: {r['first_divergence']['png']}")
    statuses = {r["status"] for r in results}
    if "error" in statuses:
        raise typer.Exit(2)
    if "diverged" in statuses:
        raise typer.Exit(1)


# ---------------------------------------------------------------- not built yet
@app.command("downsample-check")
@handle_errors
def downsample_check():
    """Max-pool per-frame inputs into 20 Hz windows and show the runs diverge and lose.

    Exit codes: 3 not built yet.
    """
    not_built("downsample-check", "issue: downsample-check")


@app.command()
@handle_errors
def annotate():
    """Gemini writes timestamped task instructions for recordings.

    Exit codes: 3 not built yet.
    """
    not_built("annotate", "issue: annotate")


@app.command("build-dataset")
@handle_errors
def build_dataset():
    """Recordings + annotations -> training shards (parquet).

    Exit codes: 3 not built yet.
    """
    not_built("build-dataset", "issue: build-dataset")


@app.command()
@handle_errors
def train():
    """Train a Pixels2Play-style transformer policy.

    Exit codes: 3 not built yet.
    """
    not_built("train", "issue: train")


@app.command()
@handle_errors
def play():
    """Run a trained policy in the emulator, evaluate it, take over as a human.

    Exit codes: 3 not built yet.
    """
    not_built("play", "issue: play")


@app.command("causality-score")
@handle_errors
def causality_score():
    """How much the policy relies on what it sees versus copying its past actions.

    Exit codes: 3 not built yet.
    """
    not_built("causality-score", "issue: causality-score")


if __name__ == "__main__":
    app()
