"""A real tiny policy for the play and causality tests, made once per test session.

record (bot:airstriker, 3 episodes) -> build-dataset -> train --preset tiny, all through the
CLI in subprocesses. Until `contra-bc train` is merged, the same steps of real AdamW training
on the real dataset run here instead (``_train_here``), writing the same RUN layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_cli

GAME = "Airstriker-Genesis-v0"


def _train_cli_ready() -> bool:
    proc = run_cli("train", "--help")
    return proc.returncode == 0 and "not built" not in proc.stdout + proc.stderr and "--preset" in proc.stdout


def _train_here(dataset: Path, run: Path, steps: int = 20, save_every: int = 10) -> None:
    """Real AdamW steps of the tiny preset on the real dataset; checkpoints at each save_every."""
    import dataclasses
    import json

    import torch

    from contra_bc.dataset.loader import DatasetReader, make_loader
    from contra_bc.formats.checkpoint import save_checkpoint
    from contra_bc.model.actions import ActionSchema
    from contra_bc.model.model import PRESETS, build_model
    from contra_bc.model.text import HASHED_ID

    torch.manual_seed(0)
    info = DatasetReader(dataset).info
    cfg = dataclasses.replace(PRESETS["tiny"])
    schema = ActionSchema.from_buttons(info["buttons"])
    model = build_model(cfg, schema)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = make_loader(dataset, "train", window=cfg.history, batch_size=4, workers=0)
    run.mkdir(parents=True)
    step = 0
    while step < steps:
        for batch in loader:
            loss, _ = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % save_every == 0:
                with torch.no_grad():
                    val = [float(model.loss(b)[0]) for b in make_loader(dataset, "val", window=cfg.history,
                                                                        batch_size=4, workers=0, shuffle=False)]
                with open(run / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps({"kind": "val", "step": step, "loss": sum(val) / len(val)}) + "\n")
                save_checkpoint(run, step, {
                    "model": dataclasses.asdict(cfg), "action_schema": schema.to_json(),
                    "dataset": {k: info[k] for k in ("game", "platform", "fps", "frames_per_step", "buttons")},
                    "text_encoder": {"id": HASHED_ID, "dim": 384}, "texts": []},
                    {"model": model.state_dict(), "text_table": {"embeddings": torch.zeros(0, 384)}}, {})
            if step >= steps:
                break


def make_tiny_run(root: Path) -> tuple[Path, Path]:
    run, dataset = root / "run", root / "dataset"
    if (run / "last").is_file():
        return run, dataset
    recs = root / "recordings"
    run_cli("record", "--input", "bot:airstriker", "--game", GAME, "--episodes", 3, "--max-steps", 160,
            "--episode-until", "never", "--workers", 1, "--out", recs, check=True)
    run_cli("build-dataset", recs, "--out", dataset, "--val-fraction", 0.34, "--no-filter", "--workers", 1,
            check=True)
    if _train_cli_ready():
        run_cli("train", dataset, "--preset", "tiny", "--max-steps", 20, "--out", run, check=True, timeout=600)
    else:
        _train_here(dataset, run)
    return run, dataset


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(RUN dir, dataset dir) of a tiny policy trained on Airstriker; shared by the whole session."""
    # CONTRA_BC_TEST_TINY_DIR reuses a folder across sessions (made on first use), to iterate faster
    root = Path(os.environ.get("CONTRA_BC_TEST_TINY_DIR") or tmp_path_factory.getbasetemp() / "tiny-policy")
    root.mkdir(parents=True, exist_ok=True)
    return make_tiny_run(root)
