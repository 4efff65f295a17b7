"""Foundation: scripted record, replay-verify, the recording format, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, cli_env, last_json, run_cli, run_json
from contra_bc.emulator import digest64
from contra_bc.formats.recording import read_recording

COMMANDS = ["record", "replay-verify", "downsample-check", "annotate", "build-dataset", "train", "play",
            "causality-score", "render"]


def snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_recording_layout_and_alignment(airstriker_recording):
    rec = read_recording(airstriker_recording)
    assert rec.complete and rec.n_steps == 300
    assert rec.meta["game"] == "Airstriker-Genesis-v0" and rec.meta["buttons"][7] == "RIGHT"
    assert rec.meta["source"] == "script" and set(rec.column("actor")) == {"script"}
    frames = list(rec.frames())
    assert len(frames) == rec.n_steps
    # frame i is what the actor saw before step i: the screen after step i-1
    assert digest64(frames[0]) == rec.meta["first_frame_hash"]
    hashes = rec.column("frame_hash")
    assert all(digest64(frames[i]) == hashes[i - 1] for i in range(1, len(frames)))
    assert len(set(rec.actions.tolist())) > 3


def test_scripted_recording_verifies(airstriker_recording):
    code, results = run_json("replay-verify", airstriker_recording, "--check-video")
    assert code == 0, results
    (r,) = results
    assert r["status"] == "verified" and r["verified_steps"] == 300 and r["video"]["ok"]


def _with_actions(src: Path, dst: Path, actions: np.ndarray) -> None:
    shutil.copytree(src, dst)
    table = pq.read_table(dst / "steps.parquet")
    table = table.set_column(table.schema.get_field_index("action"), "action",
                             pa.array(actions.astype(np.int32), pa.int32()))
    pq.write_table(table, dst / "steps.parquet")


def test_changed_action_reported_at_first_differing_step(airstriker_recording, tmp_path):
    rec = read_recording(airstriker_recording)
    k = 150
    actions = rec.actions.copy()
    actions[k] = actions[k] ^ (1 << 6) ^ (1 << 7) ^ 1  # flip LEFT, RIGHT and B
    # The ground truth: record the changed action list for real and find where the hashes part.
    csv_path = tmp_path / "changed.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["action"])
        w.writerows([[int(a)] for a in actions])
    run_cli("record", "--input", csv_path, "--game", "Airstriker-Genesis-v0", "--episode-until", "never",
            "--out", tmp_path / "truth", check=True)
    truth = read_recording(tmp_path / "truth")
    differs = (truth.column("frame_hash") != rec.column("frame_hash")) | (truth.column("ram_hash") != rec.column("ram_hash"))
    expected = int(np.flatnonzero(differs)[0])
    assert expected >= k

    _with_actions(airstriker_recording, tmp_path / "changed", actions)
    code, results = run_json("replay-verify", tmp_path / "changed", "--report-dir", tmp_path / "report")
    assert code == 1
    div = results[0]["first_divergence"]
    assert div["step"] == expected
    png = Path(div["png"])
    assert png.is_file() and png.stat().st_size > 1000


def test_csv_buttons_column_and_bad_action_file(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("buttons\nRIGHT\nRIGHT+B\n\nLEFT+UP\n")
    run_cli("record", "--input", path, "--game", "Airstriker-Genesis-v0", "--out", tmp_path / "r", check=True)
    rec = read_recording(tmp_path / "r")
    assert rec.actions.tolist() == [1 << 7, (1 << 7) | 1, 0, (1 << 6) | (1 << 4)]
    assert rec.meta["end_reason"] == "input_exhausted"
    bad = tmp_path / "bad.csv"
    bad.write_text("buttons\nRIGHT+JUMP\n")
    proc = run_cli("record", "--input", bad, "--game", "Airstriker-Genesis-v0", "--out", tmp_path / "r2")
    assert proc.returncode == 2 and "JUMP" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r2").exists()


def _start_slow_recording(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "contra_bc", "record", "--input", "bot:airstriker", "--game",
                             "Airstriker-Genesis-v0", "--max-steps", "100000", "--episode-until", "never",
                             "--realtime", "--hz", "120", "--out", str(out)],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_chunks(out: Path, n: int, proc) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if len(list((out / "steps").glob("*.parquet"))) >= n:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    raise AssertionError("recording made no progress")


@pytest.mark.parametrize("how", ["sigint", "kill9"])
def test_interrupted_recording_leaves_verifiable_prefix(tmp_path, how):
    out = tmp_path / "rec"
    proc = _start_slow_recording(out)
    _wait_for_chunks(out, 2, proc)
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    proc.wait(timeout=60)
    if how == "sigint":
        assert proc.returncode == 130
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is False
    assert meta["status"] == ("interrupted" if how == "sigint" else "recording")
    code, results = run_json("replay-verify", out, "--check-video")
    assert code == 0, results
    assert results[0]["status"] == "verified" and results[0]["steps"] >= 200


def test_refuses_to_overwrite(airstriker_recording):
    before = snapshot(airstriker_recording)
    proc = run_cli("record", "--input", "bot:random", "--game", "Airstriker-Genesis-v0", "--out", airstriker_recording)
    assert proc.returncode == 2 and "never overwrites" in proc.stderr
    assert snapshot(airstriker_recording) == before


@pytest.mark.parametrize("damage", ["truncated_steps", "corrupt_meta", "missing_state", "rom_mismatch",
                                    "garbage_video", "not_a_recording"])
def test_damaged_recordings_give_clear_errors(airstriker_recording, tmp_path, damage):
    rec = tmp_path / "rec"
    shutil.copytree(airstriker_recording, rec)
    args = []
    if damage == "truncated_steps":
        data = (rec / "steps.parquet").read_bytes()
        (rec / "steps.parquet").write_bytes(data[: len(data) // 2])
    elif damage == "corrupt_meta":
        (rec / "meta.json").write_text("{not json")
    elif damage == "missing_state":
        (rec / "start_state.gz").unlink()
    elif damage == "rom_mismatch":
        meta = json.loads((rec / "meta.json").read_text())
        meta["rom_sha1"] = "0" * 40
        (rec / "meta.json").write_text(json.dumps(meta))
    elif damage == "garbage_video":
        segs = sorted((rec / "video").glob("*.mkv"))
        segs[0].write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        segs[1].write_bytes(os.urandom(4096))
        segs[2].write_bytes(segs[2].read_bytes()[:5000])
        args = ["--check-video"]
    elif damage == "not_a_recording":
        shutil.rmtree(rec)
        rec.mkdir()
        (rec / "notes.txt").write_text("hello")
    before = snapshot(rec)
    proc = run_cli("replay-verify", rec, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "error" in (proc.stdout + proc.stderr).lower()
    assert snapshot(rec) == before


def test_missing_rom_names_sha_and_import_command(tmp_path):
    proc = run_cli("record", "--input", "bot:random", "--game", "Contra-Nes", "--out", tmp_path / "c")
    assert proc.returncode == 2
    text = " ".join(proc.stderr.split())
    assert "979494e7869ac7ab4815fdbd1dc99f893f713fbf" in text and "python -m stable_retro.import" in text


def test_games_listing():
    code, games = run_json("games")
    assert code == 0
    by_name = {g["game"]: g for g in games}
    assert by_name["Airstriker-Genesis-v0"]["rom_present"] is True
    assert by_name["Contra-Nes"]["rom_present"] is False and "Level1" in by_name["Contra-Nes"]["states"]
    assert "START" in by_name["Contra-Nes"]["buttons"] and "SELECT" in by_name["Contra-Nes"]["buttons"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_example_and_exit_codes(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "contra-bc " + command in text and "Exit codes" in text


def test_help_is_light():
    code = ("import sys; from contra_bc.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "heavy = [m for m in ('torch', 'google.genai', 'av', 'stable_retro') if m in sys.modules]; "
            "print(heavy); assert not heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env=cli_env(), cwd=ROOT)
    assert run_cli("--version").stdout.strip().startswith("contra-bc ")


@pytest.mark.parametrize("shape", [(224, 240), (37, 53)])
def test_video_round_trip_is_exact_with_padded_planes(tmp_path, shape):
    """Random frames survive encode/decode bit for bit, at widths whose planes carry row padding."""
    import av

    from contra_bc.formats.video import SegmentWriter, decode

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(5)]
    writer = SegmentWriter(tmp_path / "v.mkv", shape[1], shape[0], fps=20)
    for f in frames:
        writer.add(f)
    writer.close()
    decoded = list(decode(tmp_path / "v.mkv"))
    assert len(decoded) == len(frames) and all(np.array_equal(a, b) for a, b in zip(frames, decoded))
    with av.open(str(tmp_path / "v.mkv")) as container:  # the numpy interleave equals libswscale's rgb24
        first = next(container.decode(video=0))
        assert first.format.name == "gbrp" and np.array_equal(first.to_ndarray(format="rgb24"), decoded[0])


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_workers_die_with_their_parent(tmp_path, how):
    """SIGTERM to a multi-worker record stops it like Ctrl-C (exit 130); kill -9 leaves no worker behind."""
    out = tmp_path / "recs"
    proc = subprocess.Popen([sys.executable, "-m", "contra_bc", "record", "--input", "bot:airstriker", "--game",
                             "Airstriker-Genesis-v0", "--episodes", "4", "--workers", "2", "--max-steps", "100000",
                             "--episode-until", "never", "--realtime", "--hz", "120", "--out", str(out)],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("episode-*/steps/*.parquet"))) < 2:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    proc.wait(timeout=120)
    if how == "sigterm":
        assert proc.returncode == 130
    deadline = time.time() + 60
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "a worker outlived its parent"
    started = sorted(out.glob("episode-*"))
    assert started and all(not json.loads((r / "meta.json").read_text())["complete"] for r in started)
    code, results = run_json("replay-verify", *started, "--workers", 1)
    assert code == 0 and all(r["status"] == "verified" for r in results), results


def test_ctrl_c_in_a_sequential_multi_episode_record_stops_it(tmp_path):
    out = tmp_path / "recs"
    proc = subprocess.Popen([sys.executable, "-m", "contra_bc", "record", "--input", "bot:airstriker", "--game",
                             "Airstriker-Genesis-v0", "--episodes", "3", "--workers", "1", "--max-steps", "100000",
                             "--episode-until", "never", "--realtime", "--hz", "120", "--out", str(out)],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_chunks(out / "episode-0000", 1, proc)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert [p.name for p in sorted(out.iterdir())] == ["episode-0000"]  # no further episode was started
    assert json.loads((out / "episode-0000" / "meta.json").read_text())["status"] == "interrupted"


def test_without_a_terminal_progress_is_plain_lines_on_stderr(airstriker_recording):
    """A log file or CI gets `label: done/total (pct) rate ETA` lines, never a redrawn bar."""
    import re

    proc = run_cli("replay-verify", airstriker_recording, airstriker_recording, "--json",
                   env={"CONTRA_BC_PROGRESS_SECONDS": "0"})
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("replay-verify:")]
    pattern = r"replay-verify: (\d)/2 \((\d+)%\) ([\d.]+|\?)/s ETA (\d+:\d\d|\?)$"  # no rate from one update
    assert [re.match(pattern, l).groups()[:2] for l in lines] == [("1", "50"), ("2", "100")]
    assert re.match(pattern, lines[-1]).group(4) != "?"
    assert "\x1b[" not in proc.stderr and "━" not in proc.stderr  # no bar, no cursor movement
    last_json(proc.stdout)  # stdout still carries only the data
    once = run_cli("replay-verify", airstriker_recording, "--json")  # default: at most every 10 s, and at the end
    ends = [l for l in once.stderr.splitlines() if l.startswith("replay-verify:")]
    assert len(ends) == 1 and ends[0].startswith("replay-verify: 1/1 (100%) ")


def test_dash_reads_recording_paths_from_stdin(airstriker_recording, tmp_path):
    """`find ... | contra-bc replay-verify -`: paths one per line, blank lines and comments skipped."""
    listing = f"# recordings\n\n{airstriker_recording}\n{airstriker_recording}\n"
    proc = run_cli("replay-verify", "-", "--json", input=listing)
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in last_json(proc.stdout)] == ["verified", "verified"]
    shell = subprocess.run(["bash", "-c", f"set -o pipefail; printf '%s\\n' {airstriker_recording} | "
                            f"{sys.executable} -m contra_bc replay-verify - --json | {sys.executable} -c "
                            "'import json,sys; print(json.loads(sys.stdin.readlines()[-1])[0][\"status\"])'"],
                           capture_output=True, text=True, timeout=300, env=cli_env())
    assert shell.returncode == 0 and shell.stdout.strip() == "verified", shell.stderr
    empty = run_cli("replay-verify", "-", input="# nothing here\n\n")
    assert empty.returncode == 2 and "no paths" in empty.stderr and "Traceback" not in empty.stderr
    missing = run_cli("build-dataset", "-", "--out", tmp_path / "d", input=f"{tmp_path / 'nope'}\n")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_evaluation_and_causality_results_are_checked_on_write_and_read(tmp_path):
    """formats/results.py: play's evaluation.json is checked before it is written (nothing written when it
    does not fit the layout); a saved causality-score --json output is read from its last JSON line."""
    import json

    from contra_bc.errors import UserError
    from contra_bc.formats import results

    summary = {"episodes": 1, "wins": 1, "win_rate": 1.0, "win_rate_ci95": [0.2, 1.0], "progress_mean": 1193.0,
               "progress": [1193], "death_progress": []}
    report = {"game": "Outpost-Nes", "state": "Level1", "episodes": 1, "seed": 1000000, "seeds": [1000000, 1000000],
              "temperature": 0.25, "policies": {"agent": summary},
              "episodes_detail": {"agent": [{"episode": 0, "outcome": "win", "progress": 1193, "steps": 700}]}}
    path = tmp_path / "evaluation.json"
    results.write_evaluation(path, report)
    assert results.read_evaluation(path) == report
    assert results.read_evaluation(tmp_path / "absent.json") is None
    bad = dict(report, policies={"agent": dict(summary, win_rate=1.5)})
    with pytest.raises(UserError, match=r"\['agent'\] `win_rate` must be at most 1"):
        results.write_evaluation(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()
    score = {"score": 2.0, "spread": 0.0, "mean_per_chunk": 0.1, "p": 0.5, "chunks": 4, "chunks_scored": 20,
             "replaced_fraction": 0.5, "window": 16, "checkpoint": "run", "dataset": "ds"}
    lines = tmp_path / "causality.json"
    lines.write_text(json.dumps({"event": "progress"}) + "\n" + json.dumps(score) + "\n")
    assert results.read_causality(lines) == score
    lines.write_text(json.dumps(dict(score, p=2)))
    with pytest.raises(UserError, match="`p` must be at most 1"):
        results.read_causality(lines)
