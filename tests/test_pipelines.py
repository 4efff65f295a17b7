"""contra-bc in real bash pipelines: paths on stdout when piped, JSON Lines, JUnit, -q, the CI workflow.

Every stage runs as `contra-bc` from PATH in bash with `set -o pipefail`, as a user's script would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, cli_env

AIR = ("--game", "Airstriker-Genesis-v0", "--input", "bot:airstriker", "--episode-until", "never")


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory) -> dict:
    """An environment whose PATH has a `contra-bc` that runs this checkout."""
    bin_dir = tmp_path_factory.mktemp("bin")
    exe = bin_dir / "contra-bc"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m contra_bc "$@"\n')
    exe.chmod(0o755)
    return cli_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CONTRA_BC_PROGRESS_SECONDS": "0"})


# after a pipeline: print each stage's exit code, exit with the first that failed
STAGES = 'ps=("${PIPESTATUS[@]}"); echo "stages: ${ps[*]}" >&2; for s in "${ps[@]}"; do [ "$s" = 0 ] || exit "$s"; done'


def bash(script: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -o pipefail\n" + script], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def recorded(shell_env, tmp_path_factory) -> tuple[Path, list[str]]:
    """`contra-bc record ... > paths.txt`: two recordings, their paths on stdout."""
    work = tmp_path_factory.mktemp("pipe")
    proc = bash(f"contra-bc record {' '.join(AIR)} --max-steps 150 --episodes 2 --workers 1 --out runs > paths.txt",
                shell_env, work)
    assert proc.returncode == 0, proc.stderr
    listed = (work / "paths.txt").read_text().splitlines()
    assert listed == ["runs/episode-0000", "runs/episode-0001"]
    assert "recordings" in proc.stderr  # the table went to stderr
    return work, listed


def _diverging_copy(src: Path, dst: Path) -> None:
    """A copy of a recording whose actions 40..79 are all released: its replay parts from the record."""
    shutil.copytree(src, dst)
    table = pq.read_table(dst / "steps.parquet")
    actions = np.array(table.column("action").to_pylist(), np.int32)
    actions[40:80] = 0
    table = table.set_column(table.schema.get_field_index("action"), "action", pa.array(actions, pa.int32()))
    pq.write_table(table, dst / "steps.parquet")


def test_record_verify_build_chain(recorded, shell_env):
    """record | replay-verify - | build-dataset -: each stage passes the paths on, each exit code is 0."""
    work, _ = recorded
    proc = bash("contra-bc record " + " ".join(AIR) + " --max-steps 150 --seed 7 --out runs/one"
                " | contra-bc replay-verify - | contra-bc build-dataset - --out data > built.txt\n"
                + STAGES, shell_env, work)
    assert proc.returncode == 0, proc.stderr
    assert "stages: 0 0 0" in proc.stderr
    assert (work / "built.txt").read_text().splitlines() == ["data"]
    assert json.loads((work / "data" / "meta" / "info.json").read_text())["counts"]["episodes"] == 1
    # `-` as the one RECORDING (DATASET, RUN) argument: the path on stdin
    proc = bash("printf 'runs/one\\n' | contra-bc export - --to one.bk2 > movie.txt\n" + STAGES, shell_env, work)
    assert proc.returncode == 0 and (work / "movie.txt").read_text() == "one.bk2\n", proc.stderr
    assert (work / "one.bk2").is_file()
    two = bash("printf 'runs/one\\nruns/one\\n' | contra-bc export - --to two.bk2", shell_env, work)
    assert two.returncode == 2 and "reads one path from stdin" in two.stderr and not (work / "two.bk2").exists()


def test_a_diverging_recording_breaks_the_pipe_and_is_not_passed_on(recorded, shell_env):
    work, listed = recorded
    _diverging_copy(work / listed[0], work / "runs-bad" / "edited")
    proc = bash("printf '%s\\n' runs/episode-0001 runs-bad/edited | contra-bc replay-verify - --report-dir rep"
                " --junit ci/verify.xml > verified.txt\n"
                + STAGES, {**shell_env, "GITHUB_ACTIONS": "true"}, work)
    assert proc.returncode == 1 and "stages: 0 1" in proc.stderr, proc.stderr
    assert (work / "verified.txt").read_text().splitlines() == ["runs/episode-0001"]  # only what verified
    suite = ET.parse(work / "ci" / "verify.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["runs/episode-0001"].find("failure") is None
    failure = cases["runs-bad/edited"].find("failure")
    step = int(failure.get("message").split("diverged at step ")[1].split()[0])
    assert step >= 40 and "picture: rep/" in failure.get("message")
    png = failure.get("message").split("picture: ")[1]
    assert (work / png).is_file()
    # GitHub Actions: an annotation on stderr (stdout stays the list of paths)
    assert any(line.startswith("::error title=replay-verify runs-bad/edited::diverged at step")
               for line in proc.stderr.splitlines())
    assert "::error" not in (work / "verified.txt").read_text()


def test_json_lines_stream_one_line_per_recording_then_the_result(recorded, shell_env):
    work, listed = recorded
    proc = bash(f"contra-bc replay-verify {' '.join(listed)} --workers 1 --json | cat", shell_env, work)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    *events, result = lines
    assert [e["event"] for e in events] == ["recording", "recording"]
    assert sorted(e["path"] for e in events) == listed and all(e["status"] == "verified" for e in events)
    assert isinstance(result, list) and [r["path"] for r in result] == listed
    # the same for downsample-check (control: 20 Hz recordings pool with window 1), ending in the summary
    proc = bash(f"contra-bc downsample-check {listed[0]} --window 1 --json", shell_env, work)
    *events, result = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and [e["event"] for e in events] == ["recording"]
    assert result["summary"]["recordings"] == 1 and result["recordings"][0]["path"] == listed[0]


def test_quiet_silences_progress_only(recorded, shell_env):
    work, listed = recorded
    loud = bash(f"contra-bc replay-verify {listed[0]}", shell_env, work)
    quiet = bash(f"contra-bc -q replay-verify {listed[0]}", shell_env, work)
    assert loud.returncode == quiet.returncode == 0
    assert any(line.startswith("replay-verify: 1/1") for line in loud.stderr.splitlines())
    assert not any(line.startswith("replay-verify:") for line in quiet.stderr.splitlines())
    assert quiet.stdout == loud.stdout == f"{listed[0]}\n"  # the data is the same
    assert "replay-verify" in quiet.stderr  # the table still prints (to stderr: stdout is a pipe)


def _workflow_step(name: str) -> str:
    """The `run: |` block of the named step in examples/ci/replay-verify.yml."""
    lines = (ROOT / "examples" / "ci" / "replay-verify.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {name}")
    run = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run + 1]) - len(lines[run + 1].lstrip())
    block = []
    for line in lines[run + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        block.append(line[indent:])
    return "\n".join(block)


def test_ci_workflow_verifies_the_recordings_of_a_repository(recorded, shell_env, tmp_path):
    """The workflow's verify step, run as written in a repository holding recordings."""
    work, listed = recorded
    repo = tmp_path / "repo"
    for p in listed:
        shutil.copytree(work / p, repo / "recordings" / Path(p).name)
    (repo / ".git").mkdir()  # a recording-like folder under .git is skipped
    shutil.copytree(work / listed[0], repo / ".git" / "not-this")
    step = _workflow_step("replay-verify every recording")
    proc = subprocess.run(["bash", "-e", "-c", step], capture_output=True, text=True, timeout=600,
                          env=shell_env, cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 recording(s) verified" in proc.stdout
    suite = ET.parse(repo / "replay-verify.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
    _diverging_copy(work / listed[0], repo / "recordings" / "edited")
    proc = subprocess.run(["bash", "-e", "-c", step], capture_output=True, text=True, timeout=600,
                          env=shell_env, cwd=repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the job fails
    suite = ET.parse(repo / "replay-verify.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    assert list((repo / "replay-report").glob("*.png"))


def test_a_junit_path_that_cannot_be_written_is_a_clear_error(recorded, shell_env, tmp_path):
    work, listed = recorded
    (tmp_path / "a-folder").mkdir()
    for target, words in ((tmp_path / "a-folder", "is a directory"),
                          (tmp_path / "a-file" / "x.xml", "cannot be written")):
        if "a-file" in str(target):
            (tmp_path / "a-file").write_text("not a folder")
        proc = bash(f"contra-bc replay-verify {listed[0]} --junit {target}", shell_env, work)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (tmp_path / "a-file").read_text() == "not a folder"
