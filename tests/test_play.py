"""contra-bc play: a real tiny checkpoint in the real emulator (subprocesses / spawn workers)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import cli_env, ctrl_c_when, needs_outpost, run_cli, run_json
from tiny_policy import GAME, tiny_run  # noqa: F401  (session fixture)

FIELDS = ("episodes", "win_rate", "progress_mean", "progress_max", "score_mean", "deaths_mean", "steps_mean",
          "latency_ms_p50", "latency_ms_p99")


def test_play_writes_a_recording_that_replay_verifies(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "play"
    code, report = run_json("play", run, "--game", GAME, "--fast", "--baseline", "none", "--max-steps", 40,
                            "--seed", 5, "--instruction", "dodge the bullets", "--out", out)
    assert code == 0, report
    rec = out / "agent-0000"
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["source"] == "agent" and meta["steps"] == 40 and meta["complete"]
    assert meta["instruction"] == "dodge the bullets" and meta["checkpoint"] == str(run)
    import pyarrow.parquet as pq

    steps = pq.read_table(rec / "steps.parquet")
    assert set(steps.column("actor").to_pylist()) == {"agent"}
    assert len(set(steps.column("action").to_pylist())) > 1  # sampled, not a constant
    verify = run_cli("replay-verify", out, "--check-video", "--workers", 1)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # same seed, same actions: sampling is reproducible
    code, _ = run_json("play", run, "--game", GAME, "--fast", "--baseline", "none", "--max-steps", 40,
                       "--seed", 5, "--instruction", "dodge the bullets", "--out", tmp_path / "again")
    again = pq.read_table(tmp_path / "again" / "agent-0000" / "steps.parquet")
    assert again.column("action").to_pylist() == steps.column("action").to_pylist()


def test_evaluation_with_two_workers_reports_every_field_and_the_baseline(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "eval"
    proc = run_cli("play", run, "--game", GAME, "--episodes", 2, "--workers", 2, "--max-steps", 30,
                   "--out", out, "--json", "--junit", tmp_path / "junit" / "play.xml")
    assert proc.returncode == 0, proc.stderr
    *events, report = [json.loads(line) for line in proc.stdout.splitlines()]
    # JSON Lines: one line per episode as it ends, then the report
    assert sorted((e["event"], e["policy"], e["episode"]) for e in events) == [
        ("episode", p, i) for p in ("agent", "random") for i in (0, 1)]
    import xml.etree.ElementTree as ET

    suite = ET.parse(tmp_path / "junit" / "play.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert sorted(cases) == ["agent-0000", "agent-0001", "random-0000", "random-0001"]
    lost = [e for e in report["episodes_detail"]["agent"] if not e["win"]]
    assert int(suite.get("failures")) == len(lost) + sum(not e["win"] for e in report["episodes_detail"]["random"])
    for e in lost:  # a lost episode is a failure naming where it ended and its recording
        failure = cases[f"agent-{e['episode']:04d}"].find("failure")
        assert f"progress {e['progress']}" in failure.get("message") and e["recording"] in failure.text
    assert set(report["policies"]) == {"agent", "random"}
    for name, summary in report["policies"].items():
        for key in FIELDS:
            assert summary[key] is not None, (name, key)
        assert summary["episodes"] == 2 and summary["steps_mean"] == 30
    assert report["policies"]["agent"]["latency_ms_p99"] >= report["policies"]["agent"]["latency_ms_p50"] > 0
    assert "RandomMomentum" in report["baseline_policy"]
    assert report["hz"] == 20.0 and report["frames_per_step"] == 1  # from the checkpoint's dataset
    assert sorted(p.name for p in out.iterdir()) == ["agent-0000", "agent-0001", "evaluation.json",
                                                     "random-0000", "random-0001"]
    # episode i uses seed+i: the two agent episodes differ
    import pyarrow.parquet as pq

    a0 = pq.read_table(out / "agent-0000" / "steps.parquet").column("action").to_pylist()
    a1 = pq.read_table(out / "agent-0001" / "steps.parquet").column("action").to_pylist()
    assert a0 != a1
    ids = [e["trajectory"] for e in report["episodes_detail"]["agent"]]
    assert len(set(ids)) == 2 and report["policies"]["agent"]["distinct_episodes"] == 2
    assert "warning" not in proc.stderr
    assert json.loads((out / "evaluation.json").read_text())["policies"] == report["policies"]
    agent = report["policies"]["agent"]
    assert len(agent["progress"]) == 2 and agent["progress_quartiles"][4] == agent["progress_max"]
    assert 0 <= agent["win_rate_ci95"][0] <= agent["win_rate"] <= agent["win_rate_ci95"][1] <= 1
    assert report["seeds"] == [1_000_000, 1_000_001]  # evaluation seeds: far from the ones that make data


def test_argmax_evaluation_says_its_episodes_are_one(tiny_run, tmp_path):
    """Temperature 0 from one start state plays the same episode every time: the report counts
    one distinct episode and play warns that the interval counts repeats."""
    run, _ = tiny_run
    proc = run_cli("play", run, "--game", GAME, "--episodes", 3, "--workers", 2, "--max-steps", 25,
                   "--temperature", 0, "--baseline", "none", "--out", tmp_path / "argmax")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "argmax" / "evaluation.json").read_text())
    import pyarrow.parquet as pq

    actions = [pq.read_table(tmp_path / "argmax" / f"agent-{i:04d}" / "steps.parquet").column("action").to_pylist()
               for i in range(3)]
    assert actions[0] == actions[1] == actions[2]  # the claim itself, read from the recordings
    assert len({e["trajectory"] for e in report["episodes_detail"]["agent"]}) == 1
    assert report["policies"]["agent"]["distinct_episodes"] == 1
    assert "only 1 of its 3 episodes differ" in " ".join(proc.stderr.split())
    run_dir = tmp_path / "pipeline"  # `report` says so too
    (run_dir / "eval").mkdir(parents=True)
    shutil.copyfile(tmp_path / "argmax" / "evaluation.json", run_dir / "eval" / "evaluation.json")
    assert run_cli("report", run_dir).returncode == 0
    agent_row = next(line for line in (run_dir / "report.md").read_text().splitlines() if line.startswith("| agent |"))
    assert "| 3 (1 different) |" in agent_row


def test_death_histogram_counts_each_death_in_its_bin(tmp_path):
    from PIL import Image

    from contra_bc.play import draw_deaths

    report = {"game": "Outpost-Nes", "policies": {
        "agent": {"death_progress": [100, 110, 900], "progress": [120, 950]},
        "random": {"death_progress": [], "progress": [50]}}}
    path = draw_deaths(report, tmp_path / "deaths.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] == 1280
    blue = (np.abs(image.astype(int) - (31, 119, 180)).sum(axis=2) < 6)  # the agent's colour (matplotlib C0)
    assert blue.sum() > 500
    # along the bottom row of the bars: one bar for 100 and 110 (the same bin), one for 900
    row = blue[np.flatnonzero(blue.any(axis=1))[-1]]
    starts = np.flatnonzero(row[1:] & ~row[:-1])
    assert len(starts) + int(row[0]) == 2
    tall = blue.sum(axis=0)  # the first bar (2 deaths) is twice as tall as the second (1 death)
    first, second = tall[: starts[0] + 40].max(), tall[starts[1]:].max()
    assert abs(first / second - 2) < 0.15, (first, second)
    assert draw_deaths({"game": "x", "policies": {"agent": {"death_progress": [], "progress": [1]}}},
                       tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_wilson_interval_is_the_textbook_one():
    from contra_bc.play import wilson_interval

    assert wilson_interval(0, 20) == (0.0, pytest.approx(0.1611, abs=1e-4))
    assert wilson_interval(10, 20) == (pytest.approx(0.2993, abs=1e-4), pytest.approx(0.7007, abs=1e-4))
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and low == pytest.approx(0.8389, abs=1e-4)


def test_checkpoint_for_other_buttons_is_refused(tiny_run, tmp_path):
    run, _ = tiny_run
    proc = run_cli("play", run, "--game", "Outpost-Nes", "--fast", "--out", tmp_path / "x")
    assert proc.returncode == 2
    assert "Airstriker-Genesis-v0" in proc.stderr and "Outpost-Nes" in proc.stderr and "buttons" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_bad_checkpoint_and_options_are_clear_errors(tmp_path):
    proc = run_cli("play", tmp_path / "missing", "--game", GAME, "--fast")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_cli("play", "bot:random", "--game", GAME, "--fast", "--episode-until", "forever")
    assert proc.returncode == 2 and "--episode-until" in proc.stderr


# ---------------------------------------------------------------- the window: human takeover under Xvfb

needs_x = pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
                             reason="needs the Xvfb and xdotool binaries (apt-get install xvfb xdotool)")


def _x(display, *args):
    env = cli_env({"DISPLAY": display})
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30).stdout.strip()


@needs_x
def test_window_takeover_marks_human_steps_and_replays(tiny_run, tmp_path, display):
    import re

    import pyarrow.parquet as pq

    run, _ = tiny_run
    out = tmp_path / "window"
    env = cli_env({"DISPLAY": display, "PYGAME_HIDE_SUPPORT_PROMPT": "1", "SDL_AUDIODRIVER": "dummy"})
    log = open(tmp_path / "play.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "contra_bc", "play", str(run), "--game", GAME, "--hz", "10",
                             "--max-steps", "100", "--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wid, deadline = "", time.monotonic() + 90
        while not wid:
            assert proc.poll() is None, (tmp_path / "play.log").read_text()
            assert time.monotonic() < deadline, "the play window never appeared"
            wid = _x(display, "search", "--onlyvisible", "--pid", str(proc.pid)).split("\n")[0]
            time.sleep(0.1)
        _x(display, "windowfocus", "--sync", wid)

        def wait_step(n):
            end = time.monotonic() + 60
            while True:
                m = re.search(r"step (\d+)", _x(display, "getwindowname", wid))
                if m and int(m.group(1)) >= n:
                    return int(m.group(1))
                assert proc.poll() is None and time.monotonic() < end, f"never reached step {n}"
                time.sleep(0.02)

        wait_step(10)
        _x(display, "key", "Tab")            # take over
        _x(display, "keydown", "Right")
        wait_step(30)
        _x(display, "keyup", "Right")
        _x(display, "key", "Tab")            # hand back
        assert proc.wait(timeout=120) == 0, (tmp_path / "play.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    rec = out / "agent-0000"
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["source"] == "agent" and meta["steps"] == 100 and meta["complete"]
    table = pq.read_table(rec / "steps.parquet")
    actors = table.column("actor").to_pylist()
    actions = table.column("action").to_pylist()
    human = [i for i, a in enumerate(actors) if a == "human"]
    assert actors[0] == "agent" and actors[-1] == "agent" and len(human) >= 10
    assert human == list(range(human[0], human[-1] + 1))  # one contiguous takeover
    right = 1 << 7  # Airstriker's RIGHT bit
    assert sum(bool(actions[i] & right) for i in human) >= len(human) - 2
    assert meta["human_steps"] == len(human)
    verify = run_cli("replay-verify", out, "--workers", 1)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_window_without_display_says_how_to_run_headless(tiny_run, tmp_path):
    run, _ = tiny_run
    env = {k: v for k, v in cli_env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-m", "contra_bc", "play", str(run), "--game", GAME, "--out",
                           str(tmp_path / "w")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--fast" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w" / "agent-0000").exists()


@needs_outpost
def test_outpost_random_baseline_reports_progress(tmp_path):
    """On the NES cartridge the progress number reads level/screen/scroll from RAM."""
    code, report = run_json("play", "bot:random", "--game", "Outpost-Nes", "--episodes", 2, "--workers", 2,
                            "--max-steps", 600, "--episode-until", "game-over", "--out", tmp_path / "o")
    assert code == 0, report
    summary = report["policies"]["random"]
    assert summary["episodes"] == 2 and summary["progress_max"] > 0 and summary["score_mean"] is not None
    # where each death happened: one entry per death, within the progress reached; drawn as a histogram
    assert len(summary["death_progress"]) == round(summary["deaths_mean"] * 2)
    assert all(0 < p <= summary["progress_max"] for p in summary["death_progress"])
    verify = run_cli("replay-verify", tmp_path / "o", "--workers", 2)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_ctrl_c_leaves_a_verifiable_incomplete_recording(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "int"
    code, stderr = ctrl_c_when(lambda: list((out / "agent-0000" / "steps").glob("*.parquet")),  # a first chunk
                               "play", run, "--game", GAME, "--episodes", 2, "--workers", 1, "--max-steps", 5000,
                               "--out", out)
    assert code == 130, stderr
    meta = json.loads((out / "agent-0000" / "meta.json").read_text())
    assert meta["complete"] is False and meta["end_reason"] == "interrupted" and meta["steps"] >= 100
    assert not (out / "agent-0001").exists()  # no new episode started after Ctrl-C
    assert json.loads((out / "evaluation.json").read_text())["interrupted"] is True
    verify = run_cli("replay-verify", out, "--workers", 1)
    assert verify.returncode == 0, verify.stdout + verify.stderr
