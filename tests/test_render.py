"""`contra_bc.render`: real recordings (made by the real CLI) in, real video files out, read back
with PyAV and Pillow. The buttons are read back from the pixels of the overlay."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import ctrl_c_when, needs_outpost, run_cli
from contra_bc import render as R
from contra_bc.errors import UserError
from contra_bc.formats import annotations as annotations_format
from contra_bc.formats.recording import read_recording

H264_TOLERANCE = 40  # colour distance a flat box keeps through H.264 at crf 18 (yuv420p)


@pytest.fixture(scope="module")
def outpost(tmp_path_factory) -> Path:
    """120 steps of the random bot on Outpost (NES buttons, 240x224, 20 Hz)."""
    out = tmp_path_factory.mktemp("render") / "outpost-random"
    run_cli("record", "--input", "bot:random", "--game", "Outpost-Nes", "--max-steps", 120, "--out", out, check=True)
    return out


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> Path:
    """100 steps of the noisy expert: actor switches between script and perturbation."""
    out = tmp_path_factory.mktemp("render") / "outpost-noisy"
    run_cli("record", "--input", "bot:expert-noisy", "--game", "Outpost-Nes", "--max-steps", 100, "--out", out,
            check=True)
    return out


def decode(path: Path) -> tuple[dict, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "width": stream.width, "height": stream.height,
                "duration_s": float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6}
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return info, frames


def gif_frames(path: Path) -> tuple[list[np.ndarray], list[int]]:
    frames, durations = [], []
    with Image.open(path) as image:
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info["duration"])
    return frames, durations


def middle(frame: np.ndarray, box) -> np.ndarray:
    """The middle half of a box: only the button's fill (labels are drawn outside)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return frame[y0 + h // 4: y1 - h // 4, x0 + w // 4: x1 - w // 4].reshape(-1, 3).astype(float)


def lit_buttons(frame: np.ndarray, boxes: dict, tolerance: float) -> set:
    """Buttons whose box reads LIT; fails if a box is neither LIT nor UNLIT."""
    lit = set()
    for name, box in boxes.items():
        mean = middle(frame, box).mean(axis=0)
        to_lit, to_unlit = np.linalg.norm(mean - R.LIT), np.linalg.norm(mean - R.UNLIT)
        assert min(to_lit, to_unlit) < tolerance, f"{name}: mean colour {mean} is neither LIT nor UNLIT"
        if to_lit < to_unlit:
            lit.add(name)
    return lit


def held(recording, step: int) -> set:
    action = int(recording.actions[step])
    return {b for i, b in enumerate(recording.buttons) if b and action >> i & 1}


def single_layout(recording, scale: int) -> R.Layout:
    screen = recording.meta["screen"]
    return R.layout([(screen["height"], screen["width"])], scale)


@needs_outpost
def test_mp4_plays_at_real_speed_and_shows_the_buttons_held(outpost, tmp_path):
    rec = read_recording(outpost)
    result = R.render([outpost], tmp_path / "run.mp4", scale=1)
    info, frames = decode(tmp_path / "run.mp4")

    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert len(frames) == result["frames"] == rec.n_steps == 120
    hz = rec.meta["hz"]
    assert result["fps"] == hz and result["steps"] == [0, 120]
    assert abs(info["duration_s"] - 120 / hz) <= 1 / hz
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    assert (info["width"], info["height"]) == (result["width"], result["height"])
    assert result["recordings"][0]["label"] == "outpost-random"

    boxes = R.button_boxes(rec.buttons, single_layout(rec, 1).tiles[0].panel)
    assert set(boxes) == {"B", "A", "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT"}
    seen = set()
    for step, frame in enumerate(frames):
        assert lit_buttons(frame, boxes, H264_TOLERANCE) == held(rec, step), f"step {step}"
        seen |= held(rec, step)
    assert len(seen) >= 3  # the check above saw buttons both held and released


@needs_outpost
def test_from_to_cut_a_stretch_and_speed_scales_the_clock(outpost, tmp_path):
    result = R.render([outpost], tmp_path / "cut.mp4", scale=1, start="1s", stop=60, speed=2.0)
    info, frames = decode(tmp_path / "cut.mp4")
    assert result["steps"] == [20, 60] and result["fps"] == 40.0
    assert len(frames) == result["frames"] == 40
    assert abs(info["duration_s"] - 40 / 40.0) <= 1 / 40.0
    assert abs(result["duration_s"] - 1.0) < 1e-9

    rec = read_recording(outpost)
    boxes = R.button_boxes(rec.buttons, single_layout(rec, 1).tiles[0].panel)
    for i in (0, 17, 39):
        assert lit_buttons(frames[i], boxes, H264_TOLERANCE) == held(rec, 20 + i)


def test_gif_keeps_the_overlay_exact(airstriker_recording, tmp_path):
    """A Genesis pad (12 buttons: a d-pad and labelled boxes); GIF pixels are exactly LIT or UNLIT."""
    rec = read_recording(airstriker_recording)
    result = R.render([airstriker_recording], tmp_path / "clip.gif", scale=1, stop=30)
    frames, durations = gif_frames(tmp_path / "clip.gif")
    assert len(frames) == result["frames"] == 30
    assert durations == [50] * 30  # 20 Hz: 50 ms a step
    assert frames[0].shape[:2] == (result["height"], result["width"])

    boxes = R.button_boxes(rec.buttons, single_layout(rec, 1).tiles[0].panel)
    assert set(boxes) == {b for b in rec.buttons if b}
    seen = set()
    for step, frame in enumerate(frames):
        for name, box in boxes.items():
            expected = R.LIT if name in held(rec, step) else R.UNLIT
            assert (middle(frame, box) == expected).all(), f"step {step} {name}"
        seen |= held(rec, step)
    assert seen


def test_gif_above_50_fps_keeps_every_nth_step_and_says_so(airstriker_recording, tmp_path):
    result = R.render([airstriker_recording], tmp_path / "fast.gif", scale=1, stop=40, speed=4.0)
    frames, durations = gif_frames(tmp_path / "fast.gif")
    assert result["every"] == 2 and result["fps"] == 40.0
    assert len(frames) == result["frames"] == 20 and result["frames_dropped"] == 20
    assert "1 step in 2" in result["note"]
    assert abs(sum(durations) - 500) <= 10  # 40 steps at 80 steps/s, in whole centiseconds
    assert min(durations) >= 20


@needs_outpost
def test_side_by_side_aligns_steps_labels_and_dims_the_one_that_ended(outpost, airstriker_recording, tmp_path):
    nes, genesis = read_recording(outpost), read_recording(airstriker_recording)
    result = R.render([outpost, airstriker_recording], tmp_path / "pair.mp4", scale=1, start=110, stop=125,
                      labels=["random", "airstriker"])
    info, frames = decode(tmp_path / "pair.mp4")
    single = single_layout(nes, 1)
    pair = R.layout([(224, 240), (224, 320)], 1)
    assert (info["width"], info["height"]) == (pair.width, pair.height) == (result["width"], result["height"])
    assert 1.9 * single.width <= info["width"] <= 2.1 * single.width
    assert len(frames) == 15
    assert [r["label"] for r in result["recordings"]] == ["random", "airstriker"]
    assert result["recordings"][0]["ended_at"] == 120 and result["recordings"][1]["ended_at"] is None

    for tile in pair.tiles:  # each label is drawn in its tile's header
        x0, y0, x1, y1 = tile.header
        header = frames[0][y0:y1, x0:x1].reshape(-1, 3).astype(float)
        assert (np.linalg.norm(header - R.LABEL, axis=1) < 60).sum() > 20

    left, right = (R.button_boxes(r.buttons, t.panel) for r, t in zip((nes, genesis), pair.tiles))
    for i, step in enumerate(range(110, 125)):
        assert lit_buttons(frames[i], right, H264_TOLERANCE) == held(genesis, step)
        expected = held(nes, step) if step < 120 else set()  # ended: nothing held
        assert lit_buttons(frames[i], left, H264_TOLERANCE) == expected

    x0, y0, x1, y1 = pair.tiles[0].game
    before = frames[119 - 110][y0:y1, x0:x1].mean()
    after = frames[122 - 110][y0:y1, x0:x1].mean()
    assert after < 0.6 * before  # the last frame, dimmed


@needs_outpost
def test_actor_colour_instruction_and_event_follow_the_steps(noisy, tmp_path):
    """The noisy expert hands over to `perturbation` and back; the strip above the panel takes the
    actor's colour. The annotation and an event (written into a copy) show at their steps."""
    copy = tmp_path / "noisy"
    shutil.copytree(noisy, copy)
    rec = read_recording(copy)
    entries, rejected = annotations_format.make_entries(
        [{"start": 1.0, "end": 2.0, "text": "Run right and jump the first pit."}], rec.meta["hz"], rec.n_steps)
    assert not rejected
    annotations_format.write_annotations(copy / "annotations.json", recording=annotations_format.recording_ref(rec),
                                         source="table", entries=entries)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(copy / "steps.parquet")
    events = table.column("event").to_pylist()
    events[50] = "death"
    column = table.schema.get_field_index("event")
    pq.write_table(table.set_column(column, table.schema.field("event"), pa.array(events, pa.string())),
                   copy / "steps.parquet")

    track = R.Track(read_recording(copy), "noisy")
    assert track.info(19).instruction is None
    assert track.info(20).instruction == track.info(40).instruction == "Run right and jump the first pit."
    assert track.info(41).instruction is None
    assert track.info(49).event is None and track.info(50).event == "death" and track.info(69).event == "death"
    assert track.info(70).event is None  # shown for one second (20 steps) only
    changes = [k for k in range(1, rec.n_steps) if track.actors[k] != track.actors[k - 1]]
    assert changes, "the noisy expert made no mistake in 100 steps"
    k = changes[0]
    assert track.info(k).previous_actor == track.actors[k - 1] and track.info(k - 1).previous_actor is None

    result = R.render([copy], tmp_path / "noisy.gif", scale=1, labels=["noisy"])
    assert result["recordings"][0]["annotated"]
    frames, _ = gif_frames(tmp_path / "noisy.gif")
    panel = single_layout(rec, 1).tiles[0].panel
    for step, frame in enumerate(frames):
        strip = frame[panel[1]: panel[1] + R.ACTOR_STRIP_H, panel[0]: panel[2]].reshape(-1, 3)
        assert (strip == R.ACTOR_COLOURS[track.actors[step]]).all(), f"step {step}"


def test_webm_is_vp9(airstriker_recording, tmp_path):
    out = tmp_path / "clip.webm"
    if "libvpx-vp9" not in av.codecs_available:
        with pytest.raises(UserError, match="VP9"):
            R.render([airstriker_recording], out, scale=1, stop=10)
        return
    result = R.render([airstriker_recording], out, scale=1, stop=10)
    info, frames = decode(out)
    assert (info["codec"], info["pix_fmt"]) == ("vp9", "yuv420p")
    assert len(frames) == result["frames"] == 10


def test_button_boxes_fit_the_panel_and_do_not_overlap():
    panel = (0, 300, R.MIN_TILE_W, 300 + R.PANEL_H)
    sets = [
        ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"],                       # NES
        ["B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z"],           # Genesis
        ["BUTTON", None, "SELECT", "RESET", "UP", "DOWN", "LEFT", "RIGHT"],                       # Atari 2600
        [f"K{i}" for i in range(14)],                                                              # no d-pad
    ]
    for buttons in sets:
        boxes = R.button_boxes(buttons, panel)
        assert set(boxes) == {b for b in buttons if b}
        for name, (x0, y0, x1, y1) in boxes.items():
            assert panel[0] <= x0 < x1 <= panel[0] + R.CONTROLLER_W and panel[1] < y0 < y1 <= panel[3], name
        items = list(boxes.items())
        for i, (a, p) in enumerate(items):
            for b, q in items[i + 1:]:
                assert p[2] <= q[0] or q[2] <= p[0] or p[3] <= q[1] or q[3] <= p[1], f"{a} overlaps {b}"


@needs_outpost
def test_refusals_are_user_errors_and_leave_nothing_behind(outpost, tmp_path):
    out = tmp_path / "videos"
    out.mkdir()
    with pytest.raises(UserError, match=r"\.mp4.*\.webm.*\.gif"):
        R.render([outpost], out / "clip.avi")
    existing = out / "taken.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists"):
        R.render([outpost], existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(UserError, match="1 to 4"):
        R.render([outpost] * 5, out / "five.mp4")
    with pytest.raises(UserError, match="No recording"):
        R.render([], out / "none.mp4")
    with pytest.raises(UserError, match="empty"):
        R.render([outpost], out / "empty.mp4", start=60, stop=60)
    with pytest.raises(UserError, match="neither a step"):
        R.render([outpost], out / "bad.mp4", start="soon")
    with pytest.raises(UserError, match="label"):
        R.render([outpost], out / "labels.mp4", labels=["a", "b"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        R.render([broken], out / "broken.mp4")
    assert sorted(p.name for p in out.iterdir()) == ["taken.mp4"]


def test_positions_read_steps_seconds_and_clock_times():
    assert R.parse_position(None, 20.0, "--from") is None
    assert R.parse_position(7, 20.0, "--from") == 7
    assert R.parse_position("120", 20.0, "--from") == 120
    assert R.parse_position("6s", 20.0, "--from") == 120
    assert R.parse_position("6.5s", 60.0, "--from") == 390
    assert R.parse_position("1:30", 20.0, "--to") == 1800
    for bad in ("-3", "-1s", "abc", "1.5", "nans"):
        with pytest.raises(UserError):
            R.parse_position(bad, 20.0, "--from")


@needs_outpost
def test_report_clips_show_the_best_and_worst_agent_episode_beside_the_expert(outpost, noisy, tmp_path):
    """report's clips: the last steps of the best episode, the steps up to the worst one's first death."""
    import json

    from contra_bc.report import CLIP_STEPS, _clips

    run_dir = tmp_path / "pipeline"
    shutil.copytree(noisy, run_dir / "expert20" / "episode-0000")
    (run_dir / "eval").mkdir(parents=True)
    best, worst = run_dir / "eval" / "agent-0000", run_dir / "eval" / "agent-0001"
    shutil.copytree(outpost, best)
    shutil.copytree(outpost, worst)
    episodes = [{"episode": 0, "recording": str(best), "progress": 900, "steps": 120, "outcome": "none"},
                {"episode": 1, "recording": str(worst), "progress": 100, "steps": 120, "outcome": "none"}]
    summary = {"episodes": 2, "wins": 0, "win_rate": 0.0, "win_rate_ci95": [0.0, 0.66], "progress_mean": 500.0,
               "progress": [900, 100], "death_progress": []}
    (run_dir / "eval" / "evaluation.json").write_text(json.dumps(
        {"game": "Outpost-Nes", "state": "Level1", "episodes": 2, "seed": 1000000, "seeds": [1000000, 1000001],
         "temperature": 0.25, "policies": {"agent": summary}, "episodes_detail": {"agent": episodes}}))
    images = run_dir / "report-images"
    images.mkdir()
    clips = dict((Path(rel).name, label) for label, rel in _clips(run_dir, images, "eval"))
    assert set(clips) == {"agent-best.gif", "agent-worst.gif"}
    assert "best episode of eval/ (clean starts)" in clips["agent-best.gif"]
    frames, _ = gif_frames(images / "agent-best.gif")
    assert len(frames) == min(CLIP_STEPS, 120)  # no death in these runs: the last steps of each
    assert frames[0].shape[1] > 2 * 240  # agent and expert side by side


@needs_outpost
def test_the_render_command_as_users_call_it(outpost, airstriker_recording, tmp_path):
    """Through the CLI: paths from stdin (`-`), one --label per recording, --from/--to as a person writes
    them, --no-overlay, and the summary printed as JSON."""
    import json
    import subprocess
    import sys

    from conftest import cli_env

    out = tmp_path / "pair.mp4"
    proc = subprocess.run([sys.executable, "-m", "contra_bc", "render", "-", "--label", "first", "--label", "second",
                           "--from", "0:01", "--to", "2.5s", "--scale", "1", "--out", str(out), "--json"],
                          input=f"{outpost}\n{airstriker_recording}\n", capture_output=True, text=True, env=cli_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] == [20, 50] and summary["frames"] == 30  # 0:01 and 2.5 s at 20 Hz
    assert [r["label"] for r in summary["recordings"]] == ["first", "second"]
    info, frames = decode(out)
    assert len(frames) == 30 and (info["width"], info["height"]) == (summary["width"], summary["height"])

    bare = tmp_path / "bare.mp4"
    plain = run_cli("render", outpost, "--no-overlay", "--scale", "1", "--to", 10, "--out", bare, "--json")
    assert plain.returncode == 0, plain.stderr
    info, frames = decode(bare)
    screen = read_recording(outpost).meta["screen"]
    assert (info["height"], info["width"]) == (screen["height"], screen["width"])  # the game frame, no panel
    assert json.loads(plain.stdout.strip().splitlines()[-1])["height"] < summary["height"]
    refused = run_cli("render", outpost, "--to", "soon", "--out", tmp_path / "x.mp4")
    assert refused.returncode == 2 and "--to" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "x.mp4").exists()


@needs_outpost
def test_an_interrupted_render_exits_130_and_leaves_no_partial_file(outpost, tmp_path):
    out = tmp_path / "long.gif"  # a GIF at scale 4 of 120 steps: seconds of work
    code, stderr = ctrl_c_when(lambda: list(tmp_path.glob(".long.gif.*.tmp")),  # frames are being written
                               "render", outpost, outpost, "--scale", "4", "--out", out)
    assert code == 130, stderr
    assert list(tmp_path.iterdir()) == []  # neither the video nor its temp file
