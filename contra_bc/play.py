"""`contra-bc play`: run a trained policy in the emulator, evaluate it, hand control to a human.

One decision per step: the screen goes through ``contra_bc.preprocess.preprocess_frame`` (the
same function build-dataset uses), the policy picks an action with its KV cache (sliding
window = trained history, so a step costs the same at step 10 and step 10,000), and the
emulator holds that action for ``frames_per_step`` frames.

Every episode is written as a recording (format v1, ``source="agent"``; rows by the policy
have actor ``agent``, rows by a human who took over have actor ``human``), so replay-verify,
annotate and build-dataset accept it. A session folder OUT holds:

    OUT/agent-NNNN/       episode NNNN played by the policy (seed = --seed + NNNN)
    OUT/random-NNNN/      episode NNNN of the random baseline (source "script")
    OUT/expert-NNNN/      episode NNNN of the reference player (--expert bot:NAME; source "script")
    OUT/evaluation.json   the evaluation report (headless runs)

The random baseline is ``contra_bc.bots.basic.RandomMomentum`` (the recorder's ``bot:random``:
random button combinations without START/SELECT, each held 1-12 steps), seeded like the agent.
``--sticky`` and ``--noop-max`` (contra_bc.perturb) perturb every policy of a run alike: episode i
of each draws its no-op start and sticky steps from seed + i.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contra_bc.config import PlayConfig
from contra_bc.emulator import digest64, get_game, level_start
from contra_bc.episode import EpisodeEnd, EpisodeRunner, run_episode
from contra_bc.options import check
from contra_bc.perturb import NOOP
from contra_bc.takeover import BotActor, HumanTakeover
from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.results import repeated, write_evaluation
from contra_bc.preprocess import preprocess_frame



@dataclass
class PlayJob:
    """One episode (picklable for spawn workers): the run's options and what is this episode's own.

    ``kind``: "agent" plays ``cfg.checkpoint``, "random" the random baseline, "expert" ``cfg.expert``;
    episode i of every kind uses seed ``cfg.seed + i`` (the same perturbation draws)."""

    cfg: PlayConfig
    kind: str = "agent"
    episode: int = 0
    out: str | None = None
    frames_per_step: int = 1
    hz: float = 20.0

    @property
    def seed(self) -> int:
        return self.cfg.seed + self.episode

    @property
    def checkpoint(self) -> str | None:
        return self.cfg.checkpoint if self.kind == "agent" else None

    @property
    def bot(self) -> str | None:
        return self.cfg.expert if self.kind == "expert" else None

    @property
    def corrector(self) -> str | None:
        """bot:NAME that takes over when the agent's course dies (see takeover.py); agents only."""
        return self.cfg.corrector if self.kind == "agent" else None


# ---------------------------------------------------------------- the policy side

_POLICIES: dict = {}


def load_checked_policy(checkpoint: str, game_name: str):
    """Load a policy (cached per process) and check its buttons fit the game's."""
    from contra_bc.model.policy import load_policy

    key = str(checkpoint)
    if key not in _POLICIES:
        _POLICIES.clear()
        _POLICIES[key] = load_policy(checkpoint, device="cpu")
    policy = _POLICIES[key]
    check_buttons(policy, get_game(game_name), checkpoint)
    return policy


def check_buttons(policy, game, checkpoint) -> None:
    """UserError unless the checkpoint's action space is exactly this game's buttons."""
    mine = [b for b in (policy.buttons or [])]
    theirs = list(game.buttons)
    if mine != theirs:
        raise UserError(
            f"The checkpoint {checkpoint} was trained on {policy.game} with buttons "
            f"{[b for b in mine if b]} ({len(mine)} slots), but {game.name} has buttons "
            f"{[b for b in theirs if b]} ({len(theirs)} slots): its actions would press the wrong "
            f"buttons. Play it on a game of the same platform (--game {policy.game}) or train a "
            f"checkpoint on {game.name} recordings.")


def policy_checkpoint_info(policy) -> dict:
    """What the checkpoint's dataset used: frames_per_step and hz (steps per second; `fps` in checkpoints
    made before datasets said hz)."""
    dataset = (getattr(policy, "config", None) or {}).get("dataset") or {}
    info = {}
    if dataset.get("frames_per_step"):
        info["frames_per_step"] = int(dataset["frames_per_step"])
    if dataset.get("hz") or dataset.get("fps"):
        info["hz"] = float(dataset.get("hz") or dataset["fps"])
    return info


class PolicyActor:
    """Preprocess the screen, ask the policy, time the decision."""

    name = "agent"

    def __init__(self, policy, temperature: float, seed: int, instruction: str | None):
        import torch

        self.policy = policy
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(int(seed))
        self.instruction = instruction
        self.latencies_ms: list[float] = []

    def reset(self, emu) -> None:
        self.policy.reset(instruction=self.instruction)

    def act(self, emu, screen: np.ndarray) -> int:
        t0 = time.perf_counter()
        frame = preprocess_frame(screen, self.policy.frame_size)
        action, _info = self.policy.act(frame, temperature=self.temperature, generator=self.generator)
        self.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        return int(action)

    def watch(self, emu, screen: np.ndarray) -> None:
        """A step someone else drives from the start (a no-op start): the policy still sees the frame,
        so its context holds every step of the episode, as the dataset's rows do."""
        self.act(emu, screen)
        self.policy.observe_action(NOOP)

    def observe_override(self, action: int) -> None:
        """Someone or something else decided this step: the policy conditions on what was really done."""
        self.policy.observe_action(int(action))


def make_actor(job: PlayJob):
    game = get_game(job.cfg.game)
    if job.checkpoint is None and job.bot:
        from contra_bc.bots import make_bot

        return BotActor(make_bot(bot_name(job.bot), game, job.seed)), f"reference {job.bot} seed={job.seed}"
    if job.checkpoint is None:
        from contra_bc.bots.basic import RandomMomentum

        return BotActor(RandomMomentum(seed=job.seed, game=game)), f"baseline random (RandomMomentum) seed={job.seed}"
    policy = load_checked_policy(job.checkpoint, job.cfg.game)
    detail = f"policy {job.checkpoint} temperature={job.cfg.temperature} seed={job.seed}"
    if job.cfg.instruction:
        detail += f" instruction={job.cfg.instruction!r}"
    return PolicyActor(policy, job.cfg.temperature, job.seed, job.cfg.instruction), detail


# ---------------------------------------------------------------- one episode


def bot_name(spec: str, option: str = "--expert") -> str:
    """NAME of ``bot:NAME`` (UserError for anything else)."""
    if not spec.startswith("bot:"):
        raise UserError(f"{option} takes a bot, bot:NAME (e.g. bot:expert-steady), not {spec!r}.")
    return spec[4:]


def make_corrector(job: PlayJob, game):
    """The CorrectorTakeover of ``--corrector bot:NAME`` (None without one)."""
    if not job.corrector:
        return None
    from contra_bc.bots import make_bot
    from contra_bc.takeover import CorrectorTakeover

    return CorrectorTakeover(make_bot(bot_name(job.corrector, "--corrector"), game, job.seed), job.cfg.lookahead,
                             job.cfg.hold)


def episode_metrics(runner: EpisodeRunner, end: EpisodeEnd, actor, meta: dict | None, wall_s: float,
                    human_steps: int = 0, corrector=None) -> dict:
    lat = np.asarray(actor.latencies_ms, dtype=np.float64)
    variables = runner.variables
    return {
        "episode": None,
        "outcome": runner.final_outcome(),
        "win": runner.counts["win"] > 0,
        "progress": int(end.max_progress),
        "score": int(variables["score"]) if "score" in variables else None,
        "deaths": int(runner.counts["death"]),
        "steps": int(runner.steps),
        "human_steps": int(human_steps),
        "corrector_steps": int(corrector.steps) if corrector else 0,
        "takeovers": int(corrector.takeovers) if corrector else 0,
        "wall_s": round(wall_s, 3),
        "latency_ms": [round(x, 3) for x in lat.tolist()],
        "recording": meta.get("path") if meta else None,
        "complete": meta.get("complete") if meta else True,
        "death_progress": [int(p) for p in end.death_progress],
    }


def play_episode(job: PlayJob) -> dict:
    """Play one headless episode as fast as inference allows; record it if job.out is set."""
    from contra_bc.parallel import shared_emulator
    from contra_bc.signals import stop_requested

    if stop_requested():  # Ctrl-C/SIGTERM ended an episode: this process starts no further episodes
        return {"episode": job.episode, "skipped": True, "end_reason": "interrupted", "steps": 0,
                "recording": None}

    if job.cfg.threads:
        import torch

        torch.set_num_threads(job.cfg.threads)
    game = get_game(job.cfg.game)
    actor, detail = make_actor(job)
    corrector = make_corrector(job, game)
    if corrector:
        detail += f" corrector={job.corrector} lookahead={job.cfg.lookahead} hold={job.cfg.hold}"
    emu = shared_emulator(game)
    runner = EpisodeRunner(emu, frames_per_step=job.frames_per_step, until=job.cfg.until)
    screen = runner.reset(job.cfg.state or game.default_state)
    actor.reset(emu)
    if corrector:
        corrector.reset(emu)
    perturbed = job.cfg.perturbation.episode(job.seed) if job.cfg.perturbation.active else None
    if perturbed:
        detail += f" perturbation={job.cfg.perturbation.describe()}"
    writer = None
    if job.out:
        writer = runner.open_writer(Path(job.out), source="agent" if job.checkpoint else "script",
                                    source_detail=detail, hz=job.hz,
                                    extra=_extra(job, perturbed))
    started = time.perf_counter()
    end = run_episode(runner, actor, screen, max_steps=job.cfg.max_steps, takeover=corrector, perturbed=perturbed,
                      writer=writer)
    meta = None
    if writer:
        summary = runner.summary()
        if corrector:
            summary.update(corrector_steps=corrector.steps, takeovers=corrector.takeovers)
        if perturbed:
            summary["perturbation"] = perturbed.summary()
        meta = writer.finish(runner.final_outcome(), complete=end.complete, end_reason=end.end_reason,
                             summary=summary)
        meta["path"] = str(job.out)
    result = episode_metrics(runner, end, actor, meta, time.perf_counter() - started, corrector=corrector)
    result["episode"] = job.episode
    result["seed"] = job.seed
    result["end_reason"] = end.end_reason
    result["trajectory"] = trajectory_id(end.actions)
    if perturbed:
        result["noop_steps"], result["sticky_steps"] = perturbed.noop_steps, perturbed.sticky_steps
    return result


def trajectory_id(actions: list[int]) -> int:
    """The hash of an episode's action sequence. The emulator is deterministic, so two episodes
    from the same start state with the same id are the same episode (an argmax policy plays one
    episode however many times it is run)."""
    return digest64(np.asarray(actions, "<i4").tobytes())


def _extra(job: PlayJob, perturbed=None) -> dict:
    extra = {"episode_until": job.cfg.until, "seed": job.seed, "checkpoint": job.checkpoint,
             "temperature": job.cfg.temperature if job.checkpoint else None, "instruction": job.cfg.instruction,
             "perturbation": perturbed.summary() if perturbed else None}
    if job.corrector:
        extra["corrector"] = {"bot": job.corrector, "lookahead": job.cfg.lookahead, "hold": job.cfg.hold}
    return extra


# ---------------------------------------------------------------- evaluation


def summarize(results: list[dict]) -> dict:
    """Win rate, progress, score, deaths, steps and decision latency over episodes."""
    lat = np.concatenate([np.asarray(r["latency_ms"], np.float64) for r in results]) if results else np.zeros(0)
    scores = [r["score"] for r in results if r["score"] is not None]
    steps = sum(r["steps"] for r in results)
    wall = sum(r["wall_s"] for r in results)

    def mean(xs):
        return round(float(np.mean(xs)), 3) if len(xs) else None

    wins = sum(bool(r["win"]) for r in results)
    progress = [int(r["progress"]) for r in results]
    low, high = wilson_interval(wins, len(results))
    return {
        "episodes": len(results),
        "distinct_episodes": len({r.get("trajectory") for r in results}),
        "wins": wins,
        "win_rate": mean([float(r["win"]) for r in results]),
        "win_rate_ci95": [round(low, 4), round(high, 4)] if results else None,
        "progress_mean": mean(progress),
        "progress_max": max(progress, default=None),
        "progress_quartiles": ([int(np.percentile(progress, q)) for q in (0, 25, 50, 75, 100)]
                               if progress else None),
        "progress": progress,
        "death_progress": sorted(p for r in results for p in r.get("death_progress", [])),
        "score_mean": mean(scores),
        "deaths_mean": mean([r["deaths"] for r in results]),
        "steps_mean": mean([r["steps"] for r in results]),
        "corrector_steps": sum(r.get("corrector_steps", 0) for r in results),
        "takeovers": sum(r.get("takeovers", 0) for r in results),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "steps_per_s": round(steps / wall, 1) if wall > 0 else None,
        "outcomes": {o: sum(r["outcome"] == o for r in results) for o in ("win", "death", "game_over", "none")},
    }


def repeat_warnings(report: dict) -> list[str]:
    """A line for each policy whose episodes were not all different: its win rate's interval
    counts repeats of one episode as independent evidence."""
    lines = []
    for name, s in report["policies"].items():
        distinct = repeated(s)
        if distinct is not None:
            lines.append(f"{name}: only {distinct} of its {s['episodes']} episodes differ (same actions from the "
                         f"same start state: the same episode). Its win rate and interval count the repeats as "
                         f"independent evidence. At temperature 0 every episode is the same one; a higher "
                         f"temperature makes them differ more.")
    return lines


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a win rate (sound at 0 and at n wins, unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def check_options(cfg: PlayConfig) -> None:
    """What the options' declarations cannot say alone (types and ranges: contra_bc/config.py)."""
    check(cfg)
    cfg.perturbation  # a bad --sticky or --noop-max fails here
    if cfg.out and not atomic.check_new_dir(Path(cfg.out)):
        raise UserError(f"{cfg.out} exists and is not empty; contra-bc never overwrites recordings. "
                        f"Choose a new --out folder.")
    game = get_game(cfg.game)
    if cfg.corrector:
        if not cfg.checkpoint:
            raise UserError("--corrector watches a trained agent: give CHECKPOINT (a run directory).")
        make_corrector(PlayJob(cfg), game)  # a bad name fails here
    if cfg.expert:
        from contra_bc.bots import make_bot

        make_bot(bot_name(cfg.expert), game, 0)  # a bad name fails here


def checkpoint_argument(checkpoint: str) -> str | None:
    """CHECKPOINT as given: a checkpoint or run path, or None for `bot:random` (the baseline alone)."""
    if checkpoint == "bot:random":
        return None
    if checkpoint.startswith("bot:"):
        raise UserError(f"{checkpoint}: only bot:random can stand in for a checkpoint.")
    return checkpoint


def episode_count(cfg: PlayConfig) -> int:
    """Episodes `evaluate` plays: the agent's and, beside them, the baseline's and the expert's."""
    return cfg.episodes * len(policy_kinds(cfg))


def policy_kinds(cfg: PlayConfig) -> list[str]:
    """The policies an evaluation plays, of agent (the checkpoint), random and expert (--expert)."""
    kinds = ["agent"] if cfg.checkpoint else []
    if cfg.baseline == "random" or not (cfg.checkpoint or cfg.expert):
        kinds.append("random")
    if cfg.expert:
        kinds.append("expert")
    return kinds


def window_rows(result: dict) -> list[dict]:
    """The summary table of `play_window`."""
    return [{k: result[k] for k in ("recording", "outcome", "steps", "agent_steps", "human_steps",
                                    "latency_ms_p50", "latency_ms_p99")}]


def evaluation_rows(report: dict) -> list[dict]:
    """The summary table of `evaluate`: one row per policy."""
    rows = []
    for name, s in report["policies"].items():
        ci = s.get("win_rate_ci95") or [0, 1]
        q = s.get("progress_quartiles") or [None] * 5
        distinct = repeated(s)
        rows.append({"policy": name, "episodes": s["episodes"] if distinct is None else f"{s['episodes']} ({distinct} different)",
                     "wins (95% CI)": f"{s['wins']} ({ci[0]:.0%}-{ci[1]:.0%})",
                     "progress mean (min/median/max)": f"{s['progress_mean']} ({q[0]}/{q[2]}/{q[4]})",
                     "score": s["score_mean"],
                     "deaths": s["deaths_mean"], "steps": s["steps_mean"],
                     "latency p50/p99 ms": f"{s['latency_ms_p50']}/{s['latency_ms_p99']}"})
        if report.get("corrector") and name == "agent":
            rows[-1]["corrector steps"] = f"{s['corrector_steps']} ({s['takeovers']} takeovers)"
    return rows


def resolve_pacing(cfg: PlayConfig) -> tuple[int, float]:
    """frames_per_step and hz: the options if given, else what the checkpoint's dataset used."""
    fps, hz = cfg.frames_per_step, cfg.hz
    if cfg.checkpoint:  # load here first: an unreadable or mismatched checkpoint fails before any worker starts
        info = policy_checkpoint_info(load_checked_policy(cfg.checkpoint, cfg.game))
        fps = fps or info.get("frames_per_step")
        hz = hz or info.get("hz")
    return int(fps or 1), float(hz or 20.0)


def evaluation_jobs(cfg: PlayConfig, frames_per_step: int, hz: float) -> list[tuple[str, PlayJob]]:
    """Episode i of every policy: seed + i, the same perturbation draws (contra_bc.perturb)."""
    return [(kind, PlayJob(cfg, kind, i, str(Path(cfg.out) / f"{kind}-{i:04d}") if cfg.out else None,
                           frames_per_step, hz))
            for kind in policy_kinds(cfg) for i in range(cfg.episodes)]


def evaluate(cfg: PlayConfig, on_result=None) -> dict:
    """Headless episodes of the policy and of the baseline, in parallel spawn workers.

    ``on_result(i, episode)`` is called as each episode ends (its row, with "policy" added)."""
    from contra_bc.parallel import run_many

    check_options(cfg)
    frames_per_step, hz = resolve_pacing(cfg)
    jobs = evaluation_jobs(cfg, frames_per_step, hz)
    if cfg.out and not atomic.claim_dir(Path(cfg.out)):
        raise UserError(f"{cfg.out} appeared with files in it while the evaluation started; contra-bc never "
                        f"overwrites recordings. Choose a new --out folder.")
    from contra_bc.signals import Interrupted

    stopped = None
    try:
        results = run_many(play_episode, [j for _, j in jobs], workers=min(max(1, cfg.workers), len(jobs)),
                           games=[cfg.game],
                           on_result=None if on_result is None else
                           lambda i, r: on_result(i, {"policy": jobs[i][0], **r}))
    except Interrupted as exc:  # report the episodes played so far, then exit 130
        stopped = exc
        results = [r if r is not None else {"episode": j.episode, "skipped": True, "end_reason": "interrupted"}
                   for r, (_, j) in zip(exc.results, jobs)]
    report = {"game": cfg.game, "state": cfg.state or get_game(cfg.game).default_state,
              "checkpoint": cfg.checkpoint, "episodes": cfg.episodes, "workers": cfg.workers,
              "frames_per_step": frames_per_step, "hz": hz, "max_steps": cfg.max_steps,
              "episode_until": cfg.until, "temperature": cfg.temperature, "seed": cfg.seed,
              "instruction": cfg.instruction,
              "corrector": ({"bot": cfg.corrector, "lookahead": cfg.lookahead, "hold": cfg.hold}
                            if cfg.corrector else None),
              "perturbation": cfg.perturbation.as_dict(),
              "baseline_policy": "RandomMomentum (bot:random): random buttons without START/SELECT, "
                                 "each combination held 1-12 steps" if any(k == "random" for k, _ in jobs) else None,
              "expert_policy": cfg.expert,
              "interrupted": stopped is not None or any(r.get("end_reason") == "interrupted" for r in results),
              "policies": {}, "episodes_detail": {}}
    for kind in dict.fromkeys(k for k, _ in jobs):
        mine = [r for (k, _), r in zip(jobs, results) if k == kind and not r.get("skipped")]
        report["policies"][kind] = summarize(mine)
        report["episodes_detail"][kind] = [{k: v for k, v in r.items() if k != "latency_ms"} for r in mine]
    report["seeds"] = [cfg.seed, cfg.seed + cfg.episodes - 1]
    if cfg.out:
        report["deaths_png"] = draw_deaths(report, Path(cfg.out) / "deaths.png")
        write_evaluation(Path(cfg.out) / "evaluation.json", report)
        report["report"] = str(Path(cfg.out) / "evaluation.json")
    if stopped is not None:
        raise stopped
    return report


def draw_deaths(report: dict, path: Path) -> str | None:
    """Where in the level each policy died (progress at each death), as a histogram PNG."""
    from contra_bc.charts import histogram_chart

    groups = {name: s.get("death_progress") or [] for name, s in report["policies"].items()}
    reach = [p for s in report["policies"].values() for p in (s.get("progress") or [])]
    if not any(groups.values()):
        return None
    everything = reach + [p for g in groups.values() for p in g]
    # from the start of the level played: on Level 2 (progress from 65,536) an axis from 0 hid every bar in one
    histogram_chart(groups, path, title=f"where the episodes' deaths happened ({report['game']})",
                    xlabel="progress at death", lo=level_start(everything), hi=max(everything))
    return str(path)


# ---------------------------------------------------------------- the window: watch, take over


def play_window(cfg: PlayConfig, scale: int = 3, window_factory=None) -> dict:
    """One episode at --hz in a window; the takeover key (Tab) hands control to the human and back.

    The policy sees every frame either way (act() keeps its cache in step); on a human step the
    human's action replaces the sampled one (policy.observe_action) and the row's actor is "human".
    Keys: Tab takeover, P pause, N or Esc end the episode (kept as a complete recording when it
    ended by the game's rules or N, as incomplete after Esc).
    """
    import time as _time

    from contra_bc.pacing import Pacer
    from contra_bc.parallel import shared_emulator
    from contra_bc.window import GameWindow

    import torch

    torch.set_num_threads(max(1, cfg.threads))
    if not cfg.checkpoint:
        raise UserError("The window plays a checkpoint: give CHECKPOINT (bot:random runs headless with --fast).")
    game = get_game(cfg.game)
    frames_per_step, hz = resolve_pacing(cfg)
    job = PlayJob(cfg, "agent", 0, str(Path(cfg.out) / "agent-0000"), frames_per_step, hz)
    actor, detail = make_actor(job)
    perturbed = job.cfg.perturbation.episode(job.seed) if job.cfg.perturbation.active else None
    try:
        window = (window_factory or GameWindow)(list(game.buttons), scale=scale,
                                                title="contra-bc play | step 0 | agent drives (Tab: take over)")
    except UserError as exc:
        raise UserError(f"{exc} To play without a window, run headless: "
                        f"`contra-bc play {cfg.checkpoint} --game {cfg.game} --fast --out {cfg.out}`.") from None
    emu = shared_emulator(game)
    runner = EpisodeRunner(emu, frames_per_step=frames_per_step, until=cfg.until)
    screen = runner.reset(cfg.state or game.default_state)
    actor.reset(emu)
    if not atomic.claim_dir(Path(cfg.out)):
        raise UserError(f"{cfg.out} appeared with files in it; contra-bc never overwrites recordings. Choose a new --out.")
    writer = runner.open_writer(Path(job.out), source="agent", source_detail=detail, hz=hz,
                                extra={**_extra(job, perturbed), "takeover": True})
    human = HumanTakeover()
    paused = [False]
    lateness: list[float] = []
    pacer = Pacer(hz)

    def controls() -> str | None:
        inp = window.poll()
        for control in ("stop", "end_episode"):
            if control in inp.controls:
                return "stop" if control == "stop" else "end"
        if "pause" in inp.controls:
            paused[0] = not paused[0]
            pacer.start(delay_periods=1)  # this tick counts as on time; the next is a period away
        if "takeover" in inp.controls:
            human.toggle()
        if paused[0]:
            window.show(screen_now[0], overlay="paused", detail="P resumes")
            return "skip"
        human.keys = int(inp.action)
        return None

    screen_now = [screen]

    def shown(row, after):
        screen_now[0] = after
        if row.get("lateness_ms") is not None:
            lateness.append(row["lateness_ms"])
        window.show(after, recording=True)
        # tests and screen readers follow the step count and who drives in the title
        window.set_title(f"contra-bc play | step {runner.steps} | "
                         + ("YOU drive (Tab: hand back)" if human.active else "agent drives (Tab: take over)"))

    started = _time.perf_counter()
    end = EpisodeEnd(complete=False, end_reason="interrupted")
    try:
        window.show(screen)
        end = run_episode(runner, actor, screen, max_steps=cfg.max_steps, takeover=human, perturbed=perturbed,
                          writer=writer, pacer=pacer, controls=controls, on_step=shown)
    finally:
        meta = writer.finish(runner.final_outcome(), complete=end.complete, end_reason=end.end_reason,
                             summary={**runner.summary(), "human_steps": human.steps,
                                      "perturbation": perturbed.summary() if perturbed else None})
        window.close()
    result = episode_metrics(runner, end, actor, meta, _time.perf_counter() - started, human.steps)
    lat = np.asarray(actor.latencies_ms or [0.0])
    result.update(recording=job.out, agent_steps=runner.steps - human.steps, end_reason=end.end_reason,
                  latency_ms_p50=round(float(np.percentile(lat, 50)), 2),
                  latency_ms_p99=round(float(np.percentile(lat, 99)), 2),
                  tick_lateness_ms_p99=round(float(np.percentile(lateness or [0.0], 99)), 2))
    return result
