"""build-dataset and the training loader, end to end on real Airstriker recordings.

Recordings are made by the CLI in a subprocess (one emulator per process); the
frame check replays a recording in a spawn worker. Nothing here creates an
emulator inside the pytest process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import needs_outpost, run_cli

GAME = "Airstriker-Genesis-v0"
STEPS = 120


def cli(*args, check=True):
    return run_cli(*args, check=check)


def build(*args, check=True):
    proc = cli("build-dataset", *args, "--json", "--workers", "2", check=check)
    return proc, (json.loads(proc.stdout) if proc.returncode in (0, 1) else None)


def replay_screens(path: str) -> np.ndarray:
    """Spawn worker: the preprocessed screen before each step, replayed from the start state."""
    from contra_bc.emulator import Emulator
    from contra_bc.formats.recording import read_recording
    from contra_bc.preprocess import preprocess_frame

    rec = read_recording(Path(path))
    emu = Emulator(rec.meta["game"])
    emu.reset(rec.start_state())
    frames = [preprocess_frame(emu.screen())]
    for a in rec.actions[:-1]:
        emu.step(int(a), int(rec.meta["frames_per_step"]))
        frames.append(preprocess_frame(emu.screen()))
    return np.stack(frames)


def rewrite_steps(rec_dir: Path, change) -> None:
    """Edit a copied recording's steps table (``change(dict of lists)``), atomically."""
    table = pq.read_table(rec_dir / "steps.parquet")
    cols = table.to_pydict()
    change(cols)
    tmp = rec_dir / ".steps.tmp"
    pq.write_table(pa.Table.from_pydict(cols, schema=table.schema), tmp)
    os.replace(tmp, rec_dir / "steps.parquet")


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    from contra_bc.formats import annotations as ann
    from contra_bc.formats.recording import read_recording

    base = tmp_path_factory.mktemp("recs")
    cli("record", "--input", "bot:airstriker", "--game", GAME, "--out", base / "air", "--episodes", 3,
        "--max-steps", STEPS, "--episode-until", "never", "--workers", 2)
    # B held the whole time while the ship sweeps left and right: a stuck fire button
    (base / "held.csv").write_text("buttons\n" + "".join(
        ("B+RIGHT" if (i // 10) % 2 else "B+LEFT") + "\n" for i in range(STEPS)))
    cli("record", "--input", base / "held.csv", "--game", GAME, "--out", base / "held", "--max-steps", STEPS,
        "--episode-until", "never")
    air = sorted((base / "air").iterdir())
    rec0 = read_recording(air[0])
    ann.write_annotations(air[0] / "annotations.json", recording=ann.recording_ref(rec0), source="table",
                          entries=[
                              {"start_step": 10, "end_step": 29, "start_s": 0.5, "end_s": 1.45, "text": "Shoot the first wave"},
                              {"start_step": 30, "end_step": 59, "start_s": 1.5, "end_s": 2.95, "text": "Dodge the bullets"},
                              {"start_step": 100, "end_step": 119, "start_s": 5.0, "end_s": 5.95, "text": "Shoot the first wave"},
                          ])
    # Correction data: `play` writes the same recording format with actor "agent" on the
    # policy's steps. The actor column changes neither frames nor hashes, so a copy whose
    # steps 50..99 are marked "agent" is exactly such a recording (it still replay-verifies).
    corrected = base / "corrected" / "corr-0000"
    shutil.copytree(air[1], corrected)
    rewrite_steps(corrected, lambda c: c["actor"].__setitem__(slice(50, 100), ["agent"] * 50))
    return {"base": base, "air": air, "held": base / "held", "corrected": corrected}


@pytest.fixture(scope="module")
def built(recs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "main"
    proc, report = build(recs["base"] / "air", recs["corrected"], "--out", out, "--val-fraction", "0.25")
    return out, report


def test_round_trip_meta(recs, built):
    from contra_bc.dataset.loader import DatasetReader

    out, report = built
    assert [r["status"] for r in report["recordings"]] == ["added"] * 4
    assert not list(out.parent.glob("*.partial-*"))
    ds = DatasetReader(out)
    meta = json.loads((recs["air"][0] / "meta.json").read_text())
    assert ds.info["game"] == GAME and ds.info["hz"] == 20.0 and ds.info["frame_size"] == [192, 192]
    assert ds.info["buttons"] == meta["buttons"]
    assert ds.info["counts"]["episodes"] == 4 and ds.info["counts"]["frames"] == 4 * STEPS
    assert [e["length"] for e in ds.episodes] == [STEPS] * 4
    assert [(e["index_start"], e["index_end"]) for e in ds.episodes] == [(i * STEPS, (i + 1) * STEPS) for i in range(4)]
    src = next(s for s in ds.info["sources"] if s["name"] == recs["air"][0].name)
    assert src["start_state_sha1"] == meta["start_state_sha1"] and src["annotations_sha1"]
    assert all(len(s["steps_sha1"]) == 40 and len(s["video_sha1"]) == 40 for s in ds.info["sources"])
    assert sorted(ds.texts) == ["Dodge the bullets", "Shoot the first wave"]
    rows = pq.read_table(out / ds.episodes[2]["data_file"], columns=["episode_index", "frame_index", "index", "action"])
    assert rows.column("index").to_pylist() == list(range(2 * STEPS, 3 * STEPS))
    assert rows.column("frame_index").to_pylist() == list(range(STEPS))
    assert pq.ParquetFile(out / ds.episodes[0]["data_file"]).metadata.row_group(0).num_rows == ds.info["row_group_rows"]


def test_frames_bitwise_equal_to_replayed_emulator_screens(recs, built):
    from contra_bc.dataset.loader import DatasetReader

    out, _ = built
    ds = DatasetReader(out)
    ep = next(e for e in ds.episodes if e["name"] == recs["air"][2].name)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        expected = pool.apply(replay_screens, (str(recs["air"][2]),))
    rows = ds.read(ep["episode_index"], 0, ep["length"])
    assert rows["frame"].shape == expected.shape == (STEPS, 192, 192, 3)
    assert np.array_equal(rows["frame"], expected)
    assert len({f.tobytes() for f in expected}) > 10  # the screens really change
    rec_actions = pq.read_table(recs["air"][2] / "steps.parquet").column("action").to_numpy()
    assert np.array_equal(rows["action"], rec_actions)


def test_text_index_alignment_at_entry_boundaries(recs, built):
    from contra_bc.dataset.loader import DatasetReader, WindowDataset

    out, _ = built
    ds = DatasetReader(out)
    ep = next(e for e in ds.episodes if e["name"] == recs["air"][0].name)
    assert ep["annotated"] and not next(e for e in ds.episodes if e["name"] == recs["air"][2].name)["annotated"]
    text = ds.read(ep["episode_index"], 0, STEPS)["text"]
    shoot, dodge = ds.texts.index("Shoot the first wave"), ds.texts.index("Dodge the bullets")
    expected = [-1] * 10 + [shoot] * 20 + [dodge] * 30 + [-1] * 40 + [shoot] * 20
    assert text.tolist() == expected
    wd = WindowDataset(out, split=None, window=16, stride=8)
    item = next(wd[i] for i, (e, s) in enumerate(wd.windows) if e == ep["episode_index"] and s == 24)
    assert item["text"].tolist() == expected[24:40]


def test_loss_mask_false_on_agent_steps(recs, built):
    from contra_bc.dataset.loader import DatasetReader, WindowDataset

    out, _ = built
    ds = DatasetReader(out)
    ep = next(e for e in ds.episodes if e["name"] == "corr-0000")
    mask = ds.read(ep["episode_index"], 0, STEPS)["loss_mask"]
    assert mask.tolist() == [True] * 50 + [False] * 50 + [True] * 20
    assert ep["loss_steps"] == 70 and ds.info["counts"]["loss_frames"] == 3 * STEPS + 70
    wd = WindowDataset(out, split=None, window=32)
    last = wd[max(i for i, (e, s) in enumerate(wd.windows) if e == ep["episode_index"])]
    n = STEPS % 32
    assert last["valid"].tolist() == [True] * n + [False] * (32 - n)
    assert last["loss_mask"].tolist() == mask[STEPS - n:].tolist() + [False] * (32 - n)
    assert (last["actions"][n:] == 0).all() and (last["text"][n:] == -1).all()
    assert not last["frames"][n:].any() and last["start"].item() == STEPS - n


def test_split_by_episode_and_loader_batches(built):
    from contra_bc.dataset.build import assign_splits
    from contra_bc.dataset.loader import DatasetReader, WindowDataset, make_loader

    out, _ = built
    ds = DatasetReader(out)
    val = [e["episode_index"] for e in ds.episodes if e["split"] == "val"]
    assert len(val) == 1 and ds.info["splits"]["val"] == val
    assert sorted(ds.info["splits"]["train"] + val) == [0, 1, 2, 3]
    wd = WindowDataset(out, split="val", window=32)
    assert {e for e, _ in wd.windows} == set(val)
    # windows never cross an episode boundary
    for i in range(len(wd)):
        item = wd[i]
        assert item["episode"].item() in val and item["start"].item() + item["valid"].sum().item() <= STEPS
    batches = [[(b["episode"].tolist(), b["start"].tolist()) for b in
                make_loader(out, split="train", window=32, batch_size=4, seed=s, workers=2)] for s in (0, 0, 1)]
    assert batches[0] == batches[1] and batches[0] != batches[2]
    b = next(iter(make_loader(out, split="train", window=32, batch_size=4, seed=0, workers=0)))
    assert b["frames"].shape == (4, 32, 192, 192, 3) and b["actions"].shape == (4, 32)
    # data-parallel ranks get disjoint shares that interleave back into the one-rank order, and a
    # resumed loader starts at its position
    ranks = [[(b["episode"].tolist(), b["start"].tolist()) for b in
              make_loader(out, split="train", window=32, batch_size=4, seed=0, workers=0, rank=r, world=2)]
             for r in (0, 1)]
    assert ranks[0] and ranks[1] and [x for pair in zip(*ranks) for x in pair] == batches[0][:2 * len(ranks[1])]
    assert sorted(ranks[0] + ranks[1]) == sorted(batches[0])
    resumed = [(b["episode"].tolist(), b["start"].tolist()) for b in
               make_loader(out, split="train", window=32, batch_size=4, seed=0, workers=0, rank=1, world=2, skip=1)]
    assert resumed == ranks[1][1:]
    # split rule: by episode, seeded, >= 1 validation episode from 2 episodes, one kept for training
    assert assign_splits(2, [], 0.1, 0).count("val") == 1
    assert assign_splits(1, [], 0.5, 0) == ["train"]
    assert assign_splits(20, [], 0.1, 3) == assign_splits(20, [], 0.1, 3)
    assert assign_splits(20, [], 0.1, 3).count("val") == 2
    assert assign_splits(3, ["train", "val"], 0.1, 0) == ["train"] * 3


def _tree_bytes(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_bytes(recs, built, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    build(recs["base"] / "air", recs["corrected"], "--out", again, "--val-fraction", "0.25")
    first, second = _tree_bytes(out), _tree_bytes(again)
    assert sorted(first) == sorted(second) and len(first) == 7
    assert all(first[k] == second[k] for k in first)
    assert b"created_at" not in first["meta/info.json"]


def test_interrupted_build_resumes(tmp_path):
    """Ctrl-C after the first shard: finished shards stay, the rerun resumes to the same bytes."""
    import signal
    import subprocess
    import time

    from conftest import cli_env, signal_frozen

    # long enough that the second shard takes about a second to build: Ctrl-C lands inside it
    long_steps = 3000
    cli("record", "--input", "bot:airstriker", "--game", GAME, "--out", tmp_path / "long", "--episodes", 2,
        "--max-steps", long_steps, "--episode-until", "never", "--workers", 2)
    reference = tmp_path / "reference"
    build(tmp_path / "long", "--out", reference, "--val-fraction", "0.5")
    out = tmp_path / "resumed"
    args = [sys.executable, "-m", "contra_bc", "build-dataset", tmp_path / "long", "--out", out,
            "--val-fraction", "0.5", "--workers", "1"]
    # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored; give the
    # build the default disposition, as an interactive terminal would, wherever pytest runs.
    proc = subprocess.Popen(list(map(str, args)), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(tmp_path.glob("resumed.partial-*/data/chunk-000/file-000.parquet")) and time.time() < deadline:
        time.sleep(0.01)
    # freeze the build, queue Ctrl-C, thaw it: the signal is there before it can finish the second shard,
    # and it lands wherever the build happens to be (a pyarrow destructor included)
    signal_frozen(proc, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert not out.exists() and "rerun the same command to resume" in stderr
    partial = list(tmp_path.glob("resumed.partial-*"))
    assert len(partial) == 1 and not list(partial[0].rglob(".*tmp"))  # no half-written shard
    kept = partial[0] / "data" / "chunk-000" / "file-000.parquet"
    kept_inode = kept.stat().st_ino
    done = run_cli(*args[3:], check=True)
    assert "resuming" in done.stderr and not partial[0].exists()
    assert (out / "data" / "chunk-000" / "file-000.parquet").stat().st_ino == kept_inode  # reused, not redone
    first, second = _tree_bytes(reference), _tree_bytes(out)
    assert first.keys() == second.keys() and all(first[k] == second[k] for k in first)


def test_append_keeps_old_shards(recs, tmp_path):
    from contra_bc.dataset.loader import DatasetReader

    out = tmp_path / "grow"
    build(*recs["air"][:2], "--out", out)
    old = _tree_bytes(out)
    _, report = build(*recs["air"], "--out", out, "--append")
    assert [r["status"] for r in report["recordings"]] == ["skipped", "skipped", "added"]
    assert "already in the dataset" in report["recordings"][0]["reason"]
    ds = DatasetReader(out)
    assert len(ds.episodes) == 3 and ds.episodes[2]["index_start"] == 2 * STEPS
    new = _tree_bytes(out)
    assert all(new[k] == v for k, v in old.items() if k.startswith("data/"))
    assert sorted(ds.texts) == ["Dodge the bullets", "Shoot the first wave"]
    assert cli("build-dataset", recs["air"][0], "--out", out, check=False).returncode == 2  # no silent overwrite


def test_an_append_cut_off_before_its_commit_reads_as_before_and_reruns(recs, tmp_path):
    from contra_bc.dataset.loader import DatasetReader

    out = tmp_path / "grow"
    build(*recs["air"][:2], "--out", out)
    old_info = (out / "meta" / "info.json").read_bytes()
    build(recs["air"][2], "--out", out, "--append")
    # the append is cut off after the new shard and episodes/texts tables, before info.json (its commit)
    (out / "meta" / "info.json").write_bytes(old_info)
    ds = DatasetReader(out)
    assert len(ds.episodes) == 2 and len(ds.texts) == 2                 # the dataset as it was
    _, report = build(recs["air"][2], "--out", out, "--append")         # rerunning finishes the append
    assert [r["status"] for r in report["recordings"]] == ["added"]
    assert len(DatasetReader(out).episodes) == 3


def test_a_resumed_build_does_not_reuse_shards_of_a_replaced_recording():
    """The unfinished build's folder is named by the plan and by the recordings' bytes: a recording
    replaced by another of the same length makes another folder, so its old shard is never reused."""
    from contra_bc.dataset.build import ConvertJob, _plan_hash

    jobs = [ConvertJob("/r/a", "data/chunk-000/file-000.parquet", 0, 0, 120, [None] * 120, 192)]
    source = {"start_state_sha1": "s", "steps_sha1": "x", "video_sha1": "v", "annotations_sha1": None}
    same = _plan_hash(jobs, [dict(source)])
    assert same == _plan_hash(jobs, [dict(source)])
    assert _plan_hash(jobs, [{**source, "steps_sha1": "y"}]) != same
    assert _plan_hash(jobs, [{**source, "video_sha1": "w"}]) != same
    assert _plan_hash(jobs, [{**source, "annotations_sha1": "n"}]) != same


def test_a_video_segment_from_another_recording_is_refused(recs, tmp_path):
    a = tmp_path / "a"
    shutil.copytree(recs["air"][0], a)
    (a / "annotations.json").unlink(missing_ok=True)
    for seg in sorted((recs["air"][1] / "video").glob("*.mkv")):  # b's pictures under a's name
        shutil.copyfile(seg, a / "video" / seg.name)
    proc, _ = build(a, "--out", tmp_path / "ds", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    import re

    assert re.search(r"video frame \d+ is not the screen", " ".join(proc.stderr.split()))
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ds").exists()


def test_filter_drops_held_button_episode(recs, tmp_path):
    proc, report = build(recs["held"], recs["air"][1], "--out", tmp_path / "f")
    held = next(r for r in report["recordings"] if r["name"] == "held")
    assert held["status"] == "dropped" and "stuck input: B held" in held["reason"], held
    assert [r["status"] for r in report["recordings"] if r["name"] != "held"] == ["added"]
    _, kept = build(recs["held"], "--out", tmp_path / "nf", "--no-filter")
    assert kept["recordings"][0]["status"] == "added"


def test_incomplete_corrupt_and_annotation_errors(recs, tmp_path):
    from contra_bc.formats.atomic import write_json

    good = recs["air"][2]
    # incomplete: skipped with a reason, or its prefix kept with --include-incomplete
    inc = tmp_path / "inc" / "cut"
    shutil.copytree(good, inc)
    meta = json.loads((inc / "meta.json").read_text())
    write_json(inc / "meta.json", {**meta, "complete": False, "status": "interrupted"})
    _, report = build(inc, good, "--out", tmp_path / "d1")
    cut = next(r for r in report["recordings"] if r["name"] == "cut")
    assert cut["status"] == "skipped" and "incomplete" in cut["reason"]
    _, report = build(inc, "--out", tmp_path / "d2", "--include-incomplete")
    assert report["recordings"][0]["status"] == "added"
    # nothing usable at all: a clear error, no dataset
    proc, _ = build(inc, "--out", tmp_path / "d3", check=False)
    assert proc.returncode == 2 and "--include-incomplete" in proc.stderr and not (tmp_path / "d3").exists()
    # a truncated steps table
    bad = tmp_path / "bad" / "broken"
    shutil.copytree(good, bad)
    data = (bad / "steps.parquet").read_bytes()
    (bad / "steps.parquet").write_bytes(data[: len(data) // 2])
    proc, _ = build(bad, "--out", tmp_path / "d4", check=False)
    assert proc.returncode == 2 and "unreadable" in proc.stderr and "Traceback" not in proc.stderr
    # a missing video segment
    novid = tmp_path / "novid" / "short"
    shutil.copytree(good, novid)
    sorted((novid / "video").iterdir())[-1].unlink()
    proc, _ = build(novid, "--out", tmp_path / "d5", check=False)
    assert proc.returncode == 2 and "video holds only" in proc.stderr
    assert not list(tmp_path.glob("d5*/data/**/.*tmp"))
    assert not list(tmp_path.glob("d5.partial-*"))  # no shard finished: no folder left behind
    # annotations: missing + required, and a file made for another recording
    proc, _ = build(good, "--out", tmp_path / "d6", "--require-annotations", check=False)
    assert proc.returncode == 2 and "--require-annotations" in proc.stderr
    adir = tmp_path / "ann"
    adir.mkdir()
    shutil.copy(recs["air"][0] / "annotations.json", adir / f"{good.name}.annotations.json")
    proc, _ = build(good, "--out", tmp_path / "d7", "--annotations", adir, check=False)
    assert proc.returncode == 2 and "annotates a different recording" in proc.stderr
    shutil.copy(recs["air"][0] / "annotations.json", adir / f"{recs['air'][0].name}.annotations.json")
    _, report = build(recs["air"][0], "--out", tmp_path / "d8", "--annotations", adir)
    assert report["recordings"][0]["annotated"] is True


def test_verify_drops_diverging_recording(recs, tmp_path):
    changed = tmp_path / "div" / "edited"
    shutil.copytree(recs["air"][1], changed)

    # no buttons for steps 20..39: the replayed ship stops moving and firing there
    rewrite_steps(changed, lambda c: c["action"].__setitem__(slice(20, 40), [0] * 20))
    proc, report = build(changed, recs["air"][2], "--out", tmp_path / "v", "--verify", check=False)
    assert proc.returncode == 1
    edited = next(r for r in report["recordings"] if r["name"] == "edited")
    assert edited["status"] == "dropped" and "diverged at step" in edited["reason"]
    assert report["episodes_total"] == 1


def test_preprocess_frame_equals_dense_box_filter():
    """preprocess_frame computes the box filter fast; it must equal the dense product exactly."""
    from contra_bc.preprocess import _SHIFT, _weights, preprocess_frame

    def dense(screen, size):
        h, w = screen.shape[:2]
        wy, wx = _weights(h, size).astype(np.float64), _weights(w, size).astype(np.float64)
        rows = (wy @ screen.reshape(h, w * 3).astype(np.float64)).reshape(size, w, 3).transpose(0, 2, 1)
        out = (rows @ wx.T).transpose(0, 2, 1).astype(np.int64)
        return np.clip((out + (1 << (2 * _SHIFT - 1))) >> (2 * _SHIFT), 0, 255).astype(np.uint8)

    from contra_bc.preprocess import _plan

    # both code paths: block matrix products where the weights are periodic, taps elsewhere
    assert _plan(224, 240, 192) is not None and _plan(224, 320, 64) is not None and _plan(100, 150, 192) is None
    rng = np.random.default_rng(7)
    for shape in [(224, 240, 3), (224, 320, 3), (192, 192, 3), (100, 150, 3), (240, 256, 3)]:
        for screen in [rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 255, np.uint8),
                       np.zeros(shape, np.uint8)]:
            for size in (192, 64):
                assert np.array_equal(preprocess_frame(screen, size), dense(screen, size)), (shape, size)


@needs_outpost
def test_outpost_nes_frames_bitwise(tmp_path):
    """NES screens (224x240) through the same path: build, then compare with a replay."""
    from contra_bc.dataset.loader import DatasetReader

    rec = tmp_path / "nes"
    cli("record", "--input", "bot:random", "--game", "Outpost-Nes", "--out", rec, "--max-steps", 100,
        "--episode-until", "never")
    _, report = build(rec, "--out", tmp_path / "d", "--no-filter")
    ds = DatasetReader(tmp_path / "d")
    assert ds.info["game"] == "Outpost-Nes" and ds.info["buttons"][1] is None
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        expected = pool.apply(replay_screens, (str(rec),))
    assert np.array_equal(ds.read(0, 0, ds.episodes[0]["length"])["frame"], expected)


def test_annotations_from_the_annotate_cli(recs, tmp_path):
    """`annotate --from-table --out-dir DIR` output is read by `build-dataset --annotations DIR`."""
    from contra_bc.dataset.loader import DatasetReader

    table = tmp_path / "table.md"
    table.write_text("| Start | End | Text |\n|---|---|---|\n| 00:01 | 00:02 | Fly up to the top lane. |\n"
                     "| 00:03 |  | Keep firing at the incoming wave. |\n")
    adir = tmp_path / "ann"
    cli("annotate", recs["air"][2], "--from-table", table, "--out-dir", adir)
    assert (adir / f"{recs['air'][2].name}.annotations.json").is_file()
    _, report = build(recs["air"][2], "--out", tmp_path / "d", "--annotations", adir, "--require-annotations")
    assert report["recordings"][0]["annotated"] is True
    ds = DatasetReader(tmp_path / "d")
    text = ds.read(0, 0, STEPS)["text"].tolist()
    fly, fire = ds.texts.index("Fly up to the top lane."), ds.texts.index("Keep firing at the incoming wave.")
    # 20 Hz: 00:01 is step 20, 00:02 ends at step 40 (inclusive), 00:03 starts at step 60, open end
    assert text == [-1] * 20 + [fly] * 21 + [-1] * 19 + [fire] * 60


def test_jittered_windows_move_with_the_seed_and_cover_the_episode(built):
    from contra_bc.dataset.loader import WindowDataset

    out, _ = built
    plain = WindowDataset(out, split=None, window=32)
    cuts = {s: WindowDataset(out, split=None, window=32, jitter_seed=s).windows for s in (0, 0, 1, 2, 3)}
    assert {s for _, s in plain.windows if s < 32} == {0}
    assert WindowDataset(out, split=None, window=32, jitter_seed=0).windows == cuts[0]  # reproducible
    offsets = {tuple(s % 32 for _, s in cuts[seed]) for seed in (0, 1, 2, 3)}
    assert len(offsets) > 1                                      # another epoch, other windows
    from contra_bc.dataset.loader import DatasetReader

    reader = DatasetReader(out)
    masks = {e: reader.read(e, 0, STEPS)["loss_mask"] for e in range(len(reader.episodes))}
    assert any(not m.all() for m in masks.values())  # the corrected recording: some steps are not trained on
    for seed in (0, 1, 2, 3):
        by_episode = {}
        for e, s in cuts[seed]:
            by_episode.setdefault(e, []).append(s)
        for e, starts in by_episode.items():
            first = starts[0] % 32                                            # back to back from the offset
            every = list(range(first, STEPS, 32))
            assert starts == [s for s in every if masks[e][s:s + 32].any()]  # all but the untrained windows


@needs_outpost
def test_noisy_expert_mistakes_are_recorded_and_never_trained_on(tmp_path):
    from contra_bc.dataset.loader import DatasetReader

    cli("record", "--input", "bot:expert-noisy", "--game", "Outpost-Nes", "--out", tmp_path / "noisy",
        "--max-steps", 400, "--seed", 7)
    actors = pq.read_table(tmp_path / "noisy" / "steps.parquet").column("actor").to_pylist()
    assert set(actors) == {"script", "perturbation"} and actors.count("perturbation") >= 3
    verify = cli("replay-verify", tmp_path / "noisy", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    proc, report = build(tmp_path / "noisy", "--out", tmp_path / "ds")
    ds = DatasetReader(tmp_path / "ds")
    mask = ds.read(0, 0, len(actors))["loss_mask"]
    assert mask.tolist() == [a == "script" for a in actors]
    assert ds.episodes[0]["loss_steps"] == actors.count("script")


def test_focus_repeats_exactly_the_windows_holding_a_rare_press(built):
    """--focus: windows where a rarely pressed button goes down are shown `focus` times; others once."""
    import collections

    import numpy as np

    from contra_bc.dataset.loader import DatasetReader, WindowDataset

    out, _ = built
    reader = DatasetReader(out)
    buttons = reader.info["buttons"]
    plain = WindowDataset(out, split="train", window=16)
    focused = WindowDataset(out, split="train", window=16, focus=3)
    # the rule, computed here from the raw rows: press edges on trained-on steps, per button
    edges, steps = {}, 0
    for e in {e for e, _ in plain.windows}:
        rows = reader.read(e, 0, reader.episodes[e]["length"])
        bits = (rows["action"][:, None] >> np.arange(len(buttons))) & 1
        down = np.zeros(bits.shape, bool)
        down[1:] = (bits[1:] == 1) & (bits[:-1] == 0)
        edges[e] = down & rows["loss_mask"][:, None]
        steps += len(rows["action"])
    rate = sum(v.sum(axis=0) for v in edges.values()) / steps
    rare = (rate > 0) & (rate < 1 / 16)
    assert focused.rare_buttons == [b for b, r in zip(buttons, rare) if r]
    counts = collections.Counter(focused.windows)
    assert set(counts) == set(plain.windows)
    holding = {w for w in plain.windows if edges[w[0]][w[1]:w[1] + 16][:, rare].any()}
    assert 0 < len(holding) < len(plain.windows)  # the data has both kinds, so the test can fail
    assert all(counts[w] == (3 if w in holding else 1) for w in plain.windows)
    assert WindowDataset(out, split="train", window=16, focus=1).windows == plain.windows


@needs_outpost
def test_drills_start_at_the_turret_and_wait_a_seeded_untrained_while(tmp_path):
    """bot:expert-drill from Level1Turret: the run starts on screen 1; its first steps stand still as
    `perturbation` (never trained on) for a seeded number of steps that differs between seeds; the
    recording replays bit for bit."""
    from contra_bc.bots.expert_outpost import DrillExpertOutpost

    waits = {}
    for seed in (3, 4):
        out = tmp_path / f"drill{seed}"
        cli("record", "--input", "bot:expert-drill", "--game", "Outpost-Nes", "--state", "Level1Turret",
            "--out", out, "--max-steps", 120, "--seed", seed)
        meta = json.loads((out / "meta.json").read_text())
        assert meta["state"] == "Level1Turret"
        steps = pq.read_table(out / "steps.parquet").to_pylist()
        assert steps[0]["var_screen"] == 1
        wait = DrillExpertOutpost(seed=seed).wait
        assert [(s["actor"], s["action"]) for s in steps[:wait]] == [("perturbation", 0)] * wait
        assert steps[wait]["actor"] == "script" and steps[wait]["action"] != 0
        waits[seed] = wait
        verify = cli("replay-verify", out, check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    assert waits[3] != waits[4]


@needs_outpost
def test_respawn_runs_lose_the_first_life_untrained_and_hop_after_the_respawn(tmp_path):
    """bot:expert-respawn: the first life ends at the turret's bullet on screen 1 and, with the death, is
    all `perturbation` (never trained on); from the respawn the expert plays (`script`, but for
    expert-noisy's own mistakes), hops the bullet on the same screen and does not die again; the
    recording replays bit for bit."""
    out = tmp_path / "respawn"
    cli("record", "--input", "bot:expert-respawn", "--game", "Outpost-Nes", "--out", out, "--max-steps", 640,
        "--seed", 4)
    steps = pq.read_table(out / "steps.parquet").to_pylist()
    dead = [i for i, s in enumerate(steps) if s["var_player_state"] == 2]
    first, last = dead[0], dead[-1]
    assert dead == list(range(first, last + 1))  # one death
    assert steps[first]["var_screen"] == 1 and steps[first]["var_enemy_bullet_on_0"] + steps[first]["var_enemy_bullet_on_1"]
    played = next(i for i, s in enumerate(steps) if s["actor"] == "script")
    assert 0 < played - last <= 2  # from the respawn on
    assert {s["actor"] for s in steps[:played]} == {"perturbation"}
    hops = [i for i in range(played, len(steps)) if steps[i]["action"] & 256 and not steps[i - 1]["action"] & 256
            and steps[i]["var_screen"] == 1 and steps[i]["var_enemy_bullet_on_0"]]
    assert hops, "no hop over the bullet after the respawn"
    verify = cli("replay-verify", out, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
