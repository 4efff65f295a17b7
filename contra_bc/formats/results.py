"""The results commands print or write: `play`'s evaluation.json and `causality-score --json`.

    write_evaluation(OUT / "evaluation.json", report)   play (headless runs)
    read_evaluation(path) -> dict | None                 report (None: the file is not there)
    read_causality(path) -> dict | None                  report (what `causality-score --json > F` left)
    read_stage(path) -> object | None                    any stage's `--json` output saved to a file

A stage's `--json` output is JSON Lines whose last line is the result (an older indented
document reads too). Readers check every field they promise before any of it is used, and
refuse a damaged or hand-edited file with one paragraph naming each problem. The layouts are
in docs/formats.md ("Formats written by play and causality-score").
"""

from __future__ import annotations

import json
from pathlib import Path

from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.fields import (absent_or, each_value, integer, list_of, mapping, number, optional, require_fields,
                                      string)

_PROBABILITY = number(at_least=0, at_most=1)

# what every policy's summary in evaluation.json holds (play.summarize writes more)
POLICY_SUMMARY = {
    "episodes": integer(at_least=0),
    "distinct_episodes": absent_or(integer(at_least=0)),  # older files lack it
    "wins": integer(at_least=0),
    "win_rate": optional(_PROBABILITY),
    "win_rate_ci95": optional(list_of(_PROBABILITY, min_len=2)),
    "progress_mean": optional(number(at_least=0)),
    "progress": list_of(number(at_least=0)),
    "death_progress": list_of(number(at_least=0)),
}

EPISODE_ROW = {
    "episode": integer(at_least=0),
    "outcome": string(),
    "progress": number(at_least=0),
    "steps": integer(at_least=0),
}

EVALUATION = {
    "game": string(),
    "state": string(),
    "episodes": integer(at_least=0),
    "seed": integer(),
    "seeds": list_of(integer(), min_len=2),
    "temperature": number(at_least=0),
    # play --sticky/--noop-max (older files lack it: clean starts)
    "perturbation": absent_or(mapping({"sticky": _PROBABILITY, "noop_max": integer(at_least=0)})),
    "policies": each_value(mapping(POLICY_SUMMARY)),
    "episodes_detail": each_value(list_of(mapping(EPISODE_ROW))),
}

CAUSALITY_SCORE = {
    "score": number(at_least=0),
    "spread": number(at_least=0),
    "mean_per_chunk": number(at_least=0),
    "p": _PROBABILITY,
    "chunks": integer(at_least=1),
    "chunks_scored": integer(at_least=0),
    "replaced_fraction": _PROBABILITY,
    "window": integer(at_least=1),
    "checkpoint": string(),
    "dataset": string(),
}


def read_stage(path: Path):
    """A stage's saved `--json` output: the last JSON line (or the one document); None if absent."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read ({exc}); rerun the stage that writes it.") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        if len(lines) < 2:
            raise ValueError("not one JSON document and not JSON Lines")
        return json.loads(lines[-1])
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); rerun the stage that writes it.") from None


def repeated(summary: dict) -> int | None:
    """How many different episodes a policy played, where that is fewer than it ran (episodes with
    the same actions from the same start state are one episode again); None when all differ or the
    file predates the count."""
    distinct = summary.get("distinct_episodes")
    return distinct if distinct is not None and distinct < summary["episodes"] else None


def check_evaluation(report, where) -> dict:
    require_fields(report, EVALUATION, where, "evaluation report",
                   "It is written by `contra-bc play --episodes N --out DIR`; rerun that to write it again.")
    return report


def write_evaluation(path: Path, report: dict) -> Path:
    """Check ``report`` against the layout, then write it atomically (temp file, fsync, rename)."""
    check_evaluation(report, f"the evaluation report for {path}")
    atomic.write_json(Path(path), report)
    return Path(path)


def read_evaluation(path: Path) -> dict | None:
    """OUT/evaluation.json of `play`, checked; None if the file is not there."""
    report = read_stage(path)
    return None if report is None else check_evaluation(report, path)


def read_causality(path: Path) -> dict | None:
    """The saved output of `causality-score CHECKPOINT DATASET --json`, checked; None if absent."""
    result = read_stage(path)
    if result is None:
        return None
    require_fields(result, CAUSALITY_SCORE, path, "causality score",
                   "It is what `contra-bc causality-score RUN DATASET --json` prints; save that again.")
    return result
