"""Headless recording from an action file or a bot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contra_bc import movies
from contra_bc.emulator import get_game, platform_buttons
from contra_bc.episode import EpisodeRunner, run_episode
from contra_bc.formats import atomic
from contra_bc.formats.actions import read_action_file
from contra_bc.formats.movies import is_movie, read_movie
from contra_bc.pacing import Pacer
from contra_bc.perturb import CLEAN, Perturbation
from contra_bc.takeover import BotActor
from contra_bc.errors import UserError


@dataclass
class RecordJob:
    """One headless episode to record (picklable for spawn workers)."""

    game: str | None  # None: the default game, or the movie's own game
    state: str | None
    input: str
    out: str
    hz: float | None = None  # None: DEFAULT_HZ, or the movie's frame rate / frames_per_step
    frames_per_step: int = 1
    max_steps: int = 6000
    seed: int = 0
    until: str = "level"
    realtime: bool = False
    perturbation: Perturbation = CLEAN  # sticky actions / no-op start, drawn from the episode's seed


class _FileSource:
    def __init__(self, actions):
        self.actions, self.i = actions, 0

    def reset(self, emu):
        self.i = 0

    def act(self, emu):
        if self.i >= len(self.actions):
            raise StopIteration
        a = int(self.actions[self.i])
        self.i += 1
        return a


DEFAULT_GAME = "Outpost-Nes"
DEFAULT_HZ = 20.0


def make_source(spec: str, game, seed: int):
    """``bot:NAME``, an action file or a movie (.bk2/.fm2); returns (source, description).

    A movie names its own game (checked by ROM hash); ``game``, if given, must agree with it.
    """
    if spec.startswith("bot:"):
        from contra_bc.bots import make_bot

        return make_bot(spec[4:], game, seed), f"{spec} seed={seed}"
    if is_movie(spec):
        movie, _ = _read_movie_for(spec, game.name if game else None)
        return _FileSource(_some_steps(movies.movie_steps(movie, 1).actions, spec)), _movie_detail(movie)
    return _FileSource(_some_steps(read_action_file(Path(spec), list(game.buttons)), spec)), f"file:{Path(spec).name}"


def _some_steps(actions, spec):
    """The actions of a file or movie, refused when there is not one step to record."""
    if len(actions) == 0:
        raise UserError(f"{spec} holds no step to record (an empty action table, or a movie shorter than one "
                        f"step); a recording needs at least one step.")
    return actions


def _read_movie_for(spec: str, game_name: str | None):
    movie = read_movie(Path(spec), platform_buttons)
    movie_game = movies.identify_game(movie)
    if game_name and game_name != movie_game.name:
        raise UserError(f"{spec} is a movie of {movie_game.name} (by its ROM hash), but --game says "
                        f"{game_name}. A movie brings its own game: leave --game out or pass "
                        f"--game {movie_game.name}.")
    return movie, movie_game


def _movie_detail(movie) -> str:
    return f"movie:{movie.path.name} ({movie.kind}, {len(movie.frames)} frames, starts at {movie.start})"


def _prepare_movie(job: RecordJob, emu_for):
    """(game, emulator, source, detail, start state, hz, extra meta) for a movie job."""
    movie, game = _read_movie_for(job.input, job.game)
    if job.state:
        where = "power-on" if movie.start_state is None else "the state in its Core.bin"
        raise UserError(f"{job.input} is a movie and starts where the movie starts ({where}); "
                        f"drop --state {job.state}.")
    plan = movies.movie_steps(movie, job.frames_per_step)
    emu = emu_for(game)
    hz = emu.frame_rate / job.frames_per_step
    if job.hz is not None and abs(job.hz - hz) > 0.01 * hz:
        raise UserError(f"--hz {job.hz:g} does not fit the movie: its frames run at {emu.frame_rate:.4f} fps, so "
                        f"steps of {job.frames_per_step} frame(s) are {hz:.4f} Hz. Leave --hz out for movies.")
    start = emu.power_on_state() if movie.start_state is None else movie.start_state
    extra = {"start": movie.start,
             "movie": {"file": movie.path.name, "format": movie.kind, "frames_total": plan.frames_total,
                       "frames_used": plan.frames_used, "game_name": movie.game_name,
                       "rom_sha1": movie.rom_sha1, "rom_md5": movie.rom_md5, "notes": plan.notes}}
    return game, emu, _FileSource(_some_steps(plan.actions, job.input)), _movie_detail(movie), start, hz, extra


def record_job(job: RecordJob, on_step=None) -> dict:
    """Record one episode; returns its final meta. Ctrl-C/SIGTERM finish it as incomplete."""
    from contra_bc.parallel import shared_emulator
    from contra_bc.signals import stop_requested

    if stop_requested():  # asked to stop before this episode began: begin none
        raise KeyboardInterrupt

    extra = {"episode_until": job.until, "seed": job.seed}
    if is_movie(job.input):
        game, emu, source, detail, start, hz, movie_meta = _prepare_movie(job, shared_emulator)
        extra.update(movie_meta)
    else:
        game = get_game(job.game or DEFAULT_GAME)
        source, detail = make_source(job.input, game, job.seed)
        emu = shared_emulator(game)
        start, hz = job.state or game.default_state, job.hz or DEFAULT_HZ
    runner = EpisodeRunner(emu, frames_per_step=job.frames_per_step, until=job.until)
    frame = runner.reset(start)
    # a bot that injects its own mistakes names those steps (actor "perturbation": not trained on)
    actor = BotActor(source)
    actor.reset(emu)
    perturbed = job.perturbation.episode(job.seed) if job.perturbation.active else None
    if perturbed:
        detail += f" perturbation={job.perturbation.describe()}"
        extra["perturbation"] = perturbed.summary()
    writer = runner.open_writer(Path(job.out), source="script", source_detail=detail, hz=hz, extra=extra)
    end = run_episode(runner, actor, frame, max_steps=job.max_steps, perturbed=perturbed,
                      writer=writer, pacer=Pacer(hz) if job.realtime else None,
                      on_step=(lambda row, screen: on_step(runner)) if on_step else None)
    summary = runner.summary()
    if perturbed:
        summary["perturbation"] = perturbed.summary()
    return writer.finish(runner.final_outcome(), complete=end.complete, end_reason=end.end_reason, summary=summary)


def record_episodes(input: str, out: Path, *, game: str | None = None, state: str | None = None,
                    hz: float | None = None, frames_per_step: int = 1, max_steps: int | None = None, seed: int = 0,
                    episodes: int | None = None, until: str = "level", realtime: bool = False, workers: int = 0,
                    perturbation: Perturbation = CLEAN, on_recording=None) -> list[tuple[RecordJob, dict]]:
    """Record ``episodes`` headless episodes of ``input`` (one into ``out``, several into
    ``out/episode-NNNN``, episode i with seed+i) in worker processes; (job, final meta) per episode.

    The input is checked before any worker starts; ``on_recording(job, meta)`` as each one is written."""
    from contra_bc.parallel import run_with_progress

    if perturbation.active and not input.startswith("bot:"):
        raise UserError(f"--sticky and --noop-max perturb a bot's play (bot:NAME); {input} is a fixed list of "
                        f"inputs, which a perturbation would only corrupt. Record it without them.")
    if not is_movie(input):  # a movie brings its own game and rate
        game, hz = game or DEFAULT_GAME, hz or DEFAULT_HZ
    episodes, max_steps = episodes or 1, max_steps or 6000
    make_source(input, get_game(game) if game else None, seed)  # validate before any worker starts
    common = dict(game=game, state=state, input=input, hz=hz, frames_per_step=frames_per_step, max_steps=max_steps,
                  until=until, realtime=realtime, perturbation=perturbation)
    if episodes == 1:
        jobs = [RecordJob(out=str(out), seed=seed, **common)]
    else:
        if not atomic.check_new_dir(out):
            raise UserError(f"{out} exists and is not empty; contra-bc never overwrites recordings. Choose a new "
                            f"session folder.")
        jobs = [RecordJob(out=str(out / f"episode-{i:04d}"), seed=seed + i, **common) for i in range(episodes)]
    each = (lambda i, meta: on_recording(jobs[i], meta)) if on_recording else None
    metas = run_with_progress(record_job, jobs, workers=workers, games=game, label="recording", each=each)
    return list(zip(jobs, metas))


def table_rows(recorded: list[tuple[RecordJob, dict]]) -> list[dict]:
    """The summary table of `record_episodes`: one row per recording."""
    return [{"recording": m.get("path", j.out), "steps": m["steps"], "outcome": m["outcome"],
             "deaths": m.get("deaths", 0), "complete": m["complete"]} for j, m in recorded]
