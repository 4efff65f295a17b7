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
from contra_bc import config as C
from contra_bc.errors import UserError
from contra_bc.options import command

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
    """UserError -> one paragraph on stderr and exit 2; Ctrl-C or SIGTERM -> exit 130. (Option values are
    checked against their declarations in contra_bc/config.py by `options.command`.)"""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from contra_bc import signals
        from contra_bc.ui import err

        signals.install()  # SIGTERM stops a command exactly as Ctrl-C does
        try:
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
@command(C.GamesConfig)
def games(cfg: C.GamesConfig):
    """List the games: ROM present?, start states, buttons.

    Example: `contra-bc games`

    Exit codes: 0.
    """
    from contra_bc.emulator import describe_games
    from contra_bc.ui import print_json, print_paths, stdout_is_data, table

    rows = describe_games()
    if cfg.json:
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
@command(C.RecordConfig)
def record(cfg: C.RecordConfig):
    """Record episodes: scripted input headless, or a human in a 20 Hz window.

    Examples:

    `contra-bc record --input bot:expert --game Outpost-Nes --out runs/expert --episodes 10`

    `contra-bc record --input actions.csv --game Airstriker-Genesis-v0 --out runs/a1`

    `contra-bc record --input bot:expert-steady --sticky 0.25 --noop-max 30 --episodes 16 --out runs/sticky`
    (demonstrations under the perturbations `play` evaluates with)

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
    from contra_bc.record import scripted
    from contra_bc.ui import emit, err, print_json, print_paths, table

    from contra_bc.perturb import Perturbation

    perturbation = Perturbation(cfg.sticky, cfg.noop_max)
    if cfg.input is None:
        if perturbation.active:
            raise UserError("--sticky and --noop-max perturb a bot's play (--input bot:NAME); a person at the "
                            "window plays unperturbed.")
        from contra_bc.record import session

        result = session.record_session(session.SessionConfig(
            game=cfg.game or scripted.DEFAULT_GAME, out=cfg.out, state=cfg.state, hz=cfg.hz or scripted.DEFAULT_HZ,
            frames_per_step=cfg.frames_per_step, until=cfg.until, max_steps=cfg.max_steps, episodes=cfg.episodes,
            resume=cfg.resume, scale=cfg.scale, keymap=cfg.keymap, countdown=cfg.countdown))
        if cfg.json:
            print_json(result["kept"])
            return
        table(session.table_rows(result["kept"]), "episodes kept")
        print_paths(m["path"] for m in result["kept"])
        err.print(f"session {cfg.out}: {len(result['kept'])} episode(s) kept, {result['discarded']} discarded in this run")
        return
    recorded = scripted.record_episodes(
        cfg.input, cfg.out, game=cfg.game, state=cfg.state, hz=cfg.hz, frames_per_step=cfg.frames_per_step,
        max_steps=cfg.max_steps, seed=cfg.seed, episodes=cfg.episodes, until=cfg.until, realtime=cfg.realtime,
        workers=cfg.workers, perturbation=perturbation,
        on_recording=(lambda job, meta: emit({"event": "recording", "path": job.out, **meta})) if cfg.json else None)
    if cfg.json:
        print_json([meta for _, meta in recorded])
    else:
        table(scripted.table_rows(recorded), "recordings")
        print_paths(job.out for job, _ in recorded)
    err.print(f"wrote {len(recorded)} recording(s) under {cfg.out}")
    if any(meta.get("end_reason") == "interrupted" for _, meta in recorded):
        err.print("[yellow]interrupted:[/] the flushed prefix is kept and marked incomplete")
        raise typer.Exit(130)


# ---------------------------------------------------------------- replay-verify
@app.command("replay-verify")
@handle_errors
@command(C.ReplayVerifyConfig)
def replay_verify(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings (- reads paths from stdin, one per line)."),
    cfg: C.ReplayVerifyConfig = None,
):
    """Replay recordings from their start state and prove they reproduce bit for bit.

    Compares each step's frame hash and RAM hash and the final outcome. The first
    divergence is the first step whose frame or RAM differs (so an action changed at
    step k shows at a step >= k); a PNG (recorded | replayed | difference) is written.

    Examples: `contra-bc replay-verify runs/expert --check-video`;
    `find sessions -name meta.json -printf '%h\\n' | contra-bc replay-verify - --junit verify.xml`
    (piped, stdout lists the verified recordings, one per line).

    Exit codes: 0 all verified, 1 any divergence, 2 unreadable input, 3 nothing diverged but some
    recordings cannot be proved: imported from frames and actions (`contra-bc import`), they have no
    emulator start state to replay from (status "unverifiable"; a skipped JUnit testcase).
    """
    from contra_bc import replay
    from contra_bc.formats import junit as junit_xml
    from contra_bc.ui import emit, err, print_json, print_paths, stdin_paths, table

    paths = stdin_paths(paths)
    if cfg.junit is not None:
        junit_xml.check_target(cfg.junit)
    results = replay.verify_all(paths, check_video=cfg.check_video, report_dir=cfg.report_dir, workers=cfg.workers,
                                each=(lambda i, r: emit({"event": "recording", **r})) if cfg.json else None)
    cases = junit_xml.verify_cases(results)
    if cfg.junit is not None:
        junit_xml.write(cfg.junit, "replay-verify", cases)
    junit_xml.github_annotations(cases)
    if cfg.json:
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
    if "unverifiable" in statuses:
        for r in results:
            if r["status"] == "unverifiable":
                err.print(f"[yellow]unverifiable[/] {r['path']}: {r['message']}", soft_wrap=True)
        raise typer.Exit(3)


# ---------------------------------------------------------------- downsample-check
@app.command("downsample-check")
@handle_errors
@command(C.DownsampleConfig)
def downsample_check(
    paths: List[Path] = typer.Argument(..., help="Per-frame recordings (frames_per_step 1), or folders of them (- reads paths from stdin)."),
    cfg: C.DownsampleConfig = None,
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
    from contra_bc.ui import emit, err, people, print_json, print_paths, stdin_paths, table

    paths = stdin_paths(paths)
    if cfg.junit is not None:
        junit_xml.check_target(cfg.junit)
    results = downsample.check_all(paths, mode=cfg.mode, from_hz=cfg.from_hz, to_hz=cfg.to_hz, window=cfg.window,
                                   report_dir=cfg.report_dir, workers=cfg.workers,
                                   each=(lambda i, r: emit({"event": "recording", **r})) if cfg.json else None)
    summary = downsample.summarize(results)
    if cfg.junit is not None:
        junit_xml.write(cfg.junit, f"downsample-check ({cfg.mode})", junit_xml.downsample_cases(results))
    if cfg.json:
        print_json({"summary": summary, "recordings": results})
    else:
        people.print(f"[bold]{summary['headline']}[/]")
        table(downsample.table_rows(results), f"downsample-check: {cfg.mode} pooling")
        if summary["diverged"]:
            err.print(f"divergence pictures in {cfg.report_dir}/")
        print_paths(r["path"] for r in results if r["status"] == "ok")
    errors = [r for r in results if r["status"] == "error"]
    for r in errors:
        err.print(f"[red]error[/] {r['path']}: {r['message']}", soft_wrap=True)
    if errors:
        raise typer.Exit(2)


@app.command()
@handle_errors
@command(C.AnnotateConfig)
def annotate(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings (- reads paths from stdin, one per line)."),
    cfg: C.AnnotateConfig = None,
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
    from contra_bc.ui import emit, err, print_json, print_paths, progress, stdin_paths, table

    paths = stdin_paths(paths)
    if cfg.from_table is not None:
        results = annotate_lib.import_table(paths, cfg.from_table, out_dir=cfg.out_dir, force=cfg.force,
                                            on_result=lambda r: emit({"event": "recording", **r}) if cfg.json else None)
    else:
        settings = annotate_lib.Settings.from_config(cfg)
        with progress() as bar:
            task = bar.add_task("annotate", total=None)

            def done(r):
                bar.advance(task)
                if cfg.json:
                    emit({"event": "recording", **r})

            results = annotate_lib.annotate(paths, settings, on_result=done)
            bar.update(task, total=len(results), completed=len(results))
    if cfg.json:
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
@command(C.BuildConfig)
def build_dataset(
    paths: List[Path] = typer.Argument(..., help="Recordings, or folders of recordings (- reads paths from stdin, one per line)."),
    cfg: C.BuildConfig = None,
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
    from contra_bc.ui import err, print_json, print_paths, stdin_paths, table

    paths = stdin_paths(paths)
    report = build(paths, cfg.out, BuildOptions.from_config(cfg), log=lambda msg: err.print(msg, soft_wrap=True))
    if cfg.json:
        print_json(report)
    else:
        table(table_rows(report), "build-dataset")
        for line in summary_lines(report, cfg.out):
            err.print(line, soft_wrap=True)
        print_paths([cfg.out])
    if any(r.get("verify") in ("diverged", "error") for r in report["recordings"]):
        raise typer.Exit(1)


@app.command()
@handle_errors
@command(C.TrainConfig, merged=True)
def train(
    dataset: Path = typer.Argument(..., help="Dataset directory from `contra-bc build-dataset` (- reads it from stdin)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of training options (keys as the "
                                          "long options with _; a [train] table or top level). Flags win."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint, exactly."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    flags: dict = None,
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
    out = flags.pop("out")
    tc = train_lib.config_from_options(flags, dataset=dataset, out=Path(out) if out else None, config_file=config,
                                       resume=resume)
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
@command(C.PlayConfig)
def play(
    checkpoint: str = typer.Argument(..., help="Checkpoint dir or RUN dir (follows RUN/last; - reads it from stdin); `bot:random` plays "
                                     "the random baseline alone."),
    cfg: C.PlayConfig = None,
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

    `contra-bc play runs/train1 --episodes 50 --workers 2 --sticky 0.25 --noop-max 30 --expert bot:expert-steady --out runs/eval-sticky`

    **Perturbed evaluation.** From one start state the emulator is deterministic, so a policy that
    samples at a low temperature replays nearly the same episode every time, and its win rate measures
    one route. The standard robustness protocol of game agents perturbs it: `--sticky 0.25` (sticky
    actions, Machado et al. 2018: each step, with probability 0.25, the previous executed action runs
    instead of the chosen one) and `--noop-max 30` (0-30 steps with no button before the policy drives).
    A policy that only replays a route loses under them; one that reacts to the screen does not. Episode
    i of every policy (agent, random, `--expert`) draws the same perturbations from seed + i. Recordings
    keep the executed action (what replays) and the chosen one (what training learns).

    Exit codes: 0 ok, 2 bad input (unreadable checkpoint, buttons that do not fit the game), 130 interrupted.
    """
    from contra_bc import play as play_lib
    from contra_bc.formats import junit as junit_xml
    from contra_bc.ui import emit, err, print_json, print_paths, progress, stdin_path, table

    cfg.checkpoint = play_lib.checkpoint_argument(str(stdin_path(checkpoint, "checkpoint")))
    play_lib.check_options(cfg)
    if cfg.junit is not None:
        junit_xml.check_target(cfg.junit)
    play_lib.resolve_pacing(cfg)  # loads and checks the checkpoint before anything starts
    if not cfg.fast and cfg.episodes == 1 and not cfg.corrector:
        if cfg.out is None:
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
        if cfg.json:
            emit({"event": "episode", **{k: v for k, v in episode.items() if k != "latency_ms"}})

    with progress() as bar:
        task = bar.add_task("play", total=play_lib.episode_count(cfg))
        report = play_lib.evaluate(cfg, on_result=ended)
    if cfg.junit is not None:
        junit_xml.write(cfg.junit, f"play {cfg.game}", junit_xml.episode_cases(report["episodes_detail"]))
    if cfg.json:
        print_json(report)
    else:
        perturbed = f", {cfg.perturbation.describe()}" if cfg.perturbation.active else ""
        table(play_lib.evaluation_rows(report),
              f"play {cfg.game} ({report['episodes']} episodes, until {cfg.until}{perturbed})")
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
@command(C.CausalityConfig)
def causality_score(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint dir or RUN dir (follows RUN/last)."),
    dataset: Optional[Path] = typer.Argument(None, help="Dataset from `contra-bc build-dataset`."),
    cfg: C.CausalityConfig = None,
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
    if cfg.toy:
        result = causality.toy_experiment(causality.ToyConfig(steps=cfg.toy_steps, seed=cfg.seed))
        result["png"] = str(causality.draw_toy(result, cfg.plot or Path("causality-toy.png")))
        if cfg.json:
            print_json(result)
        else:
            table(causality.toy_rows(result), "toy causality (higher = more causal)")
            err.print(f"curves: {result['png']}")
        return
    if cfg.over is not None:
        if (dataset or checkpoint) is None:
            raise UserError("--over RUN needs the dataset: `contra-bc causality-score --over RUN DATASET`.")
        result = causality.trace_over(cfg.over, dataset or checkpoint, cfg, cfg.plot or Path("causality-over.png"))
        if cfg.json:
            print_json(result)
        else:
            table(causality.over_rows(result), "causality over training")
            err.print(f"chart: {result['png']}")
        return
    if checkpoint is None or dataset is None:
        raise UserError("causality-score needs CHECKPOINT and DATASET, e.g. "
                        "`contra-bc causality-score runs/train1 data/ds` (or --toy, or --over RUN DATASET).")
    result = causality.causality_score(checkpoint, dataset, cfg)
    if cfg.json:
        print_json(result)
        return
    table(causality.score_rows(result), f"causality score (p={cfg.p}, C={cfg.chunks}, split {cfg.split})")
    warning = causality.too_few_swaps(result, cfg.p)
    if warning:
        err.print(f"[yellow]warning:[/] {warning}")


# ---------------------------------------------------------------- render
@app.command("render")
@handle_errors
@command(C.RenderConfig)
def render(
    paths: List[Path] = typer.Argument(..., help="1 to 4 recordings, or a folder of them (- reads paths from stdin, "
                                       "one per line). Several play side by side, step k of each in one frame."),
    cfg: C.RenderConfig = None,
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
        summary = render_lib.render(paths, cfg.out, speed=cfg.speed, scale=cfg.scale, start=cfg.start, stop=cfg.stop,
                                    labels=cfg.label or None, overlay=not cfg.no_overlay,
                                    on_frame=lambda done, total: bar.update(task, completed=done, total=total))
    if cfg.json:
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
@command(C.ExportConfig)
def export(
    recording: Path = typer.Argument(..., help="A complete recording directory (- reads it from stdin)."),
    cfg: C.ExportConfig = None,
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

    summary = export_recording(stdin_path(recording, "recording"), cfg.to)
    if cfg.json:
        print_json(summary)
        return
    table([summary], "export")
    err.print(f"wrote {cfg.to}")
    print_paths([cfg.to])


# ---------------------------------------------------------------- import
import_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown",
                         help="Datasets of frames and actions made elsewhere, as recordings (no start state: "
                              "replay-verify reports them unverifiable, exit 3; build-dataset and train take them).")
app.add_typer(import_app, name="import")


@import_app.command("smb")
@handle_errors
@command(C.ImportSmbConfig)
def import_smb(
    paths: List[Path] = typer.Argument(..., help="Episode folders of the Super Mario Bros. gameplay dataset, or "
                                       "folders of them (- reads paths from stdin)."),
    cfg: C.ImportSmbConfig = None,
):
    """The public Super Mario Bros. gameplay dataset (smbdataset) as recordings, one per episode.

    Each frame's 256x240 indexed PNG becomes a lossless RGB video frame, its action byte (A, up, left,
    B, start, right, down, select from MSB to LSB) the NES buttons, its RAM chunk the recording's
    variables (SuperMarioBros-Nes-v0: world, stage, lives, page, x), the folder's outcome the last
    step's event. Step k pairs the picture of frame k+1 with the buttons of frame k+2 (the collector
    saves each frame's picture after the buttons applied to it). The dataset's RAM chunks that its
    collector wrote with 0x0D before every 0x0A are repaired (counted as `ram_repaired`). Every
    episode is checked before any is written.

    Example: `contra-bc import smb data-smb/ --out recordings/smb`

    Exit codes: 0 imported, 2 bad input (a name that does not parse, a PNG without its chunks,
    missing frames, two episodes in one folder, an existing --out), 130 interrupted (nothing is kept).
    """
    from contra_bc import importer
    from contra_bc.ui import emit, err, print_json, print_paths, stdin_paths, table

    metas = importer.import_smb(stdin_paths(paths), cfg.out,
                                on_episode=(lambda m: emit({"event": "recording", **m})) if cfg.json else None)
    if cfg.json:
        print_json(metas)
        return
    table(importer.table_rows(metas), "import smb")
    err.print(f"wrote {len(metas)} recording(s) under {cfg.out}")
    print_paths(m["path"] for m in metas)


@import_app.command("frames")
@handle_errors
@command(C.ImportFramesConfig)
def import_frames(
    folder: Path = typer.Argument(..., help="A folder of frame images (PNG or BMP), in name order."),
    cfg: C.ImportFramesConfig = None,
):
    """A folder of frames and a table of one action per frame as one recording.

    Row i of the table is the action chosen while seeing frame i (the recording's own convention);
    the last frame closes the last step, so its row may be left out. Frames are stored losslessly
    (JPEG is refused). The recording has no emulator start state (`replay-verify`: unverifiable).

    Example: `contra-bc import frames run1/frames --actions run1/actions.csv --game Outpost-Nes --out recordings/run1`

    Exit codes: 0 imported, 2 bad input (too few actions, frames of different sizes, an unknown
    button, an existing --out).
    """
    from contra_bc import importer
    from contra_bc.ui import err, print_json, print_paths, table

    meta = importer.import_frames(folder, cfg.actions, cfg.out, game_name=cfg.game, hz=cfg.hz, outcome=cfg.outcome)
    if cfg.json:
        print_json(meta)
        return
    table(importer.table_rows([meta]), "import frames")
    err.print(f"wrote {meta['path']}")
    print_paths([meta["path"]])


# ---------------------------------------------------------------- report
@app.command()
@handle_errors
@command(C.ReportConfig)
def report(
    run_dir: Path = typer.Argument(..., help="A pipeline run directory (what examples/demo.sh writes; - reads it from stdin)."),
    cfg: C.ReportConfig = None,
):
    """Sum up a pipeline run: agent vs random vs expert, downsample-check, causality.

    Reads the JSON each stage wrote into RUN_DIR and writes RUN_DIR/report.md with the
    pictures; prints the comparison table.

    Example: `contra-bc report demo-out`

    Exit codes: 0 written, 2 not a run directory or unreadable stage output.
    """
    from contra_bc import report as report_lib
    from contra_bc.ui import err, people, print_json, print_paths, stdin_path, table

    run_dir = stdin_path(run_dir, "run directory")
    data = report_lib.build_report(run_dir)
    path = report_lib.write_markdown(data, run_dir)
    if cfg.json:
        print_json(data)
        return
    if data["downsample"]:
        people.print(f"[bold]{data['downsample']['headline']}[/]")
    table(report_lib.policy_rows(data), "agent vs random vs expert")
    err.print(f"report: {path}")
    print_paths([path])


if __name__ == "__main__":
    app()
