"""A real tiny policy for the play and causality tests, made once per test session.

record (bot:airstriker, 2 episodes) -> build-dataset -> train --preset tiny, all through the CLI
in subprocesses. 24 steps with checkpoints every 12: by then the causality score is well above
float rounding (~1e-10 at p=0.3, ~1e-9 at p=1); after 12 steps it is not (~1e-13).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_cli

GAME = "Airstriker-Genesis-v0"


def make_tiny_run(root: Path) -> tuple[Path, Path]:
    run, dataset = root / "run", root / "dataset"
    if (run / "last").is_file():
        return run, dataset
    recs = root / "recordings"
    run_cli("record", "--input", "bot:airstriker", "--game", GAME, "--episodes", 2, "--max-steps", 128,
            "--episode-until", "never", "--workers", 1, "--out", recs, check=True)
    run_cli("build-dataset", recs, "--out", dataset, "--val-fraction", 0.5, "--no-filter", "--workers", 1,
            check=True)
    run_cli("train", dataset, "--out", run, "--preset", "tiny", "--max-steps", 24, "--batch-size", 2, "--window", 8,
            "--workers", 0, "--no-augment", "--lr", "3e-3", "--eval-every", 12, "--save-every", 12, "--seed", 0,
            "--text-encoder", "hashed", check=True, timeout=600)
    return run, dataset


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(RUN dir, dataset dir) of a tiny policy trained on Airstriker; shared by the whole session."""
    # CONTRA_BC_TEST_TINY_DIR reuses a folder across sessions (made on first use), to iterate faster
    root = Path(os.environ.get("CONTRA_BC_TEST_TINY_DIR") or tmp_path_factory.getbasetemp() / "tiny-policy")
    root.mkdir(parents=True, exist_ok=True)
    return make_tiny_run(root)
