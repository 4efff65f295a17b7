"""Checkpoint format v1: a directory per checkpoint, safetensors + JSON, never pickle.

RUN/
  config.json                 resolved training config (also inside each checkpoint)
  metrics.jsonl               one JSON object per logged train/val event
  loss.png                    train/val loss curves
  last                        text: the relative path of the newest checkpoint (written atomically)
  checkpoints/step-NNNNNN/
    config.json               format, format_version, preset, model config, action schema,
                              text encoder {id, dim}, dataset excerpt, texts, step, train config
    model.safetensors         model weights (fp32)
    text_table.safetensors    "embeddings" [n_texts, dim]: the frozen encoder's output for `texts`
    training_state.safetensors  optimizer moments + RNG states as uint8/int64 tensors
    training_state.json       step, data position, optimizer hyper-parameters, RNG scalars

A checkpoint directory is built under a temp name and renamed into place, so a
crash leaves either the old set of checkpoints or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from contra_bc.errors import UserError
from contra_bc.formats import fields as F
from contra_bc.formats.atomic import fsync_file, write_json, write_text

FORMAT = "contra-bc-checkpoint"
FORMAT_VERSION = 1


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(run_dir: Path, step: int, config: dict, tensors: dict[str, dict], json_files: dict[str, dict]) -> Path:
    """Write RUN/checkpoints/step-NNNNNN atomically and point RUN/last at it.

    ``tensors``: file stem -> {name: tensor}; ``json_files``: file stem -> object.
    """
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    parent = run_dir / "checkpoints"
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / checkpoint_name(step)
    tmp = parent / f".{final.name}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_json(tmp / "config.json", {"format": FORMAT, "format_version": FORMAT_VERSION, **config})
        for stem, obj in json_files.items():
            write_json(tmp / f"{stem}.json", obj)
        for stem, named in tensors.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in named.items()}, str(tmp / f"{stem}.safetensors"))
            fsync_file(tmp / f"{stem}.safetensors")  # the folder is renamed into place: its files must be durable
        if final.exists():  # re-saving a step (after a resume): swap, then drop the old copy
            old = parent / f".{final.name}.{os.getpid()}.old"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text(run_dir / "last", f"checkpoints/{final.name}\n")
    return final


def resolve_checkpoint(path) -> Path:
    """A checkpoint dir, or a RUN dir (follows RUN/last) -> the checkpoint dir."""
    path = Path(path)
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    if (path / "last").is_file():
        try:
            name = (path / "last").read_text().strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        if not name:
            raise UserError(f"{path}/last is empty or unreadable (the run was cut off while writing it). Point at "
                            f"one of {path}/checkpoints/step-* instead, or write that path into {path}/last.")
        target = path / name
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target
        raise UserError(f"{path}/last names {target}, which is not a checkpoint (no config.json). The run was "
                        f"interrupted or files were moved; point at a directory under {path}/checkpoints/ instead.")
    if not path.exists():
        raise UserError(f"{path} does not exist. Pass a checkpoint directory (RUN/checkpoints/step-NNNNNN) or a "
                        "run directory written by `contra-bc train --out RUN`.")
    raise UserError(f"{path} is neither a checkpoint (config.json + model.safetensors) nor a run directory with a "
                    "`last` file. Pass the --out directory of `contra-bc train` or one of its checkpoints/step-* dirs.")


_POSITIVE = F.integer(at_least=1)
# what a checkpoint's config.json must hold for play, --init and --resume (train writes more)
CHECKPOINT_CONFIG = {
    "model": F.mapping({
        "d_model": _POSITIVE, "n_layers": _POSITIVE, "n_heads": _POSITIVE, "history": _POSITIVE,
        "image_tokens": _POSITIVE, "frame_size": _POSITIVE, "text_dim": _POSITIVE, "dec_d_model": _POSITIVE,
        "dec_layers": _POSITIVE, "dec_heads": _POSITIVE, "cnn_token_channels": _POSITIVE, "cnn_input_pool": _POSITIVE,
        "cnn_width": F.number(above=0), "cnn_depth": F.number(above=0)}),
    "action_schema": F.mapping({"buttons": F.button_list()}),
    "dataset": F.absent_or(F.mapping()), "texts": F.absent_or(F.list_of(F.string(non_empty=False))),
    "text_encoder": F.absent_or(F.mapping()), "train": F.absent_or(F.mapping()),
}


def read_config(ckpt: Path) -> dict:
    try:
        cfg = json.loads((Path(ckpt) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {ckpt}/config.json ({exc}); the checkpoint is damaged. Use an earlier "
                        "checkpoint from the run's checkpoints/ directory or retrain.")
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise UserError(f"{ckpt}/config.json is not a contra-bc checkpoint (format {cfg.get('format') if isinstance(cfg, dict) else None!r}). "
                        "Pass a directory written by `contra-bc train`.")
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{ckpt} has checkpoint format version {version}, but this contra-bc reads version "
                        f"{FORMAT_VERSION}. Use the contra-bc release that wrote it, or retrain with "
                        "`contra-bc train DATASET --out RUN`.")
    F.require_fields(cfg, CHECKPOINT_CONFIG, Path(ckpt) / "config.json", "checkpoint config",
                     "The checkpoint is damaged; use an earlier one from the run's checkpoints/ directory or retrain.")
    return cfg


def read_tensors(ckpt: Path, stem: str) -> dict:
    from safetensors.torch import load_file

    path = Path(ckpt) / f"{stem}.safetensors"
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for truncated/corrupt files
        raise UserError(f"cannot read {path} ({type(exc).__name__}: {exc}); the checkpoint is damaged or "
                        "incomplete. Use an earlier checkpoint from the run's checkpoints/ directory.")


def read_json(ckpt: Path, stem: str) -> dict:
    path = Path(ckpt) / f"{stem}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}); the checkpoint is damaged or has no training state. "
                        "Use an earlier checkpoint, or start a new run without --resume.")


CHECKPOINT_FILES = ("config.json", "model.safetensors", "text_table.safetensors", "training_state.safetensors",
                    "training_state.json")
_COUNT = F.integer(at_least=0)
TRAINING_STATE = {
    "step": _COUNT, "data_epoch": _COUNT, "data_position": _COUNT,
    "optimizer": F.mapping({"param_groups": F.list_of(F.mapping(), min_len=1), "state_keys": F.mapping()}),
    "rng_numpy": F.list_of(lambda v: None, min_len=4), "rng_python": F.list_of(lambda v: None, min_len=2),
}


def read_training_state(ckpt: Path) -> tuple[dict, dict]:
    """(tensors, scalars) of a checkpoint's training state, the JSON's fields checked; UserError otherwise."""
    scalars = read_json(ckpt, "training_state")
    F.require_fields(scalars, TRAINING_STATE, Path(ckpt) / "training_state.json", "training state",
                     "The checkpoint is damaged; resume from an earlier one (write its path, e.g. "
                     "checkpoints/step-000100, into RUN/last) or start a new run.")
    return read_tensors(ckpt, "training_state"), scalars


def complete_checkpoints(run: Path) -> list[Path]:
    """The run's checkpoint directories that hold every file a resume needs, oldest first."""
    parent = Path(run) / "checkpoints"
    if not parent.is_dir():
        return []
    found = [d for d in parent.glob("step-*") if d.is_dir() and all((d / f).is_file() for f in CHECKPOINT_FILES)]
    return sorted(found, key=lambda d: d.name)


def resume_checkpoint(run: Path) -> Path:
    """The checkpoint `train --resume` continues from: the one RUN/last names, or where RUN/last is missing
    or names nothing usable, the newest complete checkpoint. UserError when the run has none."""
    run = Path(run)
    try:
        return resolve_checkpoint(run)
    except UserError:
        found = complete_checkpoints(run)
        if not found:
            raise UserError(f"--resume: {run} holds no complete checkpoint (checkpoints/step-*/ with "
                            f"{', '.join(CHECKPOINT_FILES)}). Start a new run without --resume, or pass the --out "
                            "directory of an earlier `contra-bc train`.") from None
        return found[-1]


def read_run_config(run: Path) -> dict:
    """RUN/config.json (the resolved options of a run), checked: an object with a `train` table."""
    path = Path(run) / "config.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run} has no config.json, so it is not a run of `contra-bc train`.") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}); the run's options are damaged. Restore the file, or pass "
                        f"every option again on the command line with --config FILE.") from None
    F.require_fields(doc, {"train": F.mapping()}, path, "run config",
                     "Restore the file (each checkpoint's config.json holds a copy under `train`), or start a "
                     "new run.")
    return doc


# ----------------------------------------------------------------------------- RUN/metrics.jsonl
METRICS = "metrics.jsonl"


def append_metrics(run: Path, record: dict) -> None:
    """One line per train/val event, flushed and fsynced (a crash cuts at most the line being written)."""
    with open(Path(run) / METRICS, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(run: Path, kind: str | None = None) -> list[dict]:
    """The run's metrics records (only those of ``kind``, "train" or "val", if given); a line cut
    short by a crash is skipped. [] when the run has no metrics yet."""
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and (kind is None or row.get("kind") == kind):
            rows.append(row)
    return rows
