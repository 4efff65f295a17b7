"""The `contra-bc` command line. Thin: options -> a library call -> rich output.

Exit codes shared by every subcommand:
  0 success, 1 a check failed (divergence, lost run), 2 bad input (a clear message),
  130 interrupted.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import List, Optional

import typer

from contra_bc import __version__
from contra_bc.errors import UserError
from contra_bc.options import check_option_values, check_output_dirs

# numpy's BLAS only multiplies small matrices here (resizing frames, a few per step); its
# threads would contend with the video decoder, the emulator and the worker processes that
# already use every core. Read when numpy loads (after this line) and by spawned workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Behaviour cloning toolkit for NES Contra: exact 20 Hz recording, replay verification, "
         "annotation, datasets, a Pixels2Play-style policy.\n\n"
         "Exit codes: 0 ok, 1 a check failed, 2 bad input, 130 interrupted.",
)


def handle_errors(fn):
    """Option values checked; UserError -> one paragraph on stderr and exit 2; Ctrl-C or SIGTERM -> exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from contra_bc import signals
        from contra_bc.ui import err

        signals.install()  # SIGTERM stops a command exactly as Ctrl-C does
        try:
            check_option_values(kwargs)
            check_output_dirs(kwargs)
            return fn(*args, **kwargs)
        except UserError as exc:
            from rich.markup import escape

            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130)

    return wrapper


def _version(value: bool):
    if value:
        print(f"contra-bc {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress lines "
                                    "(errors, tables and results still print).")):
    """Behaviour cloning toolkit for NES Contra.

    stdout carries data, stderr what people read: when stdout is a pipe or a file, tables go to
    stderr and stdout gets the paths written or checked, one per line (or JSON Lines with --json).
    `-` reads paths from stdin. `contra-bc -q ...` silences progress.
    """
    from contra_bc import ui

    ui.QUIET = quiet


# ---------------------------------------------------------------- games
@app.command()
@handle_errors
def games(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the games: ROM present?, start states, buttons.

    Example: `contra-bc games`

    Exit codes: 0.
    """
    from contra_bc.emulator import describe_games
    from contra_bc.ui import print_json, print_paths, stdout_is_data, table

    rows = describe_games()
    if json_out:
        print_json(rows)
    elif stdout_is_data():
        print_paths(r["game"] for r in rows)
    else:
        table([{"game": r["game"], "ROM": "[green]present[/]" if r["rom_present"]
                else f"[red]missing[/] (sha1 {r['rom_sha1']}; `{r['import']}`)",
                "states": ", ".join(r["states"]) or "-", "buttons": " ".join(r["buttons"])} for r in rows],
              "contra-bc games")


# ---------------------------------------------------------------- record
@app.command()
@handle_errors
def record(
    input: Optional[str] = typer.Option(None, "--input", "-i", help="bot:NAME, an action file (.csv/.parquet: "
                                        "column `action` bitmask or `buttons` like RIGHT+A), or a movie (.bk2/.fm2). "
                                        "Without it, opens the interactive window for a human."),
    game: Optional[str] = typer.Option(None, "--game", "-g", help="Game from `contra-bc games` (default: "
                                       "Outpost-Nes; a movie brings its own)."),
    state: Optional[str] = typer.Option(None, "--state", "-s", help="Start state (default: the game's first)."),
    out: Path = typer.Option(..., "--out", "-o", help="New recording directory; a session folder of "
                             "OUT/episode-NNNN with --episodes or the window."),
    hz: Optional[float] = typer.Option(None, "--hz", help="Steps per second the recording represents and the pace "
                                       "of the window (default 20; a movie: its frame rate / frames per step)."),
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
    json_out: bool = typer.Option(False, "--json", help="Print JSON Lines: one line per recording as it is written, then the list of all metas."),
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
    from contra_bc.episode import check_until
    from contra_bc.record import scripted
    from contra_bc.ui import emit, err, print_json, print_paths, table

    check_until(until)
    if input is None:
        from contra_bc.record import session

        result = session.record_session(session.SessionConfig(
            game=game or scripted.DEFAULT_GAME, out=out, state=state, hz=hz or scripted.DEFAULT_HZ,
            frames_per_step=frames_per_step, until=until, max_steps=max_steps, episodes=episodes, resume=resume,
            scale=scale, keymap=keymap, countdown=countdown))
        if json_out:
            print_json(result["kept"])
            return
        table(session.table_rows(result["kept"]), "episodes kept")
        print_paths(m["path"] for m in result["kept"])
        err.print(f"session {out}: {len(result['kept'])} episode(s) kept, {result['discarded']} discarded in this run")
        return
    recorded = scripted.record_episodes(
        input, out, game=game, state=state, hz=hz, frames_per_step=frames_per_step, max_steps=max_steps, seed=seed,
        episodes=episodes, until=until, realtime=realtime, workers=workers,
        on_recording=(lambda job, meta: emit({"event": "recording", "path": job.out, **meta})) if json_out else None)
    if json_out:
        print_json([meta for _, meta in recorded])
    else:
        table(scripted.table_rows(recorded), "recordings")
        print_paths(job.out for job, _ in recorded)
    err.print(f"wrote {len(recorded)} recording(s) under {out}")
    if any(meta.get("end_reason") == "interrupted" for _, meta in recorded):
        err.print("[yellow]interrupted:[/] the flushed prefix is kept and marked incomplete")
        raise typer.Exit(130)


# ---------------------------------------------------------------- replay-verify
@app.command("replay-verify")
@handle_errors
def replay_verify(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings (- reads paths from stdin, one per line)."),
    check_video: bool = typer.Option(False, "--check-video", help="Also decode the video and check every frame."),
    report_dir: Path = typer.Option(Path("replay-report"), "--report-dir", help="Where divergence PNGs go."),
    workers: int = typer.Option(0, "--workers", help="Parallel processes (0: one per core)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON Lines: one line per recording as it finishes, "
                                  "then the list of all results."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report here (one testcase "
                                         "per recording; a divergence is a failure naming its step and PNG)."),
):
    """Replay recordings from their start state and prove they reproduce bit for bit.

    Compares each step's frame hash and RAM hash and the final outcome. The first
    divergence is the first step whose frame or RAM differs (so an action changed at
    step k shows at a step >= k); a PNG (recorded | replayed | difference) is written.

    Examples: `contra-bc replay-verify runs/expert --check-video`;
    `find sessions -name meta.json -printf '%h\\n' | contra-bc replay-verify - --junit verify.xml`
    (piped, stdout lists the verified recordings, one per line).

    Exit codes: 0 all verified, 1 any divergence, 2 unreadable input.
    """
    from contra_bc import replay
    from contra_bc.formats import junit as junit_xml
    from contra_bc.ui import emit, err, print_json, print_paths, stdin_paths, table

    paths = stdin_paths(paths)
    if junit is not None:
        junit_xml.check_target(junit)
    results = replay.verify_all(paths, check_video=check_video, report_dir=report_dir, workers=workers,
                                each=(lambda i, r: emit({"event": "recording", **r})) if json_out else None)
    cases = junit_xml.verify_cases(results)
    if junit is not None:
        junit_xml.write(junit, "replay-verify", cases)
    junit_xml.github_annotations(cases)
    if json_out:
        print_json(results)
    else:
        table(replay.table_rows(results), "replay-verify")
        for r in results:
            if r["status"] == "error":
                err.print(f"[red]error[/] {r['path']}: {r['message']}", soft_wrap=True)
            elif r.get("first_divergence", {}).get("png"):
                err.print(f"divergence picture: {r['first_divergence']['png']}")
        print_paths(r["path"] for r in results if r["status"] == "verified")
    statuses = {r["status"] for r in results}
    if "error" in statuses:
        raise typer.Exit(2)
    if "diverged" in statuses:
        raise typer.Exit(1)


# ---------------------------------------------------------------- downsample-check
@app.command("downsample-check")
@handle_errors
def downsample_check(
    paths: List[Path] = typer.Argument(..., help="Per-frame recordings (frames_per_step 1), or folders of them (- reads paths from stdin)."),
    mode: str = typer.Option("max", "--mode", help="Pooling: max (recap's), first, last, majority."),
    from_hz: Optional[float] = typer.Option(None, "--from-hz", help="Step rate of the recordings (default: each recording's own hz, e.g. 60)."),
    to_hz: float = typer.Option(20.0, "--to-hz", help="Rate of the pooling recorder (20 Hz = 50 ms windows)."),
    window: Optional[int] = typer.Option(None, "--window", help="Window in steps, overriding from/to Hz (1 = control: nothing changes)."),
    report_dir: Path = typer.Option(Path("downsample-report"), "--report-dir", help="Where the divergence PNGs go."),
    workers: int = typer.Option(0, "--workers", help="Parallel processes (0: one per core)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON Lines: one line per recording as it finishes, "
                                  "then the summary and all results."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report here (one testcase "
                                         "per recording; an unpoolable recording is an error)."),
):
    """Max-pool per-frame inputs into 20 Hz windows and show the runs diverge and lose.

    Pools each recording's actions over windows of from_hz/to_hz steps (60/20 = 3 frames by
    default, as P2P's recap recorder did), replays the pooled actions from the same start
    state, and reports the original and pooled outcome, the first diverging step, the
    fraction of actions changed, and a PNG (original | pooled | difference). Control: a
    throttled 20 Hz recording pools with a window of 1, which changes nothing.

    Example: `contra-bc downsample-check runs/expert60 --mode max`

    Exit codes: 0 the check ran (whatever it found), 2 bad or unpoolable input.
    """
    from contra_bc import downsample
    from contra_bc.formats import junit as junit_xml
    from contra_bc.ui import emit, err, out, print_json, print_paths, stdin_paths, table

    paths = stdin_paths(paths)
    downsample.check_mode(mode)
    if junit is not None:
        junit_xml.check_target(junit)
    results = downsample.check_all(paths, mode=mode, from_hz=from_hz, to_hz=to_hz, window=window,
                                   report_dir=report_dir, workers=workers,
                                   each=(lambda i, r: emit({"event": "recording", **r})) if json_out else None)
    summary = downsample.summarize(results)
    if junit is not None:
        junit_xml.write(junit, f"downsample-check ({mode})", junit_xml.downsample_cases(results))
    if json_out:
        print_json({"summary": summary, "recordings": results})
    else:
        out.print(f"[bold]{summary['headline']}[/]")
        table(downsample.table_rows(results), f"downsample-check: {mode} pooling")
        if summary["diverged"]:
            err.print(f"divergence pictures in {report_dir}/")
        print_paths(r["path"] for r in results if r["status"] == "ok")
    errors = [r for r in results if r["status"] == "error"]
    for r in errors:
        err.print(f"[red]error[/] {r['path']}: {r['message']}", soft_wrap=True)
    if errors:
        raise typer.Exit(2)


@app.command()
@handle_errors
def annotate(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings (- reads paths from stdin, one per line)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Gemini model "
                                        "(default: $CONTRA_BC_GEMINI_MODEL, else gemini-3-flash-preview)."),
    prompt: Optional[Path] = typer.Option(None, "--prompt", help="Prompt file to use instead of the packaged "
                                          "annotate-v1.md (a `prompt-version: NAME` line names its version)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Write DIR/<recording>.annotations.json "
                                           "instead of <recording>/annotations.json."),
    from_table: Optional[Path] = typer.Option(None, "--from-table", help="Import a hand-written "
                                              "`| Start | End | Text |` table (MM:SS) for ONE recording; no network."),
    window_seconds: float = typer.Option(60.0, "--window-seconds", help="Split recordings into clips this long."),
    sample_fps: float = typer.Option(5.0, "--sample-fps", help="Frames per second Gemini samples from the clip "
                                     "(its default of 1 is too coarse for a fast game)."),
    media_resolution: str = typer.Option("medium", "--media-resolution", help="low, medium or high (tokens per frame)."),
    thinking_level: str = typer.Option("low", "--thinking-level", help="minimal, low, medium, high, or off."),
    max_output_tokens: int = typer.Option(16384, "--max-output-tokens", help="Answer budget per clip (thinking included)."),
    cooldown: float = typer.Option(8.0, "--cooldown", help="Seconds between instruction starts, enforced across clips."),
    inline_max_mb: float = typer.Option(15.0, "--inline-max-mb", help="Send clips whose request would exceed this "
                                        "many MB through the Files API instead of inline (0: always Files API)."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds before one HTTP request is abandoned (then retried)."),
    retries: int = typer.Option(5, "--retries", min=0, help="Retries for 429, 5xx and network errors."),
    retry_base: float = typer.Option(2.0, "--retry-base", hidden=True, help="First backoff delay in seconds."),
    file_active_timeout: float = typer.Option(300.0, "--file-active-timeout", help="Seconds to wait for an "
                                              "uploaded clip to become ACTIVE."),
    concurrency: int = typer.Option(4, "--concurrency", help="Recordings annotated at the same time."),
    price_input: float = typer.Option(0.50, "--price-input", help="USD per million input tokens (for the cost report)."),
    price_output: float = typer.Option(3.00, "--price-output", help="USD per million output+thinking tokens."),
    force: bool = typer.Option(False, "--force", help="Re-annotate even if an annotations file is already there."),
    batch: bool = typer.Option(False, "--batch", help="Send all clips as Gemini Batch API jobs (half price, "
                               "slower: hours), poll until done."),
    batch_timeout: float = typer.Option(86400.0, "--batch-timeout", help="Seconds to wait for a batch job; "
                                        "it is cancelled after that (or on Ctrl-C)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON Lines: one line per recording as it is "
                                  "done, then the list of all results."),
):
    """Gemini writes timestamped task instructions for recordings.

    Each recording is cut into clips (--window-seconds), encoded as a compressed MP4
    and sent to Gemini with the packaged prompt; the JSON answer is checked (times,
    order, text), moved onto the recording's clock and written as an annotations file
    with provenance (model, prompt version, settings, tokens, estimated cost). Rejected
    entries are kept under "rejected" with a reason. Needs GEMINI_API_KEY (or
    GOOGLE_API_KEY) in the environment. Files that already match the video, prompt and
    model are skipped, so a stopped run resumes; --force redoes them.

    Examples:

    `GEMINI_API_KEY=... contra-bc annotate runs/expert --concurrency 4`

    `GEMINI_API_KEY=... contra-bc annotate runs/big-session --batch`

    `contra-bc annotate runs/expert --from-table examples/outpost-level1-annotations.md` (the table's
    times on every recording's clock)

    Exit codes: 0 all annotated or up to date, 1 some recordings failed (listed), 2 bad input
    (no API key, bad table, not a recording), 130 interrupted (finished files are kept).
    """
    from rich.markup import escape

    from contra_bc import annotate as annotate_lib
    from contra_bc.annotate.gemini import default_model
    from contra_bc.ui import emit, err, print_json, print_paths, progress, stdin_paths, table

    paths = stdin_paths(paths)
    if from_table is not None:
        results = annotate_lib.import_table(paths, from_table, out_dir=out_dir, force=force,
                                            on_result=lambda r: emit({"event": "recording", **r}) if json_out else None)
    else:
        settings = annotate_lib.Settings(
            model=model or default_model(), prompt_file=prompt, out_dir=out_dir,
            window_seconds=window_seconds, sample_fps=sample_fps, media_resolution=media_resolution.lower(),
            thinking_level=None if thinking_level.lower() == "off" else thinking_level.lower(),
            max_output_tokens=max_output_tokens, cooldown_s=cooldown, inline_max_mb=inline_max_mb,
            timeout_s=timeout, retries=retries, retry_base_s=retry_base, file_active_timeout_s=file_active_timeout,
            concurrency=concurrency, price_input=price_input, price_output=price_output, force=force,
            batch=batch, batch_timeout_s=batch_timeout)
        with progress() as bar:
            task = bar.add_task("annotate", total=None)

            def done(r):
                bar.advance(task)
                if json_out:
                    emit({"event": "recording", **r})

            results = annotate_lib.annotate(paths, settings, on_result=done)
            bar.update(task, total=len(results), completed=len(results))
    if json_out:
        print_json(results)
    else:
        table(annotate_lib.table_rows(results), "annotate")
        for r in results:
            if r["status"] == "error":
                err.print(f"[red]error[/] {escape(r['recording'])}: {escape(r['message'])}", soft_wrap=True,
                          highlight=False)
            elif r["message"] and r["status"] != "up to date":
                err.print(f"[yellow]{r['status']}[/] {escape(r['recording'])}: {escape(r['message'])}",
                          soft_wrap=True, highlight=False)
            elif r["status"] == "annotated":
                err.print(f"wrote {r['out']}", highlight=False)
        print_paths(r["out"] for r in results if r["status"] in ("annotated", "up to date") and r.get("out"))
    if any(r["status"] == "error" for r in results):
        raise typer.Exit(1)


@app.command("build-dataset")
@handle_errors
def build_dataset(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings (- reads paths from stdin, one per line)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to create (or extend with --append)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Folder with NAME.annotations.json "
                                               "files (default: annotations.json inside each recording)."),
    require_annotations: bool = typer.Option(False, "--require-annotations", help="A recording without annotations is an error."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of episodes for validation (at least one when there are 2+)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/val split."),
    frame_size: int = typer.Option(192, "--frame-size", min=8, help="Model frame size (square), via preprocess_frame."),
    verify: bool = typer.Option(False, "--verify", help="Replay-verify each recording first; drop those that diverge."),
    include_incomplete: bool = typer.Option(False, "--include-incomplete", help="Keep the recorded prefix of interrupted recordings."),
    append: bool = typer.Option(False, "--append", help="Add the recordings to the existing dataset at --out."),
    no_filter: bool = typer.Option(False, "--no-filter", help="Keep episodes the quality filter would drop."),
    aux: str = typer.Option("", "--aux", help="Comma-separated game variables to store per frame (e.g. "
                            "enemy_bullet_x_0,enemy_bullet_on_0): train teaches the image encoder to read them "
                            "off the screen (an auxiliary loss; play never uses them)."),
    max_hold_fraction: float = typer.Option(0.9, "--max-hold-fraction", help="Drop an episode whose non-direction "
                                            "button is held without release for more than this share of its steps."),
    min_changes_per_minute: float = typer.Option(20.0, "--min-changes-per-minute", help="Drop an episode whose action "
                                                 "changes fewer times per minute."),
    filter_min_steps: int = typer.Option(100, "--filter-min-steps", help="Episodes shorter than this are not filtered."),
    workers: int = typer.Option(0, "--workers", help="Parallel processes (0: one per core)."),
    json_out: bool = typer.Option(False, "--json", help="Print the build report as JSON."),
):
    """Recordings + annotations -> training shards (parquet, LeRobot-v3-like layout).

    Every frame is resized by the same `preprocess_frame` that `play` uses and stored
    losslessly; each step gets its active instruction, a loss mask (false on agent
    steps) and a train/val split by episode. Incomplete recordings are skipped and
    stuck-input or idle episodes dropped, with the reason in the table. Same inputs,
    same bytes; an interrupted build resumes when rerun.

    Example: `contra-bc build-dataset runs/expert --out datasets/expert --verify`

    Exit codes: 0 built, 1 built but --verify dropped diverging recordings,
    2 bad input (corrupt recording, mismatched annotations, nothing usable), 130 interrupted.
    """
    from contra_bc.dataset.build import BuildOptions, build_dataset as build, summary_lines, table_rows
    from contra_bc.dataset.quality import QualityFilter
    from contra_bc.ui import err, print_json, print_paths, stdin_paths, table

    paths = stdin_paths(paths)
    opts = BuildOptions(annotations_dir=str(annotations) if annotations else None,
                        require_annotations=require_annotations, val_fraction=val_fraction, seed=seed,
                        frame_size=frame_size, workers=workers, verify=verify,
                        include_incomplete=include_incomplete, append=append,
                        aux=tuple(v.strip() for v in aux.split(",") if v.strip()),
                        quality=QualityFilter(max_hold_fraction=max_hold_fraction,
                                              min_changes_per_minute=min_changes_per_minute,
                                              min_steps=filter_min_steps, enabled=not no_filter))
    report = build(paths, out, opts, log=lambda msg: err.print(msg, soft_wrap=True))
    if json_out:
        print_json(report)
    else:
        table(table_rows(report), "build-dataset")
        for line in summary_lines(report, out):
            err.print(line, soft_wrap=True)
        print_paths([out])
    if any(r.get("verify") in ("diverged", "error") for r in report["recordings"]):
        raise typer.Exit(1)


@app.command()
@handle_errors
def train(
    dataset: Path = typer.Argument(..., help="Dataset directory from `contra-bc build-dataset` (- reads it from stdin)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (checkpoints, metrics.jsonl, loss.png)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of training options (keys as the "
                                          "long options with _; a [train] table or top level). Flags win."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Model size: tiny, small, 150M, 300M, 600M, 1.2B."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps (length of the LR schedule)."),
    stop_at: Optional[int] = typer.Option(None, "--stop-at", help="Stop at this step with a checkpoint; "
                                          "`--resume` later continues the same schedule."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per micro-batch per process."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step."),
    window: Optional[int] = typer.Option(None, "--window", help="History T in steps (the sliding window at play)."),
    sequence: Optional[int] = typer.Option(None, "--sequence", help="Steps per training sequence (default 2 x "
                                           "--window), so later steps see context from beyond one window, as play does."),
    jitter: Optional[bool] = typer.Option(None, "--jitter/--no-jitter", help="Cut training sequences at new seeded "
                                          "offsets every epoch (default on)."),
    text_dropout: Optional[float] = typer.Option(None, "--text-dropout", help="Chance a training sequence is shown "
                                                 "without its instructions (default 0.5), so the policy also plays "
                                                 "without text."),
    press_weight: Optional[float] = typer.Option(None, "--press-weight", help="Loss weight of the steps where "
                                                 "a button goes down (a jump starts, a shot): the moments the screen "
                                                 "decides (default 1 = no extra weight)."),
    press_slack: Optional[int] = typer.Option(None, "--press-slack", help="Leave out of the loss the K steps "
                                              "before each rare press (a jump start) where the button is still "
                                              "up: when within a few steps to take off is the demonstrator's "
                                              "noise (default 0 = off)."),
    focus: Optional[int] = typer.Option(None, "--focus", help="Show each training sequence that holds a rare "
                                        "press (a button going down less than once per window: a jump start) "
                                        "this many times per epoch (default 1)."),
    aux_weight: Optional[float] = typer.Option(None, "--aux-weight", help="Weight of the auxiliary loss on a "
                                               "dataset built with --aux: a head reads those game variables off "
                                               "each frame's image tokens (default 1; 0 turns it off)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from the weights of this checkpoint or RUN "
                                        "(fine-tuning, e.g. after a correction round): its preset and window, a "
                                        "new optimizer and learning-rate schedule."),
    image_input: Optional[str] = typer.Option(None, "--image-input", help="How the image encoder takes the "
                                              "frame: pool (average k x k pixels, the default) or unshuffle "
                                              "(fold them into channels: every pixel reaches the encoder)."),
    image_norm: Optional[str] = typer.Option(None, "--image-norm", help="Image encoder norm: group (per frame, "
                                             "default) or batch (across the batch, as older checkpoints)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for init, data order and augmentation."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Colour/noise/blur/shift augmentation."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps."),
    eval_batches: Optional[int] = typer.Option(None, "--eval-batches", help="Validation batches per "
                                               "validation (default 8); more count more of the rare presses."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every N steps."),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="Write a train line to metrics.jsonl every N steps."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data-loader worker processes."),
    text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="auto, minilm, hashed, or any "
                                              "sentence-transformers model name (from the local cache) or folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from RUN/last, exactly."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
):
    """Train a Pixels2Play-style transformer policy on a dataset.

    AdamW with warmup + cosine, gradient clipping and accumulation, z-loss, bf16 autocast on
    CUDA, augmentation; validates on the val split and writes RUN/metrics.jsonl, RUN/loss.png
    and safetensors checkpoints (RUN/checkpoints/step-NNNNNN, RUN/last). Under
    `torchrun --nproc_per_node=N` it trains with DDP (rank 0 writes the run).

    Example: `contra-bc train data/expert --out runs/small --preset small --max-steps 600`

    Exit codes: 0 trained, 2 bad input (dataset, config, checkpoint), 130 interrupted
    (the last checkpoint stays; continue with `--resume`).
    """
    from contra_bc import train as train_lib
    from contra_bc.ui import err, print_json, print_paths, progress, stdin_path, table

    dataset = stdin_path(dataset, "dataset")
    tc = train_lib.config_from_options(
        {"preset": preset, "max_steps": max_steps, "stop_at": stop_at, "batch_size": batch_size,
         "grad_accum": grad_accum, "window": window, "sequence": sequence, "jitter": jitter,
         "text_dropout": text_dropout, "image_norm": image_norm, "press_weight": press_weight, "focus": focus,
         "press_slack": press_slack,
         "image_input": image_input, "aux_weight": aux_weight, "init": str(init) if init else None, "lr": lr,
         "seed": seed, "device": device, "compile": compile, "augment": augment, "eval_every": eval_every,
         "eval_batches": eval_batches, "save_every": save_every, "log_every": log_every, "workers": workers,
         "text_encoder": text_encoder},
        dataset=dataset, out=out, config_file=config, resume=resume)
    main_rank = os.environ.get("RANK", "0") == "0"
    bar = progress(disable=not main_rank)  # shown from the first step, so input errors print alone
    task = bar.add_task("train", total=tc.stop_at or tc.max_steps)
    speed = {"steps_per_s": 0.0}

    def on_step(step, total, record):
        if not bar.live.is_started:
            bar.start()
        speed["steps_per_s"] = record.get("steps_per_s", speed["steps_per_s"])  # logged every --log-every steps
        bar.update(task, completed=step, total=total,
                   description=f"train loss {record.get('loss', float('nan')):.3f} "
                               f"{speed['steps_per_s']:.2f} steps/s")

    try:
        summary = train_lib.train(tc, on_step=on_step)
    finally:
        bar.stop()
    if not main_rank:
        return
    if json_out:
        print_json(summary)
        return
    table(train_lib.table_rows(summary), "train")
    err.print(f"checkpoint: {summary['checkpoint']}")
    print_paths([tc.out])


@app.command()
@handle_errors
def play(
    checkpoint: str = typer.Argument(..., help="Checkpoint dir or RUN dir (follows RUN/last; - reads it from stdin); `bot:random` plays "
                                     "the random baseline alone."),
    game: str = typer.Option("Outpost-Nes", "--game", "-g", help="Game from `contra-bc games`; its buttons must "
                             "be the checkpoint's."),
    state: Optional[str] = typer.Option(None, "--state", "-s", help="Start state (default: the game's first)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="New session folder: OUT/agent-NNNN and "
                                       "OUT/random-NNNN recordings, OUT/evaluation.json. Required in the window."),
    hz: Optional[float] = typer.Option(None, "--hz", help="Decisions per second (default: the checkpoint's "
                                       "dataset rate, else 20); the window runs at this pace."),
    frames_per_step: Optional[int] = typer.Option(None, "--frames-per-step", min=1, help="Emulator frames per "
                                                  "decision (default: the checkpoint's dataset, else 1)."),
    fast: bool = typer.Option(False, "--fast", help="Headless, as fast as inference allows (implied by --episodes > 1)."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="Sampling temperature (0 = argmax)."),
    seed: int = typer.Option(1_000_000, "--seed", help="Sampling seed; episode i uses seed+i. The default keeps "
                             "evaluation seeds apart from the (small) seeds that make training data."),
    instruction: Optional[str] = typer.Option(None, "--instruction", help="Text instruction for the whole run "
                                              "(embedded once, then cached)."),
    episodes: int = typer.Option(1, "--episodes", "-n", min=1, help="Headless evaluation episodes."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Parallel spawn processes (one emulator each)."),
    baseline: str = typer.Option("random", "--baseline", help="Also run this baseline for comparison: random "
                                 "(bot:random, RandomMomentum) or none."),
    max_steps: int = typer.Option(6000, "--max-steps", min=1, help="Stop an episode after this many steps."),
    until: str = typer.Option("level", "--episode-until", help="End an episode at: life, level, game-over, never."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads per process (1 is fastest for one "
                                "decision at a time on a busy machine)."),
    corrector: Optional[str] = typer.Option(None, "--corrector", help="bot:NAME that takes over when the agent's "
                                            "course dies within --lookahead steps (headless); its steps are "
                                            "recorded with actor \"corrector\" and trained on, the agent's are not."),
    lookahead: int = typer.Option(20, "--lookahead", min=1, help="Steps the corrector plays the agent's "
                                  "current action ahead to see whether it dies."),
    hold: int = typer.Option(20, "--hold", min=1, help="Steps a corrector drives at least before it hands back "
                             "(then on the first step where the agent's course is safe)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON Lines: one line per episode as it ends, "
                                  "then the evaluation report."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report of the evaluation "
                                         "(one testcase per episode; an episode not won is a failure)."),
):
    """Run a trained policy in the emulator, evaluate it, take over as a human or a scripted corrector.

    Frames go through the same preprocessing as build-dataset; the policy decides with its KV
    cache; every episode is written as a recording (source "agent") that replay-verify, annotate
    and build-dataset accept. In the window (default), a key hands control to you and back:
    your steps are recorded with actor "human" (correction data). Headless (`--fast` or
    `--episodes N`) it reports win rate, progress, score, deaths, steps and decision latency
    p50/p99 next to a random baseline run in the same command.

    Examples:

    `contra-bc play runs/train1 --game Outpost-Nes --out runs/play1`

    `contra-bc play runs/train1 --game Outpost-Nes --episodes 20 --workers 2 --out runs/eval1 --json`

    `contra-bc play runs/train1 --episodes 16 --corrector bot:expert-steady --seed 3000000 --out runs/round1`
    (correction data: the expert takes over where the agent would die)

    Exit codes: 0 ok, 2 bad input (unreadable checkpoint, buttons that do not fit the game), 130 interrupted.
    """
    from contra_bc import play as play_lib
    from contra_bc.formats import junit as junit_xml
    from contra_bc.ui import emit, err, print_json, print_paths, progress, stdin_path, table

    checkpoint = str(stdin_path(checkpoint, "checkpoint"))
    cfg = play_lib.EvalConfig(checkpoint=play_lib.checkpoint_argument(checkpoint), game=game, state=state,
                              out=str(out) if out else None, episodes=episodes, workers=workers,
                              frames_per_step=frames_per_step, hz=hz, max_steps=max_steps, until=until,
                              temperature=temperature, seed=seed, instruction=instruction, baseline=baseline,
                              threads=threads, corrector=corrector, lookahead=lookahead, hold=hold)
    play_lib.check_options(cfg)
    if junit is not None:
        junit_xml.check_target(junit)
    play_lib.resolve_pacing(cfg)  # loads and checks the checkpoint before anything starts
    if not fast and episodes == 1 and not corrector:
        if out is None:
            raise UserError("The window records what happens: give a new session folder with --out "
                            "(or use --fast for a headless run).")
        result = play_lib.play_window(cfg)
        table(play_lib.window_rows(result), "play")
        print_paths([result["recording"]])
        if result["end_reason"] in ("interrupted", "stopped"):
            raise typer.Exit(130)
        return

    def ended(i, episode):
        bar.advance(task)
        if json_out:
            emit({"event": "episode", **{k: v for k, v in episode.items() if k != "latency_ms"}})

    with progress() as bar:
        task = bar.add_task("play", total=play_lib.episode_count(cfg))
        report = play_lib.evaluate(cfg, on_result=ended)
    if junit is not None:
        junit_xml.write(junit, f"play {game}", junit_xml.episode_cases(report["episodes_detail"]))
    if json_out:
        print_json(report)
    else:
        table(play_lib.evaluation_rows(report), f"play {game} ({report['episodes']} episodes, until {until})")
        if report.get("baseline_policy"):
            err.print(f"baseline: {report['baseline_policy']}")
        if report.get("report"):
            err.print(f"report: {report['report']}")
        print_paths(e["recording"] for rows in report["episodes_detail"].values() for e in rows
                    if e.get("recording"))
    for line in play_lib.repeat_warnings(report):  # people read stderr, with --json too
        err.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    if report["interrupted"]:
        err.print("[yellow]interrupted:[/] the episodes' recordings are kept, marked incomplete")
        raise typer.Exit(130)


@app.command("causality-score")
@handle_errors
def causality_score(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint dir or RUN dir (follows RUN/last)."),
    dataset: Optional[Path] = typer.Argument(None, help="Dataset from `contra-bc build-dataset`."),
    split: str = typer.Option("val", "--split", help="Dataset split whose windows are scored."),
    chunks: int = typer.Option(4, "--chunks", "-C", help="Equal chunks per window; each is scored at its last valid step."),
    p: float = typer.Option(0.5, "--p", help="Probability that a frame is swapped for another scene's frame."),
    batch: int = typer.Option(8, "--batch", help="Windows per batch (donor frames come from the same batch)."),
    batches: int = typer.Option(4, "--batches", help="Batches per repeat."),
    seed: int = typer.Option(0, "--seed", help="Seed of window order and perturbations (repeat r uses seed+r)."),
    repeats: int = typer.Option(1, "--repeats", "-R", help="Repeat with R seeds; report mean and spread."),
    min_distance: Optional[int] = typer.Option(None, "--min-distance", help="A same-episode donor frame must be at "
                                               "least this many steps away (default: one window length)."),
    over: Optional[Path] = typer.Option(None, "--over", help="Trace the score over every checkpoint of this RUN dir "
                                        "(then the one positional argument is the dataset)."),
    toy: bool = typer.Option(False, "--toy", help="Run the paper's toy braking problem (§5.1.1) instead."),
    toy_steps: int = typer.Option(4000, "--toy-steps", help="SGD steps of the toy problem."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG to draw (--over: score and validation loss over "
                                        "training, default causality-over.png; --toy: default causality-toy.png)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """How much the policy relies on what it sees versus copying its past actions (P2P §5.2).

    Each validation window (C x the trained history steps) is cut into C equal chunks, each fed
    as its own sequence; every
    frame is swapped with probability p for a frame of another scene of the same batch (another
    episode, or the same episode >= --min-distance steps away); actions stay. At the **last valid
    step of each chunk** the KL between the teacher-forced action distributions on the original
    and the perturbed frames (summed over action token groups) is taken; the score sums it over
    windows and chunks. p = 0 gives exactly 0.

    Examples:

    `contra-bc causality-score runs/train1 data/ds --p 0.5 --repeats 3`

    `contra-bc causality-score --over runs/train1 data/ds --plot causality.png`

    `contra-bc causality-score --toy --plot toy.png`

    Exit codes: 0 ok, 2 bad input (missing dataset, game mismatch, p outside [0, 1]).
    """
    from contra_bc import causality
    from contra_bc.ui import err, print_json, stdin_path, table

    if str(checkpoint) == "-" and str(dataset) == "-":
        raise UserError("Only one of CHECKPOINT and DATASET can be `-` (read from stdin).")
    checkpoint, dataset = stdin_path(checkpoint, "checkpoint"), stdin_path(dataset, "dataset")
    if toy:
        result = causality.toy_experiment(causality.ToyConfig(steps=toy_steps, seed=seed))
        result["png"] = str(causality.draw_toy(result, plot or Path("causality-toy.png")))
        if json_out:
            print_json(result)
        else:
            table(causality.toy_rows(result), "toy causality (higher = more causal)")
            err.print(f"curves: {result['png']}")
        return
    cfg = causality.ScoreConfig(chunks=chunks, p=p, batch=batch, batches=batches, seed=seed, repeats=repeats,
                                split=split, min_distance=min_distance)
    causality.check_config(cfg)
    if over is not None:
        if (dataset or checkpoint) is None:
            raise UserError("--over RUN needs the dataset: `contra-bc causality-score --over RUN DATASET`.")
        result = causality.trace_over(over, dataset or checkpoint, cfg, plot or Path("causality-over.png"))
        if json_out:
            print_json(result)
        else:
            table(causality.over_rows(result), "causality over training")
            err.print(f"chart: {result['png']}")
        return
    if checkpoint is None or dataset is None:
        raise UserError("causality-score needs CHECKPOINT and DATASET, e.g. "
                        "`contra-bc causality-score runs/train1 data/ds` (or --toy, or --over RUN DATASET).")
    result = causality.causality_score(checkpoint, dataset, cfg)
    if json_out:
        print_json(result)
        return
    table(causality.score_rows(result), f"causality score (p={p}, C={chunks}, split {split})")
    warning = causality.too_few_swaps(result, p)
    if warning:
        err.print(f"[yellow]warning:[/] {warning}")


# ---------------------------------------------------------------- render
@app.command("render")
@handle_errors
def render(
    paths: List[Path] = typer.Argument(..., help="1 to 4 recordings, or a folder of them (- reads paths from stdin, "
                                       "one per line). Several play side by side, step k of each in one frame."),
    out_file: Path = typer.Option(..., "--out", "-o", help="The video to write: NAME.mp4 (H.264, plays in "
                                  "browsers), NAME.webm (VP9) or NAME.gif (short clips). Never overwritten."),
    speed: float = typer.Option(1.0, "--speed", help="1 plays at the recording's real speed (its hz steps a second, "
                                "one frame per step); 0.5 half as fast, 2 twice."),
    scale: int = typer.Option(2, "--scale", min=1, max=16, help="Zoom of the game frames (nearest neighbour)."),
    start: Optional[str] = typer.Option(None, "--from", help="First step shown: a step (120), seconds (6s, 6.5s) "
                                        "or MM:SS (0:06). Default: step 0."),
    stop: Optional[str] = typer.Option(None, "--to", help="Stop before this step (--from is shown, --to is not); "
                                       "the same forms as --from. Default: the end of the longest recording."),
    label: Optional[List[str]] = typer.Option(None, "--label", help="A label per recording, in order (repeat "
                                              "the option). Default: each recording's folder name."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Only the game frames: no labels, controller, "
                                    "actor, instruction, event or step counter."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Render recordings as a video: the game at its real speed, the buttons held, who acted, the instruction.

    Below each game frame a panel shows a controller with the buttons held at that step lit, the actor
    (coloured; a takeover shows as a change of colour and "(from ...)"), the step and time, an event
    (death, win) for a second after it happens, and the active instruction from the recording's
    annotations.json. 2 to 4 recordings play side by side aligned by step; one that ends first shows
    its last frame dimmed, marked "ended". GIFs above 50 fps keep every n-th step.

    Example: `contra-bc render runs/expert60/episode-0000 runs/expert60/episode-0001 --from 5s --to 20s --out pair.mp4`

    Exit codes: 0 written, 2 bad input (unreadable recording, unknown suffix, existing file, more than 4
    recordings, empty range), 130 interrupted (no partial file is left).
    """
    from contra_bc import render as render_lib
    from contra_bc.ui import err, print_json, print_paths, progress, stdin_paths

    paths = stdin_paths(paths)
    with progress() as bar:
        task = bar.add_task("render", total=None)
        summary = render_lib.render(paths, out_file, speed=speed, scale=scale, start=start, stop=stop,
                                    labels=label or None, overlay=not no_overlay,
                                    on_frame=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        print_json(summary)
        return
    if summary.get("note"):
        err.print(f"[yellow]note:[/] {summary['note']}", soft_wrap=True)
    err.print(f"wrote {summary['out']}: {summary['frames']} frames, {summary['width']}x{summary['height']}, "
              f"{summary['fps']:g} fps, {summary['duration_s']:.1f} s (steps {summary['steps'][0]} to "
              f"{summary['steps'][1] - 1} of {len(summary['recordings'])} recording(s))", highlight=False)
    print_paths([summary["out"]])


# ---------------------------------------------------------------- export
@app.command("export")
@handle_errors
def export(
    recording: Path = typer.Argument(..., help="A complete recording directory (- reads it from stdin)."),
    to: Path = typer.Option(..., "--to", help="The movie to write: NAME.bk2 or NAME.fm2 (never overwritten)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Write a recording as an emulator movie: .bk2 (BizHawk, stable-retro) or .fm2 (FCEUX, NES).

    Each step becomes `frames_per_step` identical frames, after one empty frame 0 (the reset frame).
    Both formats keep player-1 buttons frame by frame; they lose the video, the frame/RAM hashes,
    the variables, events and annotations (import the movie again and run `replay-verify` to get
    them back).

    **.bk2** keeps the start state as Core.bin (a stable-retro state, so stable-retro plays it back
    frame for frame), the ROM SHA-1, the platform and a LogKey naming the columns. BizHawk cannot load
    stable-retro states: it plays only power-on recordings (those imported from power-on movies).

    **.fm2** (NES only) keeps the ROM MD5 and name; FCEUX starts movies at power-on and cannot load
    stable-retro states, so only power-on recordings (imported from power-on movies) can be exported.

    Example: `contra-bc export runs/tas --to tas.bk2`

    Exit codes: 0 written, 2 bad input (incomplete recording, existing file, .fm2 of a non-power-on run).
    """
    from contra_bc.movies import export_recording
    from contra_bc.ui import err, print_json, print_paths, stdin_path, table

    summary = export_recording(stdin_path(recording, "recording"), to)
    if json_out:
        print_json(summary)
        return
    table([summary], "export")
    err.print(f"wrote {to}")
    print_paths([to])


# ---------------------------------------------------------------- report
@app.command()
@handle_errors
def report(
    run_dir: Path = typer.Argument(..., help="A pipeline run directory (what examples/demo.sh writes; - reads it from stdin)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Sum up a pipeline run: agent vs random vs expert, downsample-check, causality.

    Reads the JSON each stage wrote into RUN_DIR and writes RUN_DIR/report.md with the
    pictures; prints the comparison table.

    Example: `contra-bc report demo-out`

    Exit codes: 0 written, 2 not a run directory or unreadable stage output.
    """
    from contra_bc import report as report_lib
    from contra_bc.ui import err, out, print_json, print_paths, stdin_path, table

    run_dir = stdin_path(run_dir, "run directory")
    data = report_lib.build_report(run_dir)
    path = report_lib.write_markdown(data, run_dir)
    if json_out:
        print_json(data)
        return
    if data["downsample"]:
        out.print(f"[bold]{data['downsample']['headline']}[/]")
    table(report_lib.policy_rows(data), "agent vs random vs expert")
    err.print(f"report: {path}")
    print_paths([path])


if __name__ == "__main__":
    app()
