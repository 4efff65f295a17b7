"""Hostile input across the subcommands: damaged files and odd options.

The promise: one paragraph on stderr, exit 2, no traceback, and nothing already on disk changed.
Each case damages a copy of a real artefact (a recording, an annotations file, a dataset, a
checkpoint) the way a hand edit or a broken disk would, then runs the command that reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli
from tiny_policy import GAME, tiny_run  # noqa: F401  (session fixture)


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def refused(proc, *words):
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\n{text}"
    assert "Traceback" not in text, text
    flat = " ".join(proc.stderr.split())
    for w in words:
        assert w in flat, flat


def edit_json(path: Path, change):
    doc = json.loads(path.read_text())
    doc = change(doc)
    path.write_text(json.dumps(doc))


META_DAMAGE = {
    "hz zero": lambda m: {**m, "hz": 0},
    "hz negative": lambda m: {**m, "hz": -5},
    "frames_per_step zero": lambda m: {**m, "frames_per_step": 0},
    "buttons empty": lambda m: {**m, "buttons": []},
    "buttons wrong type": lambda m: {**m, "buttons": "B,A"},
    "version as string": lambda m: {**m, "format_version": "1"},
    "steps as string": lambda m: {**m, "steps": str(m["steps"])},
    "a list": lambda m: [],
    "null": lambda m: None,
    "no video": lambda m: {k: v for k, v in m.items() if k != "video"},
}


@pytest.mark.parametrize("damage", list(META_DAMAGE))
def test_damaged_recording_meta_is_refused_by_every_reader(airstriker_recording, tmp_path, damage):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    edit_json(rec / "meta.json", META_DAMAGE[damage])
    before = snapshot(tmp_path)
    for args in (["replay-verify", rec], ["build-dataset", rec, "--out", tmp_path / "ds"],
                 ["export", rec, "--to", tmp_path / "movie.bk2"]):
        refused(run_cli(*args))
    assert snapshot(tmp_path) == before


def test_version_as_string_is_named_as_a_type_problem(airstriker_recording, tmp_path):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    edit_json(rec / "meta.json", META_DAMAGE["version as string"])
    refused(run_cli("replay-verify", rec), "`format_version` must be an integer")


def test_actions_on_missing_buttons_are_refused(airstriker_recording, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    table = pq.read_table(rec / "steps.parquet")
    actions = table.column("action").to_numpy().copy()
    actions[7] = 1 << 20
    table = table.set_column(table.schema.get_field_index("action"), "action", pa.array(actions, pa.int64()))
    pq.write_table(table, rec / "steps.parquet")
    refused(run_cli("build-dataset", rec, "--out", tmp_path / "ds"), "step 7 presses buttons")


ANNOTATION_DAMAGE = {
    "a list": lambda d: [],
    "null": lambda d: None,
    "entries not a list": lambda d: {**d, "entries": {"a": 1}},
    "step as string": lambda d: {**d, "entries": [{**d["entries"][0], "start_step": "3"}]},
    "no recording": lambda d: {k: v for k, v in d.items() if k != "recording"},
}


@pytest.mark.parametrize("damage", list(ANNOTATION_DAMAGE))
def test_damaged_annotations_are_refused_and_never_up_to_date(airstriker_recording, tmp_path, damage):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    table = tmp_path / "table.md"
    table.write_text("| Start | End | Text |\n|---|---|---|\n| 00:01 | 00:03 | Shoot the first wave |\n")
    assert run_cli("annotate", rec, "--from-table", table).returncode == 0
    edit_json(rec / "annotations.json", ANNOTATION_DAMAGE[damage])
    before = snapshot(tmp_path)
    refused(run_cli("build-dataset", rec, "--out", tmp_path / "ds"))
    again = run_cli("annotate", rec, "--from-table", table, "--json")
    assert "up to date" not in again.stdout and "Traceback" not in again.stderr, again.stdout + again.stderr
    assert again.returncode == 2 and "damaged" in " ".join(again.stderr.split())
    assert snapshot(tmp_path) == before


INFO_DAMAGE = {
    "a list": lambda d: [],
    "hz zero": lambda d: {**d, "hz": 0},
    "version as string": lambda d: {**d, "format_version": "1"},
    "counts missing": lambda d: {k: v for k, v in d.items() if k != "counts"},
    "buttons short": lambda d: {**d, "buttons": []},
}


@pytest.mark.parametrize("damage", list(INFO_DAMAGE))
def test_damaged_dataset_info_is_refused(tiny_run, tmp_path, damage):
    run, dataset = tiny_run
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    edit_json(ds / "meta" / "info.json", INFO_DAMAGE[damage])
    before = snapshot(tmp_path)
    refused(run_cli("train", ds, "--out", tmp_path / "run", "--preset", "tiny", "--max-steps", 2, "--workers", 0))
    refused(run_cli("causality-score", run, ds))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_damaged_shard_is_refused_before_training(tiny_run, tmp_path, damage):
    _, dataset = tiny_run
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    shard = sorted((ds / "data").rglob("*.parquet"))[0]
    data = shard.read_bytes()
    shard.write_bytes(os.urandom(len(data)) if damage == "random" else data[: len(data) // 2])
    proc = run_cli("train", ds, "--out", tmp_path / "run", "--preset", "tiny", "--max-steps", 2, "--workers", 2,
                   "--text-encoder", "hashed")
    refused(proc, "damaged")
    assert not (tmp_path / "run").exists()


CONFIG_DAMAGE = {
    "a list": lambda c: [],
    "width as string": lambda c: {**c, "model": {**c["model"], "d_model": "64"}},
    "shapes of another model": lambda c: {**c, "model": {**c["model"], "d_model": 128}},
    "heads that do not divide": lambda c: {**c, "model": {**c["model"], "n_heads": 3}},
}


@pytest.mark.parametrize("damage", list(CONFIG_DAMAGE))
def test_damaged_checkpoint_config_is_refused(tiny_run, tmp_path, damage):
    run, dataset = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = copy / (copy / "last").read_text().strip()
    edit_json(ckpt / "config.json", CONFIG_DAMAGE[damage])
    before = snapshot(tmp_path)
    refused(run_cli("play", copy, "--game", GAME, "--fast", "--max-steps", 5, "--baseline", "none"))
    refused(run_cli("causality-score", copy, dataset))
    assert snapshot(tmp_path) == before


def test_empty_last_pointer_names_last(tiny_run, tmp_path):
    run, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "last").write_text("")
    refused(run_cli("play", copy, "--game", GAME, "--fast", "--max-steps", 5), "last is empty")


def test_empty_action_table_and_damaged_movie_make_no_recording(airstriker_recording, tmp_path):
    (tmp_path / "empty.csv").write_text("buttons\n")
    refused(run_cli("record", "--input", tmp_path / "empty.csv", "--game", GAME, "--out", tmp_path / "a"),
            "no step to record")
    assert not (tmp_path / "a").exists()
    movie = tmp_path / "movie.bk2"
    assert run_cli("export", airstriker_recording, "--to", movie).returncode == 0
    for name, core in (("garbage", os.urandom(len(zipfile.ZipFile(movie).read("Core.bin")))),
                       ("truncated", zipfile.ZipFile(movie).read("Core.bin")[:100])):
        bad = tmp_path / f"{name}.bk2"
        with zipfile.ZipFile(movie) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.namelist():
                dst.writestr(item, core if item == "Core.bin" else src.read(item))
        proc = run_cli("record", "--input", bad, "--out", tmp_path / name)
        if "power-on" in zipfile.ZipFile(movie).read("Header.txt").decode():
            assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr  # Core.bin unused: power-on movie
        else:
            refused(proc, "not a state")
            assert not (tmp_path / name).exists() or not json.loads(
                (tmp_path / name / "meta.json").read_text()).get("complete")


BAD_OPTIONS = [
    ("record", "--input", "bot:random", "--game", GAME, "--hz", "0"),
    ("record", "--input", "bot:random", "--game", GAME, "--hz", "-5"),
    ("record", "--input", "bot:random", "--game", GAME, "--hz", "nan"),
    ("record", "--input", "bot:random", "--game", GAME, "--hz", "inf"),
    ("record", "--input", "bot:random", "--game", GAME, "--workers", "-1"),
    ("train", "DATASET", "--window", "0"),
    ("train", "DATASET", "--stop-at", "0"),
    ("train", "DATASET", "--stop-at", "-1"),
    ("train", "DATASET", "--lr", "-1"),
    ("train", "DATASET", "--lr", "nan"),
    ("train", "DATASET", "--eval-every", "0"),
    ("train", "DATASET", "--save-every", "0"),
    ("train", "DATASET", "--log-every", "0"),
    ("train", "DATASET", "--device", "bogus"),
    ("train", "DATASET", "--text-dropout", "1.5"),
    ("train", "DATASET", "--image-pool", "0"),
    ("train", "DATASET", "--image-pool", "9"),
    ("play", "RUN", "--temperature", "nan"),
    ("play", "RUN", "--temperature", "-1"),
    ("build-dataset", "DATASET", "--frame-size", "100000"),
    ("downsample-check", "DATASET", "--to-hz", "0"),
    ("causality-score", "RUN", "DATASET", "--p", "2"),
]


@pytest.mark.parametrize("args", BAD_OPTIONS, ids=[" ".join(a) for a in BAD_OPTIONS])
def test_bad_option_values_are_refused(tiny_run, tmp_path, args):
    run, dataset = tiny_run
    args = [str(dataset) if a == "DATASET" else str(run) if a == "RUN" else a for a in args]
    if args[0] in ("record", "train", "build-dataset"):
        args += ["--out", str(tmp_path / "out")]
    refused(run_cli(*args))
    assert not (tmp_path / "out").exists()


def test_outputs_that_are_files_are_refused(tiny_run, tmp_path):
    run, dataset = tiny_run
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    refused(run_cli("train", dataset, "--out", blocker, "--preset", "tiny", "--max-steps", 2, "--workers", 0))
    refused(run_cli("train", dataset, "--out", blocker / "run", "--preset", "tiny", "--max-steps", 2, "--workers", 0))
    refused(run_cli("build-dataset", dataset.parent / "recordings", "--out", blocker))
    refused(run_cli("play", run, "--game", GAME, "--episodes", 2, "--max-steps", 5, "--out", blocker))
    assert blocker.read_text() == "keep me"


def test_train_on_frames_too_small_for_the_model(tiny_run, tmp_path):
    _, dataset = tiny_run
    small = tmp_path / "ds8"
    assert run_cli("build-dataset", dataset.parent / "recordings", "--out", small, "--frame-size", "8",
                   "--no-filter").returncode == 0
    refused(run_cli("train", small, "--out", tmp_path / "run", "--preset", "small", "--max-steps", 2,
                    "--workers", 0), "takes frames of at least 64x64")
    assert not (tmp_path / "run").exists()
