"""JUnit XML reports (the format CI systems read) and GitHub Actions annotations.

One ``<testsuite>`` per command run, one ``<testcase>`` per recording or episode. A case is a
``Case``: name, class name, seconds, and at most one of failure / error (a one-line message and
a longer text). The file is written atomically. Under GitHub Actions (``GITHUB_ACTIONS=true``),
failures and errors are also printed as ``::error`` workflow commands, which GitHub shows on
the run's summary page. They go to stderr: the runner reads workflow commands from both
streams, and stdout stays data (a list of paths, or JSON Lines) for the next command of a pipe.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from contra_bc.errors import UserError
from contra_bc.formats.atomic import write_bytes


@dataclass
class Case:
    name: str
    classname: str
    seconds: float = 0.0
    failure: str | None = None      # a check failed (divergence, a lost episode)
    error: str | None = None        # the input could not be checked at all
    skipped: str | None = None      # nothing to check (an imported recording has no start state to replay)
    details: str = ""


def write(path: Path, suite: str, cases: list[Case]) -> None:
    """Write ``cases`` as one JUnit test suite to ``path`` (temp file, then rename)."""
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                         failures=str(sum(c.failure is not None for c in cases)),
                         errors=str(sum(c.error is not None for c in cases)),
                         skipped=str(sum(c.skipped is not None for c in cases)),
                         time=f"{sum(c.seconds for c in cases):.3f}")
    for c in cases:
        case = ET.SubElement(node, "testcase", name=c.name, classname=c.classname, time=f"{c.seconds:.3f}")
        if c.failure is not None:
            ET.SubElement(case, "failure", message=c.failure).text = c.details or c.failure
        elif c.error is not None:
            ET.SubElement(case, "error", message=c.error).text = c.details or c.error
        elif c.skipped is not None:
            ET.SubElement(case, "skipped", message=c.skipped)
    ET.indent(root)
    check_target(path)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(Path(path), ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    except OSError as exc:
        raise UserError(f"--junit {path}: the report cannot be written ({exc.strerror or exc}). Give a file "
                        "path in a folder you can write to.") from None


def check_target(path: Path) -> None:
    """UserError when ``path`` cannot be a JUnit file (checked before the work, and again at the write)."""
    if Path(path).is_dir():
        raise UserError(f"--junit {path} is a directory; give the report file's path, e.g. {Path(path) / 'junit.xml'}.")


def github_annotations(cases: list[Case]) -> None:
    """``::error`` lines for failed and broken cases, only under GitHub Actions."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    for c in cases:
        message = c.failure if c.failure is not None else c.error
        if message is None:
            continue
        # workflow commands escape %, CR and LF in the message (GitHub's documented encoding)
        text = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        sys.stderr.write(f"::error title={c.classname} {c.name}::{text}\n")
    sys.stderr.flush()


def verify_cases(results: list[dict]) -> list[Case]:
    """replay-verify results -> cases: a divergence names its first step and its PNG."""
    cases = []
    for r in results:
        case = Case(name=r["path"], classname="replay-verify", seconds=float(r.get("seconds") or 0.0))
        if r["status"] == "error":
            case.error = r.get("message", "unreadable recording")
        elif r["status"] == "unverifiable":
            case.skipped = r.get("message", "no start state to replay from")
        elif r["status"] == "diverged":
            d = r.get("first_divergence") or {}
            if d:
                what = ("the outcome" if d.get("outcome") else
                        " and ".join(k for k in ("frame", "ram") if d.get(k)) or "the state")
                case.failure = f"diverged at step {d['step']} ({d.get('time_s', 0)} s): {what} differs"
                if d.get("png"):
                    case.failure += f"; picture: {d['png']}"
            else:
                video = r.get("video") or {}
                case.failure = f"the video does not match the recorded frames: {video.get('message', video)}"
            case.details = r.get("message", "") or case.failure
        cases.append(case)
    return cases


def downsample_cases(results: list[dict]) -> list[Case]:
    """downsample-check results -> cases. The check passing is the pooling being measured; an
    unreadable or unpoolable recording is an error."""
    cases = []
    for r in results:
        case = Case(name=r["path"], classname="downsample-check")
        if r["status"] == "error":
            case.error = r.get("message", "unpoolable recording")
        else:
            case.details = (f"window {r['window']}: {r['original_outcome']} -> {r['pooled_outcome']}, "
                            f"first divergence step {r['first_divergence_step']}")
        cases.append(case)
    return cases


def episode_cases(episodes: dict) -> list[Case]:
    """play's episodes_detail ({policy: [episode, ...]}) -> cases; an episode not won is a failure."""
    cases = []
    for policy, rows in episodes.items():
        for e in rows:
            case = Case(name=f"{policy}-{e['episode']:04d}", classname=f"play.{policy}",
                        seconds=float(e.get("wall_s") or 0.0))
            if not e.get("win"):
                case.failure = (f"{e.get('outcome')} at progress {e.get('progress')} after {e.get('steps')} steps"
                                f" ({e.get('deaths', 0)} deaths)")
                case.details = f"{case.failure}; recording: {e.get('recording')}"
            cases.append(case)
    return cases
