"""`contra-bc build-dataset`: recordings + annotations -> training shards.

1. scan   (this process) read each recording's meta and steps, its annotations,
          hashes and input statistics; decide keep / skip / drop with a reason;
2. verify (optional) replay-verify the kept ones in spawn workers;
3. plan   episode indices, global row ranges, splits (by episode, seeded), texts;
4. convert (spawn workers, one recording each) decode the video, resize every
          frame with ``preprocess_frame`` and write the episode's shard;
5. meta   episodes.parquet, texts.parquet, then info.json last.

A new dataset is built in ``DIR.partial-<plan hash>`` and renamed to DIR at the
end; rerunning the same command after an interruption reuses the finished
shards. ``append`` writes new shards beside the old ones and rewrites meta.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from contra_bc.config import BuildConfig
from contra_bc.dataset.quality import QualityFilter, judge, measure
from contra_bc.errors import UserError
from contra_bc.formats import annotations as ann
from contra_bc.formats import atomic
from contra_bc.formats import dataset as fmt
from contra_bc.formats.recording import VAR_PREFIX, find_recordings, read_recording

TRAINED_ACTORS = ("human", "script", "corrector")


@dataclass
class BuildOptions:
    """What one build does; the defaults are the options' (contra_bc/config.py: BuildConfig)."""

    annotations_dir: str | None = None
    require_annotations: bool = False
    val_fraction: float = BuildConfig.val_fraction
    seed: int = BuildConfig.seed
    frame_size: int = BuildConfig.frame_size
    workers: int = 0
    verify: bool = False
    include_incomplete: bool = False
    append: bool = False
    aux: tuple = ()                   # game variables stored per frame for the encoder's auxiliary loss
    quality: QualityFilter = field(default_factory=QualityFilter)

    @classmethod
    def from_config(cls, cfg: BuildConfig) -> "BuildOptions":
        return cls(annotations_dir=str(cfg.annotations) if cfg.annotations else None,
                   require_annotations=cfg.require_annotations, val_fraction=cfg.val_fraction, seed=cfg.seed,
                   frame_size=cfg.frame_size, workers=cfg.workers, verify=cfg.verify,
                   include_incomplete=cfg.include_incomplete, append=cfg.append,
                   aux=tuple(v.strip() for v in cfg.aux.split(",") if v.strip()),
                   quality=QualityFilter(max_hold_fraction=cfg.max_hold_fraction,
                                         min_changes_per_minute=cfg.min_changes_per_minute,
                                         min_steps=cfg.filter_min_steps, enabled=not cfg.no_filter))


@dataclass
class ConvertJob:
    """One recording -> one shard (picklable for spawn workers)."""

    recording: str
    out_file: str
    episode_index: int
    index_start: int
    length: int
    text_index: list
    frame_size: int
    aux: tuple = ()


def sha1_files(paths) -> str:
    h = hashlib.sha1()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def steps_sha1(path: Path) -> str:
    path = Path(path)
    if (path / "steps.parquet").is_file():
        return sha1_files([path / "steps.parquet"])
    return sha1_files(sorted((path / "steps").glob("*.parquet")))


def convert(job: ConvertJob) -> dict:
    """Decode, preprocess and write one episode's shard; returns timing for the report."""
    from contra_bc.parallel import prefetch
    from contra_bc.preprocess import preprocess_frame

    started = time.perf_counter()
    out = Path(job.out_file)
    if out.is_file():  # finished by an interrupted run of the same plan (files are renamed when complete)
        return {"frames": job.length, "seconds": 0.0, "resumed": True}
    from contra_bc.emulator import digest64
    from contra_bc.signals import StopSignals

    rec = read_recording(Path(job.recording))
    # frame k of the video must be the screen the recording hashed for step k: a copied or renamed
    # segment would pair frames with another run's actions
    expected = [rec.meta["first_frame_hash"]] + list(rec.column("frame_hash")[:job.length - 1])
    actors = rec.column("actor")[:job.length]
    actions = rec.actions[:job.length]
    chosen = rec.chosen_actions[:job.length]
    loss = np.isin(actors, TRAINED_ACTORS)
    size = (job.frame_size, job.frame_size)
    aux = None
    if job.aux:  # the variables as the frame shows them: row k holds them after step k, frame k is before it
        after = np.stack([rec.column(VAR_PREFIX + v)[:job.length] for v in job.aux], axis=1).astype(np.float32)
        aux = np.concatenate([after[:1], after[:-1]])
    writer = fmt.ShardWriter(out, episode_index=job.episode_index, index_start=job.index_start, frame_size=size,
                             n_aux=len(job.aux))
    try:
        n = 0
        with StopSignals() as stop:
            # decoding and hashing in a background thread, preprocessing and writing here: both halves
            # release the GIL and cost about the same, so they overlap on two cores (a third thread
            # measured no faster)
            hashed = ((f, digest64(f)) for f in rec.frames(0, job.length))
            for frame, digest in prefetch(hashed):
                stop.check()  # Ctrl-C/SIGTERM: stop between frames; the unfinished shard is removed below
                if digest != expected[n]:
                    raise UserError(f"{rec.path}: video frame {n} is not the screen the recording saw at step {n} "
                                    f"(its hash differs from steps.parquet's); a video segment was replaced, "
                                    f"renamed or damaged. Check it with `contra-bc replay-verify {rec.path} "
                                    f"--check-video`, re-record it, or leave it out of the dataset.")
                writer.add(actions[n], job.text_index[n], loss[n], preprocess_frame(frame, job.frame_size),
                           None if aux is None else aux[n], chosen[n])
                n += 1
            if n != job.length:
                raise UserError(f"{rec.path} has {job.length} steps but its video holds only {n} frames; the "
                                f"recording is damaged. Check it with `contra-bc replay-verify {rec.path} "
                                f"--check-video` and leave it out of the dataset.")
            writer.close()  # a finished shard is kept even if a stop came during the close: it is resumable
    except BaseException:
        writer.abort()
        raise
    return {"frames": n, "seconds": round(time.perf_counter() - started, 3), "resumed": False}


# ---------------------------------------------------------------- scan
def _annotations_for(rec, opts: BuildOptions, video: str) -> tuple[dict | None, str | None]:
    path = ann.annotations_path(rec.path, Path(opts.annotations_dir) if opts.annotations_dir else None)
    if not path.is_file():
        if opts.require_annotations:
            raise UserError(f"{rec.path} has no annotations (looked for {path}) and --require-annotations "
                            f"is set. Annotate it with `contra-bc annotate {rec.path}`, or drop "
                            f"--require-annotations to keep it without text.")
        return None, None
    doc = ann.read_annotations(path)
    ref = doc.get("recording") or {}
    problems = []
    if ref.get("steps") != rec.n_steps:
        problems.append(f"{ref.get('steps')} steps (the recording has {rec.n_steps})")
    if ref.get("video_sha1") != video:
        problems.append(f"video SHA-1 {ref.get('video_sha1')} (the recording's is {video})")
    if ref.get("start_state_sha1") and ref["start_state_sha1"] != rec.meta.get("start_state_sha1"):
        problems.append(f"start state {ref['start_state_sha1']} (the recording's is {rec.meta.get('start_state_sha1')})")
    if problems:
        raise UserError(f"{path} annotates a different recording ({ref.get('name')!r}): it was made for "
                        f"{'; '.join(problems)}. Its steps would not line up with the frames. Re-annotate "
                        f"with `contra-bc annotate {rec.path}`, or point --annotations at the folder with "
                        f"the matching file.")
    return doc, sha1_files([path])


def scan(path: Path, opts: BuildOptions) -> dict:
    """Everything the plan needs about one recording (cheap: no video decoding)."""
    rec = read_recording(path)
    meta = rec.meta
    item = {"path": str(path), "name": path.name, "game": meta["game"], "platform": meta.get("platform"),
            "hz": float(meta["hz"]), "frames_per_step": int(meta["frames_per_step"]),
            "buttons": meta["buttons"], "steps": rec.n_steps, "complete": rec.complete,
            "outcome": meta.get("outcome", "none"), "status": "added", "reason": None,
            "start_state_sha1": meta.get("start_state_sha1"), "steps_sha1": steps_sha1(path),
            "video_sha1": ann.video_sha1(path), "annotated": False, "annotations_sha1": None}
    if not rec.complete and not opts.include_incomplete:
        item.update(status="skipped", reason=f"incomplete recording (meta complete=false, {rec.n_steps} steps "
                                             f"recorded); --include-incomplete keeps them")
        return item
    if rec.n_steps == 0:
        item.update(status="skipped", reason="no steps")
        return item
    lacking = [v for v in opts.aux if v not in meta.get("variables", [])]
    if lacking:
        raise UserError(f"--aux {','.join(opts.aux)}: {path} does not record {', '.join(lacking)} (it records "
                        f"{', '.join(meta.get('variables', [])) or 'no variables'}). Name variables the game's JSON "
                        f"declares (`contra-bc games --json` lists them) and re-record, or drop --aux.")
    doc, doc_sha1 = _annotations_for(rec, opts, item["video_sha1"])
    item["texts"] = ann.text_per_step(doc, rec.n_steps) if doc else [None] * rec.n_steps
    item["annotated"], item["annotations_sha1"] = doc is not None, doc_sha1
    actions = rec.actions
    item["quality"] = measure(actions, meta["buttons"], float(meta["hz"]))
    item["loss_steps"] = int(np.isin(rec.column("actor"), TRAINED_ACTORS).sum())
    reason = judge(item["quality"], opts.quality, meta["buttons"], actions)
    if reason:
        item.update(status="dropped", reason=reason)
    return item


def _check_compatible(items: list[dict], existing: dict | None) -> None:
    ref = existing or (items[0] if items else None)
    if ref is None:
        return
    keys = {"game": ref["game"], "hz": float(ref["hz"]),
            "frames_per_step": ref["frames_per_step"], "buttons": ref["buttons"]}
    for it in items:
        for k, v in keys.items():
            if it[k] != v:
                where = "the existing dataset" if existing else items[0]["path"]
                raise UserError(f"{it['path']} has {k}={it[k]!r} but {where} has {k}={v!r}; one dataset holds "
                                f"one game at one step rate. Build a separate dataset for it.")


# ---------------------------------------------------------------- plan
def assign_splits(n_new: int, existing: list[str], val_fraction: float, seed: int) -> list[str]:
    """Split new episodes into train/val by a seeded permutation (never by frame).

    Aims at round(val_fraction * total) validation episodes, at least one when
    there are two or more episodes in all, and always keeps one for training.
    """
    total = n_new + len(existing)
    if val_fraction <= 0 or total < 2:
        want = 0
    else:
        want = max(1, int(round(val_fraction * total)))
    need = max(0, want - existing.count("val"))
    need = min(need, n_new - (0 if "train" in existing else 1))
    order = np.random.default_rng(seed).permutation(n_new)
    val = set(order[:max(0, need)].tolist())
    return ["val" if i in val else "train" for i in range(n_new)]


def _plan_hash(jobs: list[ConvertJob], sources: list[dict]) -> str:
    """Names the folder of an unfinished build: the same plan over the same bytes, and nothing else, resumes it."""
    content = [[s.get(k) for k in ("start_state_sha1", "steps_sha1", "video_sha1", "annotations_sha1")]
               for s in sources]
    blob = json.dumps([asdict(j) for j in jobs] + [content, fmt.VERSION, fmt.ROW_GROUP_ROWS], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


def _verify(items: list[dict], workers: int) -> None:
    from contra_bc.parallel import run_many
    from contra_bc.replay import VerifyJob, verify
    from contra_bc.ui import progress

    todo = [it for it in items if it["status"] == "added"]
    if not todo:
        return
    games = {it["game"] for it in todo}
    with progress() as bar:
        task = bar.add_task("replay-verify", total=len(todo))
        results = run_many(verify, [VerifyJob(it["path"]) for it in todo], workers=min(workers, len(todo)),
                           games=games, on_result=lambda i, r: bar.advance(task))
    for it, r in zip(todo, results):
        it["verify"] = r["status"]
        if r["status"] == "diverged":
            d = r.get("first_divergence", {})
            it.update(status="dropped", reason=f"replay-verify: diverged at step {d.get('step')}")
        elif r["status"] == "error":
            it.update(status="dropped", reason=f"replay-verify: {r.get('message')}")


def _existing_dataset(out: Path, opts: BuildOptions):
    """(info, episodes, texts, options) of the dataset --append adds to (None, [], [] for a new one);
    the options take the dataset's aux variables. UserError if ``out`` would be overwritten."""
    if not opts.append:
        if not atomic.check_new_dir(out):
            what = "a dataset" if (out / fmt.INFO).is_file() else "not empty"
            raise UserError(f"{out} already exists and is {what}; build-dataset never overwrites. Add recordings "
                            f"to it with --append, or choose a new --out.")
        return None, [], [], opts
    if not out.exists():
        return None, [], [], opts
    info = fmt.read_info(out)
    if info["format_version"] != fmt.VERSION:
        raise UserError(f"{out} is dataset format v{info['format_version']}, made by an older contra-bc; new shards "
                        f"are v{fmt.VERSION} (they keep each step's chosen action beside the executed one), and one "
                        f"dataset holds one format. Build a new dataset from all the recordings: `contra-bc "
                        f"build-dataset OLD_RECORDINGS... NEW_RECORDINGS... --out NEW_DATASET`.")
    episodes = fmt.read_episodes(out, info)
    texts = fmt.read_texts(out, info)
    if info["frame_size"] != [opts.frame_size, opts.frame_size]:
        raise UserError(f"{out} holds {info['frame_size']} frames; append with "
                        f"--frame-size {info['frame_size'][0]}.")
    held = fmt.aux_variables(info)
    if opts.aux and list(opts.aux) != held:
        raise UserError(f"{out} stores the aux variables {held or 'none'}; append with "
                        f"{'--aux ' + ','.join(held) if held else 'no --aux'} (every shard has the same columns).")
    return info, episodes, texts, replace(opts, aux=tuple(held))


def _skip_duplicates(candidates: list[dict], existing_info: dict | None) -> None:
    """Mark recordings already in the dataset, or identical to an earlier one here, as skipped."""
    in_dataset = {(s["start_state_sha1"], s["steps_sha1"]): s["name"]
                  for s in (existing_info or {}).get("sources", [])}
    seen: dict = {}
    for it in candidates:
        key = (it["start_state_sha1"], it["steps_sha1"])
        if key in in_dataset:
            it.update(status="skipped", reason=f"already in the dataset (as {in_dataset[key]})")
        elif key in seen:
            it.update(status="skipped", reason=f"duplicate of {seen[key]}")
        else:
            seen[key] = it["name"]


def _plan_episodes(new: list[dict], splits: list[str], opts: BuildOptions, existing_info: dict | None,
                   existing_eps: list, existing_texts: list):
    """(episodes, sources, texts, jobs, frames in all): the dataset's tables with the new recordings
    appended after the existing ones, and one conversion job per new episode."""
    texts = list(existing_texts)
    text_ids = {t: i for i, t in enumerate(texts)}
    episodes = list(existing_eps)
    sources = list((existing_info or {}).get("sources", []))
    next_index = episodes[-1]["index_end"] if episodes else 0
    jobs = []
    for it, split in zip(new, splits):
        idx = len(episodes)
        for t in it["texts"]:
            if t is not None and t not in text_ids:
                text_ids[t] = len(texts)
                texts.append(t)
        ep = {"episode_index": idx, "name": it["name"], "source": it["path"], "data_file": fmt.data_file(idx),
              "file_row_start": 0, "length": it["steps"], "index_start": next_index,
              "index_end": next_index + it["steps"], "outcome": it["outcome"], "split": split,
              "complete": it["complete"], "annotated": it["annotated"], "loss_steps": it["loss_steps"]}
        episodes.append(ep)
        sources.append({"episode_index": idx, "name": it["name"], "path": it["path"],
                        "start_state_sha1": it["start_state_sha1"], "steps_sha1": it["steps_sha1"],
                        "video_sha1": it["video_sha1"], "annotations_sha1": it["annotations_sha1"],
                        "complete": it["complete"]})
        jobs.append(ConvertJob(it["path"], ep["data_file"], idx, next_index, it["steps"],
                               [None if t is None else text_ids[t] for t in it["texts"]], opts.frame_size,
                               tuple(opts.aux)))
        it.update(episode_index=idx, split=split)
        next_index += it["steps"]
    return episodes, sources, texts, jobs, next_index


def _shard_folder(out: Path, jobs: list[ConvertJob], sources: list[dict], existing_info: dict | None, log) -> Path:
    """Where the shards are written (jobs' out_file set under it): the dataset itself for --append,
    else ``OUT.partial-HASH``, resumed when an earlier build of the same plan left one."""
    if existing_info:
        for j in jobs:
            j.out_file = str(out / j.out_file)
            if Path(j.out_file).exists():  # left by an interrupted append; not referenced by meta
                Path(j.out_file).unlink()
        return out
    root = out.with_name(f"{out.name}.partial-{_plan_hash(jobs, sources)[:12]}")
    if root.exists():
        log(f"resuming the unfinished build in {root}")
        for stray in root.rglob(".*.tmp"):  # a shard cut off by kill -9: redo it
            stray.unlink()
    root.mkdir(parents=True, exist_ok=True)
    for j in jobs:
        j.out_file = str(root / j.out_file)
    return root


def build_dataset(inputs: list[Path], out: Path, opts: BuildOptions, log=print) -> dict:
    """Build (or append to) the dataset at ``out``; returns the report (JSON-able)."""
    from contra_bc.parallel import default_workers, run_many
    from contra_bc.ui import progress

    started = time.perf_counter()
    out = Path(out)
    workers = opts.workers or default_workers()
    if not 0 <= opts.val_fraction < 1:
        raise UserError(f"--val-fraction must be in [0, 1), not {opts.val_fraction}.")
    paths = sorted({Path(os.path.abspath(p)) for p in find_recordings(list(inputs))}, key=str)
    existing_info, existing_eps, existing_texts, opts = _existing_dataset(out, opts)

    items = [scan(p, opts) for p in paths]
    cand = [it for it in items if it["status"] == "added"]
    if existing_info:
        _check_compatible(cand, existing_info)
    else:
        _check_compatible(cand, None)
    _skip_duplicates(cand, existing_info)
    if opts.verify:
        _verify(items, workers)

    new = [it for it in items if it["status"] == "added"]
    splits = assign_splits(len(new), [e["split"] for e in existing_eps], opts.val_fraction, opts.seed)
    episodes, sources, texts, jobs, next_index = _plan_episodes(new, splits, opts, existing_info, existing_eps,
                                                                existing_texts)

    report = {"out": str(out), "recordings": [_report_row(it) for it in items],
              "episodes_added": len(new), "frames_added": sum(j.length for j in jobs)}
    if not new:
        if existing_info:
            report.update(episodes_total=len(episodes), frames_total=next_index, seconds=0.0)
            return report
        reasons = "; ".join(f"{it['name']}: {it['reason']}" for it in items)
        raise UserError(f"None of the {len(items)} recording(s) can go into a dataset ({reasons}). "
                        f"See the reasons; --include-incomplete keeps interrupted recordings and "
                        f"--no-filter turns the quality filter off.")

    game = existing_info["game"] if existing_info else new[0]["game"]
    runs = list((existing_info or {}).get("build", {}).get("runs", []))
    runs.append({"seed": opts.seed, "val_fraction": opts.val_fraction, "verify": opts.verify,
                 "include_incomplete": opts.include_incomplete, "quality_filter": opts.quality.to_dict(),
                 "annotations_dir": opts.annotations_dir, "episodes": [j.episode_index for j in jobs]})
    info = fmt.make_info(game=game, platform=new[0]["platform"], hz=new[0]["hz"],
                         frames_per_step=new[0]["frames_per_step"], frame_size=(opts.frame_size, opts.frame_size),
                         buttons=new[0]["buttons"], episodes=episodes, n_texts=len(texts), sources=sources,
                         build={"runs": runs}, aux=list(opts.aux))
    root = _shard_folder(out, jobs, sources, existing_info, log)

    total_frames = sum(j.length for j in jobs)
    try:
        with progress() as bar:
            task = bar.add_task("build-dataset (frames)", total=total_frames)
            results = run_many(convert, jobs, workers=min(workers, len(jobs)),
                               on_result=lambda i, r: bar.advance(task, jobs[i].length))
    except KeyboardInterrupt:
        if not existing_info:
            log(f"interrupted: finished shards are kept in {root}; rerun the same command to resume")
        raise
    except UserError:
        if not existing_info and not any(p.is_file() for p in root.rglob("*")):
            shutil.rmtree(root)  # nothing finished to resume from: leave no empty folder behind
        raise
    fmt.write_meta(root, info=info, episodes=episodes, texts=texts)
    fmt.validate_dataset(root)
    if not existing_info:
        if out.exists():
            out.rmdir()  # an empty directory the user made for us
        os.rename(root, out)
    report.update(episodes_total=len(episodes), frames_total=next_index,
                  resumed_episodes=sum(1 for r in results if r["resumed"]),
                  seconds=round(time.perf_counter() - started, 2),
                  frames_per_second=round(total_frames / max(time.perf_counter() - started, 1e-9), 1),
                  counts=info["counts"])
    return report


def _report_row(it: dict) -> dict:
    row = {k: it.get(k) for k in ("path", "name", "status", "reason", "steps", "complete", "annotated", "outcome")}
    row["episode_index"] = it.get("episode_index")
    row["split"] = it.get("split")
    q = it.get("quality")
    if q:
        row["changes_per_minute"] = q["changes_per_minute"]
        row["longest_hold"] = f"{q['longest_hold_button']} {q['longest_hold_fraction']:.0%}" if q["longest_hold_button"] else None
    if "verify" in it:
        row["verify"] = it["verify"]
    return row


def table_rows(report: dict) -> list[dict]:
    """The table `contra-bc build-dataset` prints: one row per recording."""
    return [{"recording": r["name"], "status": r["status"], "steps": r["steps"],
             "episode": "-" if r["episode_index"] is None else r["episode_index"], "split": r["split"] or "-",
             "annotated": r["annotated"], "changes/min": r.get("changes_per_minute", "-"),
             "why": r["reason"] or ""} for r in report["recordings"]]


def summary_lines(report: dict, out: Path) -> list[str]:
    """What build-dataset says after its table: episodes without text, and the dataset's size."""
    lines = []
    bare = [r["name"] for r in report["recordings"] if r["status"] == "added" and not r["annotated"]]
    if bare:
        lines.append(f"{len(bare)} episode(s) have no annotations (text is null for all their steps): "
                     f"{', '.join(bare[:10])}{' ...' if len(bare) > 10 else ''}")
    lines.append(f"{out}: {report['episodes_total']} episodes, {report['frames_total']} frames "
                 f"({report['episodes_added']} episodes / {report['frames_added']} frames added)")
    return lines
