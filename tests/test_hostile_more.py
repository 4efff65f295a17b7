"""The last hostile inputs: wrong column types, damaged run folders, a resume that must not start over,
blind tiny encoders, silent acceptance, leftovers, and Ctrl-C to a worker pool's process group.

Same promise as tests/test_hostile.py: one paragraph, exit 2, no traceback, nothing on disk changed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli_env, needs_outpost, run_cli
from test_hostile import edit_json, refused, snapshot
from tiny_policy import GAME, tiny_run  # noqa: F401  (session fixture)


def _retype_actions(rec: Path, kind: str) -> None:
    table = pq.read_table(rec / "steps.parquet")
    values = table.column("action").to_pylist()
    column = pa.array([float(v) + 0.5 for v in values]) if kind == "float" else pa.array([str(v) for v in values])
    table = table.set_column(table.schema.get_field_index("action"), "action", column)
    pq.write_table(table, rec / "steps.parquet")


@pytest.mark.parametrize("kind", ["float", "string"])
def test_an_action_column_of_the_wrong_type_is_refused_by_every_reader(airstriker_recording, tmp_path, kind):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    _retype_actions(rec, kind)
    table = tmp_path / "table.md"
    table.write_text("| Start | End | Text |\n|---|---|---|\n| 00:01 | 00:03 | Shoot the first wave |\n")
    before = snapshot(tmp_path)
    for args in (["replay-verify", rec], ["replay-verify", rec, "--check-video"],
                 ["build-dataset", rec, "--out", tmp_path / "ds"], ["annotate", rec, "--from-table", table],
                 ["downsample-check", rec], ["export", rec, "--to", tmp_path / "m.bk2"]):
        refused(run_cli(*args), "`action` is")
    assert snapshot(tmp_path) == before


def test_a_meta_that_names_another_game_or_lacks_its_outcome_is_refused(airstriker_recording, tmp_path):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    edit_json(rec / "meta.json", lambda m: {**m, "game": "Outpost-Nes"})
    before = snapshot(tmp_path)
    refused(run_cli("export", rec, "--to", tmp_path / "m.bk2"), "names the game Outpost-Nes")
    refused(run_cli("replay-verify", rec), "names the game Outpost-Nes")
    assert snapshot(tmp_path) == before
    shutil.rmtree(rec)
    shutil.copytree(airstriker_recording, rec)
    edit_json(rec / "meta.json", lambda m: {k: v for k, v in m.items() if k != "outcome"})
    refused(run_cli("downsample-check", rec), "`outcome` is missing")
    refused(run_cli("export", rec, "--to", tmp_path / "m.bk2"), "`outcome` is missing")
    assert not (tmp_path / "m.bk2").exists()


def test_export_refuses_a_recording_made_with_another_rom(airstriker_recording, tmp_path):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    edit_json(rec / "meta.json", lambda m: {**m, "rom_sha1": "0" * 40})
    refused(run_cli("export", rec, "--to", tmp_path / "m.bk2"), "was recorded with ROM SHA-1 " + "0" * 40)
    assert not (tmp_path / "m.bk2").exists()


def test_action_files_and_movies_with_impossible_values_record_nothing(tmp_path):
    (tmp_path / "huge.csv").write_text("action\n1\n" + "9" * 30 + "\n")
    refused(run_cli("record", "--input", tmp_path / "huge.csv", "--game", "Outpost-Nes", "--out", tmp_path / "a"),
            "presses a button the platform does not have")
    (tmp_path / "slot.csv").write_text("action\n0\n2\n")  # bit 1: the NES's empty slot
    refused(run_cli("record", "--input", tmp_path / "slot.csv", "--game", "Outpost-Nes", "--out", tmp_path / "b"),
            "row 1 presses a button")
    fm2 = tmp_path / "big.fm2"
    fm2.write_text("version 3\nemuVersion 20604\nromFilename x\nromChecksum base64:" + "A" * 22 + "==\n"
                   "port0 1\nport1 0\nport2 0\n|0|........|||\n|" + "9" * 25 + "|........|||\n")
    refused(run_cli("record", "--input", fm2, "--out", tmp_path / "c"), "commands field")
    assert not any((tmp_path / n).exists() for n in "abc")


def _stopped_run(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run with checkpoints at steps 12 and 24."""
    run, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_resume_without_last_continues_from_the_newest_checkpoint(tiny_run, tmp_path):
    _, dataset = tiny_run
    run = _stopped_run(tiny_run, tmp_path)
    (run / "last").unlink()
    metrics = (run / "metrics.jsonl").read_text()
    proc = run_cli("train", dataset, "--out", run, "--resume", "--max-steps", 30, "--workers", 0, "--json",
                   timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 30
    assert (run / "metrics.jsonl").read_text().startswith(metrics)  # kept, then continued
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 30 and min(s for s in steps if s > 24) > 24


RUN_CONFIG_DAMAGE = {
    "garbled": lambda p: p.write_text("{not json"),
    "a JSON array": lambda p: p.write_text("[]"),
    "no train table": lambda p: p.write_text(json.dumps({"model": {}})),
}
STATE_DAMAGE = {
    "garbled state": lambda c: (c / "training_state.json").write_text("{oops"),
    "incomplete state": lambda c: edit_json(c / "training_state.json", lambda s: {"step": s["step"]}),
    "truncated tensors": lambda c: (c / "training_state.safetensors").write_bytes(
        (c / "training_state.safetensors").read_bytes()[:200]),
    "swapped tensors": lambda c: shutil.copyfile(c / "model.safetensors", c / "training_state.safetensors"),
}


@pytest.mark.parametrize("damage", list(RUN_CONFIG_DAMAGE) + list(STATE_DAMAGE))
def test_a_damaged_run_folder_is_refused_and_left_as_it_was(tiny_run, tmp_path, damage):
    _, dataset = tiny_run
    run = _stopped_run(tiny_run, tmp_path)
    if damage in RUN_CONFIG_DAMAGE:
        RUN_CONFIG_DAMAGE[damage](run / "config.json")
    else:
        STATE_DAMAGE[damage](run / (run / "last").read_text().strip())
    before = snapshot(tmp_path)
    refused(run_cli("train", dataset, "--out", run, "--resume", "--max-steps", 30, "--workers", 0))
    play = run_cli("play", run, "--game", GAME, "--fast", "--max-steps", 5, "--baseline", "none")
    assert play.returncode == 0, play.stderr  # play needs the checkpoint's weights and config only
    assert snapshot(tmp_path) == before


CHECKPOINT_CONFIG_DAMAGE = {
    "garbled": lambda p: p.write_text("{not json"),
    "a JSON array": lambda p: p.write_text("[]"),
    "dataset as a string": lambda p: edit_json(p, lambda c: {**c, "dataset": "somewhere"}),
    "texts as a number": lambda p: edit_json(p, lambda c: {**c, "texts": 3}),
    "schema as a string": lambda p: edit_json(p, lambda c: {**c, "action_schema": "B,A"}),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_CONFIG_DAMAGE))
def test_a_damaged_checkpoint_config_is_refused_by_play_and_resume(tiny_run, tmp_path, damage):
    _, dataset = tiny_run
    run = _stopped_run(tiny_run, tmp_path)
    CHECKPOINT_CONFIG_DAMAGE[damage](run / (run / "last").read_text().strip() / "config.json")
    before = snapshot(tmp_path)
    refused(run_cli("play", run, "--game", GAME, "--fast", "--max-steps", 5, "--baseline", "none"))
    refused(run_cli("train", dataset, "--out", run, "--resume", "--max-steps", 30, "--workers", 0))
    assert snapshot(tmp_path) == before


def test_config_file_values_of_the_wrong_type_are_refused(tiny_run, tmp_path):
    _, dataset = tiny_run
    (tmp_path / "train.toml").write_text('betas = "x"\nmax_steps = "ten"\n')
    refused(run_cli("train", dataset, "--out", tmp_path / "run", "--config", tmp_path / "train.toml"),
            "--betas must be a list of 2 numbers, not 'x'", "--max-steps must be an integer, not 'ten'")
    assert not (tmp_path / "run").exists()


def test_a_frame_size_that_blinds_the_encoder_is_refused_when_training_starts(tiny_run, tmp_path):
    _, dataset = tiny_run
    ds = tmp_path / "ds64"
    assert run_cli("build-dataset", dataset.parent / "recordings", "--out", ds, "--frame-size", 64,
                   "--no-filter", "--workers", 1).returncode == 0
    refused(run_cli("train", ds, "--out", tmp_path / "run", "--preset", "tiny", "--max-steps", 2, "--workers", 0),
            "takes frames of at least 128x128")
    assert not (tmp_path / "run").exists()


DATASET_DAMAGE = {
    "actions out of range": lambda ds: _rewrite_shard(ds, "action", lambda v: v | (1 << 20)),
    "a dangling text index": lambda ds: _rewrite_shard(ds, "text_index", lambda v: 99),
    "a changed button list": lambda ds: edit_json(ds / "meta" / "info.json",
                                                  lambda i: {**i, "buttons": i["buttons"][:4] + [None] * 8}),
}


def _rewrite_shard(ds: Path, column: str, change) -> None:
    shard = sorted((ds / "data").rglob("*.parquet"))[-1]
    table = pq.read_table(shard)
    values = [change(v if v is not None else 0) for v in table.column(column).to_pylist()]
    field = table.schema.field(column)
    table = table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type))
    pq.write_table(table, shard)


@pytest.mark.parametrize("damage", list(DATASET_DAMAGE))
def test_a_refused_dataset_leaves_no_run_folder(tiny_run, tmp_path, damage):
    _, dataset = tiny_run
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    DATASET_DAMAGE[damage](ds)
    refused(run_cli("train", ds, "--out", tmp_path / "run", "--preset", "tiny", "--max-steps", 2, "--workers", 2,
                    "--text-encoder", "hashed"))
    assert not (tmp_path / "run").exists()


@needs_outpost
def test_ctrl_c_to_the_process_group_of_a_worker_pool_prints_no_traceback(tmp_path):
    """The terminal sends Ctrl-C to every process of the group: a worker waiting for its next task
    must not die with a traceback; the command exits 130 with what it finished kept."""
    out = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-m", "contra_bc", "record", "--input", "bot:random", "--game",
                             "Outpost-Nes", "--episodes", "3", "--workers", "2", "--max-steps", "1500",
                             "--episode-until", "never", "--out", str(out)], env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # two finished, the third running: one worker has a job, the other waits for one that never comes
        while sum((out / f"episode-{i:04d}" / "steps.parquet").is_file() for i in range(3)) < 2 or \
                not (out / "episode-0002" / "meta.json").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGSTOP)  # the signal lands with every process frozen, wherever they are
        os.killpg(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout, stderr
    third = json.loads((out / "episode-0002" / "meta.json").read_text())
    assert third["complete"] is False and third["end_reason"] == "interrupted"
    verify = run_cli("replay-verify", out, "--workers", 1)
    assert verify.returncode == 0, verify.stdout + verify.stderr
