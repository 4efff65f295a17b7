"""Every command's options, declared once: a typed dataclass per command.

A field made with ``option(...)`` is one option: its default, its flags, its help, its range or
choices. From it come the typer option (`contra_bc.options.command`), the check of its value
(`options.check`), and for `train` the `--config` key and the merge with a resumed run. A field
without flags is set by the command itself (a positional argument, a derived value).

This module imports nothing heavy, so `contra-bc --help` stays instant; the library modules take
these classes as their configuration (`train.train(TrainConfig)`, `play.evaluate(PlayConfig)`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contra_bc.options import option

# ranges used by many options
AT_LEAST_1 = {"low": 1}
NOT_NEGATIVE = {"low": 0}
POSITIVE = {"low": 0, "low_ok": False}
PROBABILITY = {"low": 0, "high": 1}
UNTIL = ("life", "level", "game-over", "never")
EVAL_SEED = 1_000_000  # evaluation seeds start here, far from the small seeds that make training data


def _json(what: str):
    return option(False, "--json", help=what)


def _workers(what: str = "Parallel processes (0: one per core)."):
    return option(0, "--workers", help=what, **NOT_NEGATIVE)


@dataclass
class GamesConfig:
    json: bool = _json("Print JSON instead of a table.")


@dataclass
class RecordConfig:
    input: str | None = option(None, "--input", "-i", help="bot:NAME, an action file (.csv/.parquet: column `action` "
                               "bitmask or `buttons` like RIGHT+A), or a movie (.bk2/.fm2). Without it, opens the "
                               "interactive window for a human.")
    game: str | None = option(None, "--game", "-g", help="Game from `contra-bc games` (default: Outpost-Nes; a movie "
                              "brings its own).")
    state: str | None = option(None, "--state", "-s", help="Start state (default: the game's first).")
    out: Path = option(..., "--out", "-o", help="New recording directory; a session folder of OUT/episode-NNNN with "
                       "--episodes or the window.", output_dir=True)
    hz: float | None = option(None, "--hz", help="Steps per second the recording represents and the pace of the window "
                              "(default 20; a movie: its frame rate / frames per step).", **POSITIVE)
    frames_per_step: int = option(1, "--frames-per-step", help="Emulator frames per step.", **AT_LEAST_1)
    max_steps: int | None = option(None, "--max-steps", help="Stop an episode after this many steps (default: 6000 "
                                   "scripted, no limit in the window).", **AT_LEAST_1)
    seed: int = option(0, "--seed", help="Seed for bots (episode i uses seed+i).", **NOT_NEGATIVE)
    episodes: int | None = option(None, "--episodes", help="Record this many episodes into OUT/episode-NNNN "
                                  "(default: 1 scripted; in the window, until you stop).", **AT_LEAST_1)
    until: str = option("level", "--episode-until", help="End an episode at: life, level, game-over, never.",
                        choices=UNTIL)
    realtime: bool = option(False, "--realtime", help="Pace scripted input at --hz (default: as fast as possible).")
    sticky: float = option(0.0, "--sticky", help="Bots: each step, with this probability, the previous executed "
                           "action runs instead of the bot's choice (sticky actions; 0.25 is the standard). The bot's "
                           "choice is kept beside it and is what training learns.", low=0, high=1, high_ok=False)
    noop_max: int = option(0, "--noop-max", help="Bots: a random 0..N steps with no button before the bot starts "
                           "(no-op start; 30 is the standard). Drawn from the episode's seed.", **NOT_NEGATIVE)
    workers: int = _workers("Parallel processes for --episodes (0: one per core).")
    scale: int = option(3, "--scale", help="Window: integer zoom, nearest-neighbour pixels.", low=1, high=8)
    keymap: Path | None = option(None, "--keymap", help="Window: TOML file overriding the key map ([keys] and "
                                 "[gamepad] tables; see below).")
    countdown: float = option(3.0, "--countdown", help="Window: seconds of countdown before each episode and after "
                              "a pause.", **NOT_NEGATIVE)
    resume: bool = option(False, "--resume", help="Window: continue the session in OUT; new episodes are numbered "
                          "after the ones there, which are never touched.")
    json: bool = _json("Print JSON Lines: one line per recording as it is written, then the list of all metas.")


@dataclass
class ReplayVerifyConfig:
    check_video: bool = option(False, "--check-video", help="Also decode the video and check every frame.")
    report_dir: Path = option(Path("replay-report"), "--report-dir", help="Where divergence PNGs go.", output_dir=True)
    workers: int = _workers()
    json: bool = _json("Print JSON Lines: one line per recording as it finishes, then the list of all results.")
    junit: Path | None = option(None, "--junit", help="Also write a JUnit XML report here (one testcase per "
                                "recording; a divergence is a failure naming its step and PNG).")


@dataclass
class DownsampleConfig:
    mode: str = option("max", "--mode", help="Pooling: max (recap's), first, last, majority.",
                       choices=("max", "first", "last", "majority"))
    from_hz: float | None = option(None, "--from-hz", help="Step rate of the recordings (default: each recording's "
                                   "own hz, e.g. 60).", **POSITIVE)
    to_hz: float = option(20.0, "--to-hz", help="Rate of the pooling recorder (20 Hz = 50 ms windows).", **POSITIVE)
    window: int | None = option(None, "--window", help="Pooling window in steps, overriding from/to Hz (1 = control: "
                                "nothing changes).", **AT_LEAST_1)
    report_dir: Path = option(Path("downsample-report"), "--report-dir", help="Where the divergence PNGs go.",
                              output_dir=True)
    workers: int = _workers()
    json: bool = _json("Print JSON Lines: one line per recording as it finishes, then the summary and all results.")
    junit: Path | None = option(None, "--junit", help="Also write a JUnit XML report here (one testcase per "
                                "recording; an unpoolable recording is an error).")


@dataclass
class AnnotateConfig:
    model: str | None = option(None, "--model", "-m", help="Gemini model (default: $CONTRA_BC_GEMINI_MODEL, else "
                               "gemini-3-flash-preview).")
    prompt: Path | None = option(None, "--prompt", help="Prompt file to use instead of the packaged annotate-v1.md "
                                 "(a `prompt-version: NAME` line names its version).")
    out_dir: Path | None = option(None, "--out-dir", help="Write DIR/<recording>.annotations.json instead of "
                                  "<recording>/annotations.json.", output_dir=True)
    from_table: Path | None = option(None, "--from-table", help="Import a hand-written `| Start | End | Text |` "
                                     "table (MM:SS) for ONE recording; no network.")
    window_seconds: float = option(60.0, "--window-seconds", help="Split recordings into clips this long.", low=5)
    sample_fps: float = option(5.0, "--sample-fps", help="Frames per second Gemini samples from the clip (its "
                               "default of 1 is too coarse for a fast game).", low=0, high=24, low_ok=False)
    media_resolution: str = option("medium", "--media-resolution", help="low, medium or high (tokens per frame).",
                                   choices=("low", "medium", "high"), lower=True)
    thinking_level: str = option("low", "--thinking-level", help="minimal, low, medium, high, or off.",
                                 choices=("minimal", "low", "medium", "high", "off"), lower=True)
    max_output_tokens: int = option(16384, "--max-output-tokens", help="Answer budget per clip (thinking included).",
                                    low=256)
    cooldown: float = option(8.0, "--cooldown", help="Seconds between instruction starts, enforced across clips.",
                             **NOT_NEGATIVE)
    inline_max_mb: float = option(15.0, "--inline-max-mb", help="Send clips whose request would exceed this many MB "
                                  "through the Files API instead of inline (0: always Files API).", **NOT_NEGATIVE)
    timeout: float = option(300.0, "--timeout", help="Seconds before one HTTP request is abandoned (then retried).",
                            low=1)
    retries: int = option(5, "--retries", help="Retries for 429, 5xx and network errors.", **NOT_NEGATIVE)
    retry_base: float = option(2.0, "--retry-base", help="First backoff delay in seconds.", hidden=True, **POSITIVE)
    file_active_timeout: float = option(300.0, "--file-active-timeout", help="Seconds to wait for an uploaded clip "
                                        "to become ACTIVE.", **POSITIVE)
    concurrency: int = option(4, "--concurrency", help="Recordings annotated at the same time.", **AT_LEAST_1)
    # Gemini 3 Flash preview list prices, USD per million tokens (standard tier, checked when this was written)
    price_input: float = option(0.50, "--price-input", help="USD per million input tokens (for the cost report).",
                                **NOT_NEGATIVE)
    price_output: float = option(3.00, "--price-output", help="USD per million output+thinking tokens.",
                                 **NOT_NEGATIVE)
    force: bool = option(False, "--force", help="Re-annotate even if an annotations file is already there.")
    batch: bool = option(False, "--batch", help="Send all clips as Gemini Batch API jobs (half price, slower: "
                         "hours), poll until done.")
    batch_timeout: float = option(86400.0, "--batch-timeout", help="Seconds to wait for a batch job; it is cancelled "
                                  "after that (or on Ctrl-C).", **POSITIVE)
    json: bool = _json("Print JSON Lines: one line per recording as it is done, then the list of all results.")


@dataclass
class BuildConfig:
    out: Path = option(..., "--out", "-o", help="Dataset directory to create (or extend with --append).",
                       output_dir=True)
    annotations: Path | None = option(None, "--annotations", help="Folder with NAME.annotations.json files (default: "
                                      "annotations.json inside each recording).")
    require_annotations: bool = option(False, "--require-annotations", help="A recording without annotations is an "
                                       "error.")
    val_fraction: float = option(0.1, "--val-fraction", help="Share of episodes for validation (at least one when "
                                 "there are 2+).", low=0, high=1, high_ok=False)
    seed: int = option(0, "--seed", help="Seed of the train/val split.", **NOT_NEGATIVE)
    frame_size: int = option(192, "--frame-size", help="Model frame size (square), via preprocess_frame.",
                             low=8, high=1024)
    verify: bool = option(False, "--verify", help="Replay-verify each recording first; drop those that diverge.")
    include_incomplete: bool = option(False, "--include-incomplete", help="Keep the recorded prefix of interrupted "
                                      "recordings.")
    append: bool = option(False, "--append", help="Add the recordings to the existing dataset at --out.")
    no_filter: bool = option(False, "--no-filter", help="Keep episodes the quality filter would drop.")
    aux: str = option("", "--aux", help="Comma-separated game variables to store per frame (e.g. enemy_bullet_x_0,"
                      "enemy_bullet_on_0): train teaches the image encoder to read them off the screen (an auxiliary "
                      "loss; play never uses them).")
    max_hold_fraction: float = option(0.9, "--max-hold-fraction", help="Drop an episode whose non-direction button "
                                      "is held without release for more than this share of its steps.",
                                      low=0, high=1, low_ok=False)
    min_changes_per_minute: float = option(20.0, "--min-changes-per-minute", help="Drop an episode whose action "
                                           "changes fewer times per minute.", **NOT_NEGATIVE)
    filter_min_steps: int = option(100, "--filter-min-steps", help="Episodes shorter than this are not filtered.",
                                   **NOT_NEGATIVE)
    workers: int = _workers()
    json: bool = _json("Print the build report as JSON.")


@dataclass
class TrainConfig:
    """`train`'s options; a `--config` TOML file and a resumed run's config.json hold the same keys."""

    dataset: str = ""                 # the positional argument
    resume: bool = False              # --resume (declared by the command: never read from a config file)
    out: str = option("", "--out", "-o", help="Run directory (checkpoints, metrics.jsonl, loss.png); required.",
                      output_dir=True)
    preset: str = option("tiny", "--preset", help="Model size: tiny, small, 150M, 300M, 600M, 1.2B.",
                         choices=("tiny", "small", "150M", "300M", "600M", "1.2B"))
    max_steps: int = option(200, "--max-steps", help="Optimizer steps (length of the LR schedule).", **AT_LEAST_1)
    stop_at: int | None = option(None, "--stop-at", help="Stop at this step with a checkpoint; `--resume` later "
                                 "continues the same schedule.", **AT_LEAST_1)
    batch_size: int = option(8, "--batch-size", help="Windows per micro-batch per process.", **AT_LEAST_1)
    grad_accum: int = option(1, "--grad-accum", help="Micro-batches per optimizer step.", **AT_LEAST_1)
    window: int | None = option(None, "--window", help="History T in steps: the attention window, in training and at "
                                "play (default: the preset's).", **AT_LEAST_1)
    sequence: int | None = option(None, "--sequence", help="Steps per training sequence (default 2 x --window), so "
                                  "later steps see context from beyond one window, as play does.", **AT_LEAST_1)
    jitter: bool = option(True, "--jitter/--no-jitter", help="Cut training sequences at new seeded offsets every "
                          "epoch.")
    text_dropout: float = option(0.5, "--text-dropout", help="Chance a training sequence is shown without its "
                                 "instructions, so the policy also plays without text.", **PROBABILITY)
    press_weight: float = option(1.0, "--press-weight", help="Loss weight of the steps where a button goes down (a "
                                 "jump starts, a shot): the moments the screen decides (1 = no extra weight).",
                                 low=1)
    press_slack: int = option(0, "--press-slack", help="Leave out of the loss the K steps before each rare press (a "
                              "jump start) where the button is still up: when within a few steps to take off is the "
                              "demonstrator's noise (0 = off).", **NOT_NEGATIVE)
    focus: int = option(1, "--focus", help="Show each training sequence that holds a rare press (a button going "
                        "down less than once per window: a jump start) this many times per epoch.", **AT_LEAST_1)
    change_horizon: int = option(0, "--change-horizon", help="H > 0: also learn, at every step, in how many steps "
                                 "(0..H-1, or later) each rarely pressed button next changes: a jump start coming, a "
                                 "tap ending (an auxiliary loss on the token the action is read from; 0 = off).",
                                 **NOT_NEGATIVE)
    change_weight: float = option(1.0, "--change-weight", help="Weight of the --change-horizon loss (with --init: "
                                  "the checkpoint's unless given).", **NOT_NEGATIVE)
    history_dropout: float = option(0.0, "--history-dropout", help="Chance each step's action is hidden from the "
                                    "steps after it in training (its tokens carry no action), so the policy reads "
                                    "what to do off the screen rather than copying its last action (0 = off).",
                                    low=0, high=1, high_ok=False)
    learn: str = option("chosen", "--learn", help="Which action of a step to learn: chosen (what the player chose) or "
                        "executed (what the emulator ran; they differ on steps a perturbation such as --sticky "
                        "changed). The action history the policy sees is always the executed one.",
                        choices=("chosen", "executed"))
    aux_weight: float = option(1.0, "--aux-weight", help="Weight of the auxiliary loss on a dataset built with --aux: "
                               "a head reads those game variables off each frame's image features (0 turns it off).",
                               **NOT_NEGATIVE)
    init: str | None = option(None, "--init", help="Start from the weights of this checkpoint or RUN (fine-tuning, "
                              "e.g. after a correction round): its preset, window and image encoder input (--image-pool and "
                              "--image-input, if given, must match it), a new optimizer and learning-rate schedule.")
    image_input: str = option("pool", "--image-input", help="How the image encoder takes the frame: pool (average k "
                              "x k pixels) or unshuffle (fold them into channels: every pixel reaches the encoder).",
                              choices=("pool", "unshuffle"))
    image_pool: int | None = option(None, "--image-pool", help="k: the image encoder takes the frame at 1/k its "
                                    "size (default: the preset's; small 2, 150M and up 1). 4 with --image-input "
                                    "unshuffle keeps every pixel at ~40% of the encoder's time at 2.", low=1, high=8)
    image_norm: str = option("group", "--image-norm", help="Image encoder norm: group (per frame) or batch (across "
                             "the batch, as older checkpoints).", choices=("group", "batch"))
    lr: float | None = option(None, "--lr", help="Peak learning rate (default: the preset's; paper D.2: 1e-4, 3e-5 "
                              "for 1.2B).", **POSITIVE)
    weight_decay: float = option(1e-4, "--weight-decay", help="AdamW weight decay (matrices only).", **NOT_NEGATIVE)
    betas: tuple = option((0.9, 0.999), "--betas", help="AdamW betas, two numbers.", tuple_of=float, length=2)
    warmup_steps: int = option(20, "--warmup-steps", help="Linear learning-rate warmup steps.", **NOT_NEGATIVE)
    min_lr_ratio: float = option(0.1, "--min-lr-ratio", help="The cosine schedule ends at this share of the peak.",
                                 **PROBABILITY)
    grad_clip: float = option(1.0, "--grad-clip", help="Clip the gradient norm to this.", **POSITIVE)
    z_loss: float = option(1e-4, "--z-loss", help="Weight of the z-loss (log-sum-exp of the logits, squared).",
                           **NOT_NEGATIVE)
    augment: bool = option(True, "--augment/--no-augment", help="Colour/noise/blur/shift augmentation.")
    seed: int = option(0, "--seed", help="Seed for init, data order and augmentation.", **NOT_NEGATIVE)
    device: str = option("auto", "--device", help="auto, cpu, cuda, cuda:N.")
    compile: bool | None = option(None, "--compile/--no-compile", help="torch.compile the model (default: on CUDA, "
                                  "with fused FlexAttention masks; not on CPU).")
    log_every: int = option(10, "--log-every", help="Write a train line to metrics.jsonl every N steps.", **AT_LEAST_1)
    eval_every: int = option(100, "--eval-every", help="Validate every N steps.", **AT_LEAST_1)
    eval_batches: int = option(8, "--eval-batches", help="Validation batches per validation; more count more of the "
                               "rare presses.", **AT_LEAST_1)
    save_every: int = option(100, "--save-every", help="Checkpoint every N steps.", **AT_LEAST_1)
    workers: int = option(2, "--workers", help="Data-loader worker processes.", **NOT_NEGATIVE)
    text_encoder: str = option("auto", "--text-encoder", help="auto, minilm, hashed, or any sentence-transformers "
                               "model name (from the local cache) or folder.")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Options from a config file, a saved run or flags: unknown keys, types and ranges checked."""
        import dataclasses

        from contra_bc.errors import UserError
        from contra_bc.options import check

        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"unknown training option(s) {', '.join(unknown)} in the config; valid keys: "
                            f"{', '.join(sorted(names))}.")
        d = {k: tuple(v) if k == "betas" and isinstance(v, list) else v for k, v in d.items()}
        check(cls, d, "training options (command line, --config file or the run's config.json)")
        return cls(**d)


@dataclass
class PlayConfig:
    """`play`'s options; ``checkpoint`` is its argument (None: the random baseline alone)."""

    checkpoint: str | None = None
    game: str = option("Outpost-Nes", "--game", "-g", help="Game from `contra-bc games`; its buttons must be the "
                       "checkpoint's.")
    state: str | None = option(None, "--state", "-s", help="Start state (default: the game's first).")
    out: str | None = option(None, "--out", "-o", help="New session folder: OUT/agent-NNNN, OUT/random-NNNN (and "
                             "OUT/expert-NNNN) recordings, OUT/evaluation.json. Required in the window.",
                             output_dir=True)
    hz: float | None = option(None, "--hz", help="Decisions per second (default: the checkpoint's dataset rate, else "
                              "20); the window runs at this pace.", **POSITIVE)
    frames_per_step: int | None = option(None, "--frames-per-step", help="Emulator frames per decision (default: the "
                                         "checkpoint's dataset, else 1).", **AT_LEAST_1)
    fast: bool = option(False, "--fast", help="Headless, as fast as inference allows (implied by --episodes > 1).")
    temperature: float = option(1.0, "--temperature", "-t", help="Sampling temperature (0 = argmax).",
                                **NOT_NEGATIVE)
    seed: int = option(EVAL_SEED, "--seed", help="Sampling seed; episode i uses seed+i. The default keeps evaluation "
                       "seeds apart from the (small) seeds that make training data.", **NOT_NEGATIVE)
    instruction: str | None = option(None, "--instruction", help="Text instruction for the whole run (embedded once, "
                                     "then cached).")
    episodes: int = option(1, "--episodes", "-n", help="Headless evaluation episodes.", **AT_LEAST_1)
    workers: int = option(1, "--workers", "-w", help="Parallel spawn processes (one emulator each).", **AT_LEAST_1)
    baseline: str = option("random", "--baseline", help="Also run this baseline for comparison: random (bot:random, "
                           "RandomMomentum) or none.", choices=("random", "none"))
    expert: str | None = option(None, "--expert", help="Also play this scripted player (bot:NAME, e.g. "
                                "bot:expert-steady) on the same seeds and perturbations: the reference a strong "
                                "player reaches.")
    max_steps: int = option(6000, "--max-steps", help="Stop an episode after this many steps.", **AT_LEAST_1)
    until: str = option("level", "--episode-until", help="End an episode at: life, level, game-over, never.",
                        choices=UNTIL)
    sticky: float = option(0.0, "--sticky", help="Sticky actions: each step, with this probability, the previous "
                           "executed action runs instead of the chosen one (0.25 is the standard robustness protocol; "
                           "the policy is told what ran).", low=0, high=1, high_ok=False)
    noop_max: int = option(0, "--noop-max", help="No-op start: a random 0..N steps with no button before the policy "
                           "drives (30 is the standard).", **NOT_NEGATIVE)
    threads: int = option(1, "--threads", help="Torch threads per process (1 is fastest for one decision at a time "
                          "on a busy machine).", **AT_LEAST_1)
    corrector: str | None = option(None, "--corrector", help="bot:NAME that takes over when the agent's course dies "
                                   "within --lookahead steps (headless); its steps are recorded with actor "
                                   "\"corrector\" and trained on, the agent's are not.")
    lookahead: int = option(20, "--lookahead", help="Steps the corrector plays the agent's current action ahead to "
                            "see whether it dies.", **AT_LEAST_1)
    hold: int = option(20, "--hold", help="Steps a corrector drives at least before it hands back (then on the first "
                       "step where the agent's course is safe).", **AT_LEAST_1)
    json: bool = _json("Print JSON Lines: one line per episode as it ends, then the evaluation report.")
    junit: Path | None = option(None, "--junit", help="Also write a JUnit XML report of the evaluation (one testcase "
                                "per episode; an episode not won is a failure).")

    @property
    def perturbation(self):
        from contra_bc.perturb import Perturbation

        return Perturbation(self.sticky, self.noop_max)


@dataclass
class CausalityConfig:
    split: str = option("val", "--split", help="Dataset split whose windows are scored.", choices=("train", "val"))
    chunks: int = option(4, "--chunks", "-C", help="Equal chunks per window; each is scored at its last valid step.",
                         **AT_LEAST_1)
    p: float = option(0.5, "--p", help="Probability that a frame is swapped for another scene's frame.",
                      **PROBABILITY)
    batch: int = option(8, "--batch", help="Windows per batch (donor frames come from the same batch).", **AT_LEAST_1)
    batches: int = option(4, "--batches", help="Batches per repeat.", **AT_LEAST_1)
    seed: int = option(0, "--seed", help="Seed of window order and perturbations (repeat r uses seed+r).",
                       **NOT_NEGATIVE)
    repeats: int = option(1, "--repeats", "-R", help="Repeat with R seeds; report mean and spread.", **AT_LEAST_1)
    min_distance: int | None = option(None, "--min-distance", help="A same-episode donor frame must be at least this "
                                      "many steps away (default: one window length).", **AT_LEAST_1)
    over: Path | None = option(None, "--over", help="Trace the score over every checkpoint of this RUN dir (then the "
                               "one positional argument is the dataset).")
    toy: bool = option(False, "--toy", help="Run the paper's toy braking problem (§5.1.1) instead.")
    toy_steps: int = option(4000, "--toy-steps", help="SGD steps of the toy problem.", **AT_LEAST_1)
    plot: Path | None = option(None, "--plot", help="PNG to draw (--over: score and validation loss over training, "
                               "default causality-over.png; --toy: default causality-toy.png).")
    json: bool = _json("Print the result as JSON.")
    window: int | None = None  # steps per window; default: chunks x the policy's trained history (library use)


@dataclass
class RenderConfig:
    out: Path = option(..., "--out", "-o", help="The video to write: NAME.mp4 (H.264, plays in browsers), NAME.webm "
                       "(VP9) or NAME.gif (short clips). Never overwritten.")
    speed: float = option(1.0, "--speed", help="1 plays at the recording's real speed (its hz steps a second, one "
                          "frame per step); 0.5 half as fast, 2 twice.", **POSITIVE)
    scale: int = option(2, "--scale", help="Zoom of the game frames (nearest neighbour).", low=1, high=16)
    start: str | None = option(None, "--from", help="First step shown: a step (120), seconds (6s, 6.5s) or MM:SS "
                               "(0:06). Default: step 0.")
    stop: str | None = option(None, "--to", help="Stop before this step (--from is shown, --to is not); the same forms "
                              "as --from. Default: the end of the longest recording.")
    label: list | None = option(None, "--label", help="A label per recording, in order (repeat the option). Default: "
                                "each recording's folder name.", list_of=str)
    no_overlay: bool = option(False, "--no-overlay", help="Only the game frames: no labels, controller, actor, "
                              "instruction, event or step counter.")
    json: bool = _json("Print the summary as JSON.")


@dataclass
class ExportConfig:
    to: Path = option(..., "--to", help="The movie to write: NAME.bk2 or NAME.fm2 (never overwritten).")
    json: bool = _json("Print the summary as JSON.")


@dataclass
class ImportSmbConfig:
    out: Path = option(..., "--out", "-o", help="New folder: one recording per episode, OUT/<episode folder name>.",
                       output_dir=True)
    json: bool = _json("Print JSON Lines: one line per recording as it is written, then the list of all metas.")


@dataclass
class ImportFramesConfig:
    actions: Path = option(..., "--actions", help="CSV or parquet of one action per frame: a column `action` "
                           "(bitmask over the game's buttons) or `buttons` (RIGHT+A).")
    game: str = option(..., "--game", "-g", help="Game from `contra-bc games` whose buttons the actions press.")
    hz: float = option(60.0, "--hz", help="Steps per second (one frame is one step).", **POSITIVE)
    outcome: str = option("none", "--outcome", help="How the episode ended: win, death, game_over or none.",
                          choices=("win", "death", "game_over", "none"))
    out: Path = option(..., "--out", "-o", help="The new recording directory.", output_dir=True)
    json: bool = _json("Print the recording's meta as JSON.")


@dataclass
class ReportConfig:
    json: bool = _json("Print the report as JSON.")
