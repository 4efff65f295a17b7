"""`contra-bc train`: fit the policy to a dataset, with validation, checkpoints and exact resume.

One loop for every scale: plain CPU for the tests and the demo, bf16 autocast on
CUDA, several processes with DDP under `torchrun` (rank 0 writes the run). The
learning rate is a pure function of the step (linear warmup, cosine to
`min_lr_ratio`), augmentation draws from a generator seeded by (seed, step), and
the data position is (epoch, batch) — so a resumed run replays the same updates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from contra_bc.config import TrainConfig
from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.checkpoint import METRICS, append_metrics, read_metrics


def load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    try:
        obj = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read the config file {path} ({exc}). Fix the TOML (keys as in "
                        f"`contra-bc train --help`, e.g. `batch_size = 8`).")
    return obj.get("train", obj)


def config_from_options(flags: dict, *, dataset: Path, out: Path | None, config_file: Path | None,
                        resume: bool) -> TrainConfig:
    """The run's TrainConfig from the command line: flags (None: not given) win over the --config file,
    which wins over a resumed run's saved options (all but --stop-at, which holds once)."""
    from contra_bc.formats import checkpoint as ckfmt

    options = load_toml(config_file) if config_file else {}
    saved = None
    if resume and out is not None and (out / "config.json").is_file():
        saved = ckfmt.read_run_config(out)["train"]
    elif resume and out is not None and ckfmt.complete_checkpoints(out):  # RUN/config.json lost: the checkpoint's copy
        saved = ckfmt.read_config(ckfmt.resume_checkpoint(out)).get("train")
    if isinstance(saved, dict):  # a resumed run keeps its options unless flags change them
        options = {**{k: v for k, v in saved.items()
                      if k not in ("dataset", "out", "resume", "stop_at")}, **options}  # --stop-at is once
    options.update({k: v for k, v in flags.items() if v is not None})
    if options.get("init") and not resume and "change_weight" not in options:
        options["change_weight"] = _init_change_weight(options["init"])
    options["dataset"] = str(dataset)
    if out is None and "out" not in options:
        raise UserError("--out RUN is required: the directory for checkpoints and metrics, e.g. `--out runs/tiny`.")
    if out is not None:
        options["out"] = str(out)
    options["resume"] = resume
    return TrainConfig.from_dict(options)


def _init_change_weight(init) -> float:
    """The --change-weight an --init checkpoint was trained with (1.0 where it does not say): fine-tuning
    keeps the balance of its losses unless told otherwise (at weight 1 the change head swamps the jumps)."""
    from contra_bc.formats import checkpoint as ckfmt

    try:
        weight = ckfmt.read_config(ckfmt.resolve_checkpoint(init)).get("train", {}).get("change_weight")
    except (UserError, OSError, ValueError, AttributeError):  # a bad --init is reported where it is loaded
        return 1.0
    return float(weight) if isinstance(weight, (int, float)) and weight >= 0 else 1.0


def table_rows(summary: dict) -> list[dict]:
    """The summary table of `train`: steps, parameters, train loss and the last validation's metrics."""
    val = summary.get("val") or {}
    rows = [{"metric": "steps", "value": summary["step"]}, {"metric": "parameters", "value": f"{summary['parameters']:,}"},
            {"metric": "train loss", "value": f"{summary['train_loss']:.4f}" if summary["train_loss"] else "-"}]
    rows += [{"metric": f"val {k}", "value": f"{v:.4f}" if isinstance(v, float) else str(v)}
             for k, v in val.items() if v is not None and (k == "loss" or k.startswith("ppl/") or k.startswith("acc/")
                                                           or k.startswith("press_"))]
    return rows


def lr_at(step: int, base: float, tc: TrainConfig) -> float:
    if step < tc.warmup_steps:
        return base * (step + 1) / tc.warmup_steps
    span = max(1, tc.max_steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    return base * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# ----------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


# ----------------------------------------------------------------------------- data
def _loader(tc: TrainConfig, split: str, window: int, epoch: int, shuffle: bool, dist: Dist | None = None,
            skip: int = 0):
    from contra_bc.dataset.loader import make_loader

    dist = dist or Dist()
    return make_loader(tc.dataset, split=split, window=window, batch_size=tc.batch_size, shuffle=shuffle,
                       seed=tc.seed + epoch, workers=tc.workers, rank=dist.rank, world=dist.world, skip=skip,
                       jitter=tc.jitter and split == "train", focus=tc.focus if split == "train" else 1,
                       learn=tc.learn)


def drop_text(text, seed: int, step: int, micro: int, rank: int, p: float):
    """Training sequences shown with no instruction: each, with probability p, gets text -1 throughout."""
    import torch

    if p <= 0:
        return text
    gen = torch.Generator(device="cpu").manual_seed((((seed * 1_000_003 + step) * 64 + micro) * 1024 + rank) ^ 0x5EED)
    drop = torch.rand(text.shape[0], generator=gen) < p
    return torch.where(drop.to(text.device)[:, None], torch.full_like(text, -1), text)


class Batches:
    """Endless training batches for one rank: epoch e uses seed+e; rank r takes batches r, r+world, ..."""

    def __init__(self, tc, window, dist: Dist, epoch=0, position=0):
        self.tc, self.window, self.dist = tc, window, dist
        self.epoch, self.position = epoch, position
        self._open(skip=position)

    def _open(self, skip):
        # the loader reads only this rank's batches, from its position on (a resumed run skips
        # the ones it already trained on without loading them)
        self._it = iter(_loader(self.tc, "train", self.window, self.epoch, shuffle=True, dist=self.dist, skip=skip))

    def next(self):
        for _ in range(2):
            try:
                try:
                    batch = next(self._it)
                except UserError as exc:  # raised in a loader worker: torch wraps it in that worker's traceback
                    raise UserError(worker_error_message(exc)) from None
                self.position += 1
                return batch
            except StopIteration:
                self.epoch, self.position = self.epoch + 1, 0
                self._open(skip=0)
        raise UserError(f"the train split of {self.tc.dataset} yields no batch of window {self.window}; use a smaller "
                        "--window or --batch-size, or build the dataset from more recordings.")


def worker_error_message(exc: Exception) -> str:
    """The message of a UserError raised in a data-loader worker, without the traceback torch wraps it in."""
    text = str(exc)
    marker = "UserError: "
    return text[text.rindex(marker) + len(marker):].strip() if marker in text else text


def _to(batch, device):
    import torch

    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


# ----------------------------------------------------------------------------- metrics
def evaluate(model, tc: TrainConfig, window: int, device, aux: bool = False) -> dict:
    """Validation: loss / perplexity per action group, accuracy / precision / recall per button; with ``aux``
    the aux head's mean squared error (standardised units: 1.0 = no better than the mean)."""
    import torch

    schema = model.schema
    try:
        loader = _loader(tc, "val", window, 0, shuffle=False)
    except UserError:  # no val episodes: training goes on, metrics say nothing about validation
        return {}
    nll = torch.zeros(len(schema.groups), dtype=torch.float64)
    count = 0
    names = [(i, b) for i, b in enumerate(schema.buttons) if b]
    conf = {b: [0, 0, 0, 0] for _, b in names}  # tp fp fn tn
    # press edges (button up at t-1, down at t) of the one-button groups: jump starts and shots, the rare
    # decisive actions that per-button accuracy hides; tp fp fn and the summed probability at true edges
    singles = [(g, grp.bits[0], grp.name) for g, grp in enumerate(schema.groups) if len(grp.bits) == 1]
    edges = {name: [0, 0, 0, 0.0] for _, _, name in singles}
    aux_sum, aux_n, change_sum, change_n = 0.0, 0, 0.0, 0
    model.eval()

    def batches():
        try:
            for n, batch in enumerate(loader):
                if n >= tc.eval_batches:
                    return
                yield batch
        except UserError as exc:  # from a loader worker
            raise UserError(worker_error_message(exc)) from None

    with torch.no_grad():
        for batch in batches():
            batch = _to(batch, device)
            if not aux:
                batch.pop("aux", None)
            _, stats = model.loss(batch, z_loss=0.0)
            if "aux" in stats:
                aux_sum, aux_n = aux_sum + float(stats["aux"]), aux_n + 1
            if "change" in stats:
                change_sum, change_n = change_sum + float(stats["change"]), change_n + 1
            k = int(stats["count"])
            if not k:
                continue
            nll += torch.tensor([float(v) * k for v in stats["nll"]], dtype=torch.float64)
            count += k
            keep = stats["keep"]
            pred = schema.decode_tensor(torch.stack([lg.argmax(-1) for lg in stats["logits"]], -1))[keep]
            targets = batch.get("targets", batch["actions"])  # chosen actions; the history is what was executed
            true = targets[keep]
            for i, b in names:
                p, t = (pred >> i) & 1, (true >> i) & 1
                conf[b][0] += int((p & t).sum())
                conf[b][1] += int((p & (1 - t)).sum())
                conf[b][2] += int(((1 - p) & t).sum())
                conf[b][3] += int(((1 - p) & (1 - t)).sum())
            valid = stats["keep"][:, 1:] & batch["valid"][:, :-1]  # the step before is real (teacher-forced)
            before = batch["actions"][:, :-1]
            predicted = schema.decode_tensor(torch.stack([lg.argmax(-1) for lg in stats["logits"]], -1))[:, 1:]
            for g, bit, name in singles:
                up = ((before >> bit) & 1) == 0
                true_edge = up & (((targets[:, 1:] >> bit) & 1) == 1) & valid
                pred_edge = up & (((predicted >> bit) & 1) == 1) & valid
                p_down = torch.softmax(stats["logits"][g][:, 1:].float(), -1)[..., 1]
                edges[name][0] += int((true_edge & pred_edge).sum())
                edges[name][1] += int((~true_edge & pred_edge).sum())
                edges[name][2] += int((true_edge & ~pred_edge).sum())
                edges[name][3] += float(p_down[true_edge].sum())
    model.train()
    if not count:
        return {}
    out = {"val_steps": count, "loss": float(nll.sum() / count)}
    if aux_n:
        out["aux"] = aux_sum / aux_n
    if change_n:
        out["change"] = change_sum / change_n
    for g, v in zip(schema.groups, nll / count):
        out[f"nll/{g.name}"] = float(v)
        out[f"ppl/{g.name}"] = float(math.exp(v))
    for b, (tp, fp, fn, tn) in conf.items():
        out[f"acc/{b}"] = (tp + tn) / max(1, tp + fp + fn + tn)
        out[f"precision/{b}"] = tp / (tp + fp) if tp + fp else None
        out[f"recall/{b}"] = tp / (tp + fn) if tp + fn else None
    for name, (tp, fp, fn, p_sum) in edges.items():
        out[f"press_recall/{name}"] = tp / (tp + fn) if tp + fn else None
        out[f"press_precision/{name}"] = tp / (tp + fp) if tp + fp else None
        out[f"press_prob/{name}"] = p_sum / (tp + fn) if tp + fn else None  # mean P(press) where the expert pressed
        out[f"presses/{name}"] = tp + fn
    return out


def draw_loss_png(run: Path) -> None:
    """Train and validation loss against step, as RUN/loss.png."""
    from contra_bc.charts import line_charts

    rows = read_metrics(run)
    series = {kind: [(r["step"], r["loss"]) for r in rows if r.get("kind") == kind and r.get("loss") is not None]
              for kind in ("train", "val")}
    if not series["train"] and not series["val"]:
        return
    line_charts([{"series": {k: sorted(v) for k, v in series.items() if v}, "markers": ["val"], "log_y": True,
                  "legend": True, "xlabel": "optimizer step", "ylabel": "loss (log scale)"}],
                run / "loss.png", title=f"{run.name}: training loss and validation points")


def _set_aux_scale(model, ds) -> None:
    """The aux targets' mean and spread over the train split (a constant variable gets spread 1)."""
    import numpy as np
    import torch

    values = [ds.aux(e["episode_index"]) for e in ds.split_episodes("train")]
    values = np.concatenate(values) if values else np.zeros((0, len(ds.aux_variables)), np.float32)
    if not len(values):
        return
    std = values.std(axis=0)
    model.aux_mean.copy_(torch.from_numpy(values.mean(axis=0)))
    model.aux_std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))


# ----------------------------------------------------------------------------- training state (no pickle)
def training_state(opt, step, data_epoch, data_position):
    import numpy as np
    import torch

    tensors, opt_json = {}, {"param_groups": [], "state_keys": {}}
    sd = opt.state_dict()
    for pid, st in sd["state"].items():
        opt_json["state_keys"][str(pid)] = sorted(st)
        for name, v in st.items():
            tensors[f"optim.{pid}.{name}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    for g in sd["param_groups"]:
        opt_json["param_groups"].append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    np_state = np.random.get_state()
    tensors["rng.numpy.keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_state = random.getstate()
    tensors["rng.python"] = torch.tensor(py_state[1], dtype=torch.int64)
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    scalars = {"step": step, "data_epoch": data_epoch, "data_position": data_position, "optimizer": opt_json,
               "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
               "rng_python": [py_state[0], py_state[2]]}
    return tensors, scalars


def restore_training_state(opt, tensors, scalars):
    import numpy as np
    import torch

    state = {}
    for pid, names in scalars["optimizer"]["state_keys"].items():
        state[int(pid)] = {n: tensors[f"optim.{pid}.{n}"] for n in names}
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in scalars["optimizer"]["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    kind, pos, has_gauss, cached = scalars["rng_numpy"]
    np.random.set_state((kind, tensors["rng.numpy.keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss = scalars["rng_python"]
    random.setstate((version, tuple(int(x) for x in tensors["rng.python"].tolist()), gauss))
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


# ----------------------------------------------------------------------------- the loop
def _device(tc: TrainConfig, dist: Dist):
    import torch

    if tc.device == "auto":
        return torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(tc.device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {tc.device!r} is not a device torch knows; use auto, cpu, cuda or cuda:N.") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {tc.device}: contra-bc trains on cpu or cuda; use auto, cpu, cuda or cuda:N.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {tc.device}: this torch has no CUDA ({torch.__version__}). Use --device cpu.")
    return dev


def _text_encoder(name: str):
    from contra_bc.model import text

    if name == "auto":
        return text.default_encoder()
    if name == "minilm":
        return text.encoder_by_id(text.MINILM_ID, 384)
    if name == "hashed":
        return text.HashedBagOfWords()
    return text.SentenceTransformerEncoder(name)  # any sentence-transformers model name or local path


def _check_checkpoint_buttons(flag: str, ckpt, saved: dict, dataset, info: dict, advice: str) -> None:
    """UserError unless the checkpoint was trained on the dataset's buttons (its action heads fit)."""
    schema = saved.get("action_schema")
    theirs = schema.get("buttons") if isinstance(schema, dict) else None
    if theirs != list(info["buttons"]):
        raise UserError(f"{flag}: {ckpt} was trained on buttons {theirs}, but {dataset} has {info['buttons']}. "
                        f"{advice}")


def _rare_groups(tc: TrainConfig, schema, sequence: int) -> tuple:
    """The one-button action groups of the train split's rarely pressed buttons (a jump, not the fire rhythm):
    what --press-slack and --change-horizon apply to."""
    from contra_bc.dataset.loader import rare_buttons

    rare = set(rare_buttons(tc.dataset, "train", sequence))
    return tuple(g for g, group in enumerate(schema.groups)
                 if len(group.bits) == 1 and schema.buttons[group.bits[0]] in rare)


def _check_options(tc: TrainConfig) -> None:
    """UserError for option values refused before anything is read."""
    from contra_bc.model.model import PRESETS

    if tc.preset not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not {tc.preset!r}.")
    if tc.learn not in ("chosen", "executed"):
        raise UserError(f"--learn must be chosen or executed, not {tc.learn!r}.")
    if tc.image_norm not in ("group", "batch"):
        raise UserError(f"--image-norm must be group or batch, not {tc.image_norm!r}.")
    if tc.max_steps < 1 or tc.batch_size < 1 or tc.grad_accum < 1:
        raise UserError("--max-steps, --batch-size and --grad-accum must be at least 1.")


def _claim_run_dir(tc: TrainConfig, run: Path) -> TrainConfig:
    """Check --out against --resume; a run stopped before its first checkpoint starts again from step 0."""
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file; give a directory for the run (checkpoints, metrics.jsonl).")
    from contra_bc.formats.checkpoint import complete_checkpoints

    started = (run / "last").exists() or bool(complete_checkpoints(run))
    unstarted = run.is_dir() and not started and (run / "config.json").is_file()
    if tc.resume and not started and not unstarted:
        raise UserError(f"--resume: {run} has no checkpoint to continue from (no `last` pointer, no complete "
                        "checkpoints/step-*). Start a new run without --resume, or pass the --out directory of an "
                        "earlier `contra-bc train`.")
    if not tc.resume and not atomic.check_new_dir(run) and not unstarted:
        raise UserError(f"{run} exists and is not empty. Continue it with `--resume`, or choose a new --out.")
    if unstarted:  # stopped before its first checkpoint: nothing to resume, so it starts again from step 0
        tc = dataclasses.replace(tc, resume=False)
        for stale in (METRICS, "loss.png"):
            (run / stale).unlink(missing_ok=True)
    return tc


def _model_config(tc: TrainConfig, ds):
    """(model config, --init checkpoint or None): the preset fitted to the dataset, or the shape of
    the --init checkpoint, which must fit the preset, window and buttons asked for; on --resume the run's
    change head (checked against the checkpoint when it loads)."""
    from contra_bc.formats import checkpoint as ckfmt
    from contra_bc.model.model import PRESETS, ModelConfig

    info = ds.info
    preset = PRESETS[tc.preset]
    if tc.image_input not in ("pool", "unshuffle"):
        raise UserError(f"--image-input must be pool or unshuffle, not {tc.image_input!r}.")
    pool = tc.image_pool or preset.cnn_input_pool
    model_cfg = dataclasses.replace(preset, history=tc.window or preset.history, image_norm=tc.image_norm,
                                    cnn_input_pool=pool, cnn_input=tc.image_input if pool > 1 else "pool",
                                    frame_size=int(info.get("frame_size", [192])[0]),
                                    aux_outputs=len(ds.aux_variables) if tc.aux_weight > 0 else 0)
    if tc.resume:  # the run's own model: a change head only if the run was built with one
        model_saved = ckfmt.read_config(ckfmt.resume_checkpoint(Path(tc.out))).get("model")
        model_saved = model_saved if isinstance(model_saved, dict) else {}
        if tc.init:  # an --init run has its checkpoint's shape (window, encoder input), which its flags need not name
            with contextlib.suppress(KeyError, TypeError):  # a damaged entry fails when the weights load
                return dataclasses.replace(ModelConfig.from_dict(model_saved), frame_size=model_cfg.frame_size), None
        horizon, groups = model_saved.get("change_horizon"), model_saved.get("change_groups")
        if isinstance(horizon, int) and isinstance(groups, list):  # a damaged entry fails when the weights load
            model_cfg = dataclasses.replace(model_cfg, change_horizon=horizon, change_groups=list(groups))
        return model_cfg, None
    if not tc.init:
        return model_cfg, None
    init_ckpt = ckfmt.resolve_checkpoint(tc.init)
    saved = ckfmt.read_config(init_ckpt)
    try:
        model_cfg = dataclasses.replace(ModelConfig.from_dict(saved["model"]),
                                        frame_size=model_cfg.frame_size)
    except (KeyError, TypeError) as exc:
        raise UserError(f"--init: {init_ckpt}/config.json has no valid model entry ({exc}); the checkpoint is "
                        f"damaged. Use another checkpoint.") from None
    if saved.get("preset") != tc.preset or (tc.window and tc.window != model_cfg.history):
        raise UserError(f"--init: {init_ckpt} is a {saved.get('preset')} model with window "
                        f"{model_cfg.history}; pass --preset {saved.get('preset')} and --window "
                        f"{model_cfg.history} (or leave --window out).")
    asked = (tc.image_pool, tc.image_input if tc.image_pool != 1 else "pool")
    has = (model_cfg.cnn_input_pool, model_cfg.cnn_input)
    if (tc.image_pool is not None and asked != has) or (tc.image_input != "pool" and tc.image_input != has[1]):
        raise UserError(f"--init: {init_ckpt}'s image encoder takes the frame at 1/{has[0]} its size ({has[1]}); "
                        f"--image-pool {tc.image_pool or has[0]} --image-input {tc.image_input} asks for another "
                        f"encoder input, which its weights do not fit. Leave --image-pool and --image-input out to "
                        f"fine-tune it as it is, or train from scratch without --init.")
    _check_checkpoint_buttons("--init", init_ckpt, saved, tc.dataset, info, "Its action heads would not fit.")
    return model_cfg, init_ckpt


def _sequence_length(tc: TrainConfig, model_cfg) -> int:
    """Steps per training sequence; UserError if the frames are too small or the sequence too short."""
    # the encoder pools the frame by k, then halves it 4 times; its last map must be at least 2x2, or each of
    # its per-frame norms sees one value per group, normalises it to a constant and the image token is blind
    smallest = model_cfg.cnn_input_pool * 32
    if model_cfg.frame_size < smallest:
        raise UserError(f"{tc.dataset} holds {model_cfg.frame_size}x{model_cfg.frame_size} frames; the {tc.preset} "
                        f"preset's image encoder takes frames of at least {smallest}x{smallest} (its last feature "
                        f"map must be at least 2x2). Rebuild the dataset with `contra-bc build-dataset ... "
                        f"--frame-size 192` (the default), or pick a preset that takes {model_cfg.frame_size}.")
    sequence = tc.sequence or 2 * model_cfg.history
    if sequence < model_cfg.history:
        raise UserError(f"--sequence {sequence} is shorter than --window {model_cfg.history}: a training sequence "
                        f"must hold at least one full attention window (default: 2 x window).")
    return sequence


def _build_model(tc: TrainConfig, model_cfg, schema, ds, device, init_ckpt, aux_on: bool):
    """(model, text encoder, texts, text table): the policy on ``device`` with the --init weights,
    and the embeddings of the dataset's instructions."""
    import torch

    from contra_bc.formats import checkpoint as ckfmt
    from contra_bc.model.model import PolicyModel

    model = PolicyModel(model_cfg, schema).to(device)
    if init_ckpt is not None:
        try:
            model.load_state_dict(ckfmt.read_tensors(init_ckpt, "model"))
        except RuntimeError as exc:
            raise UserError(f"--init: {init_ckpt}/model.safetensors does not fit its config.json "
                            f"({str(exc).splitlines()[0][:200]}); the checkpoint is damaged.") from None
    if aux_on and init_ckpt is None and not tc.resume:
        _set_aux_scale(model, ds)
    encoder = _text_encoder(tc.text_encoder)
    texts = list(ds.texts)
    table = encoder.encode(texts) if texts else torch.zeros(0, encoder.dim)
    model.cfg.text_dim = encoder.dim
    if encoder.dim != model.text_proj.in_features:
        raise UserError(f"text encoder {encoder.id} gives {encoder.dim}-d embeddings; the model expects "
                        f"{model.text_proj.in_features}. Use --text-encoder minilm or hashed.")
    model.set_text_table(table)
    return model, encoder, texts, table


def _optimizer(model, tc: TrainConfig, lr: float):
    """AdamW; weight decay on matrices only (not on biases and norms)."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=tuple(tc.betas))


def _resume_from(run: Path, tc: TrainConfig, model, opt, window: int, info: dict) -> tuple[int, int, int]:
    """Load the run's last checkpoint into the model and optimizer; (step, data epoch, data position)."""
    from contra_bc.formats import checkpoint as ckfmt

    ckpt = ckfmt.resume_checkpoint(run)
    saved = ckfmt.read_config(ckpt)
    model_saved = saved.get("model") if isinstance(saved.get("model"), dict) else {}
    if model_saved.get("preset") != tc.preset or model_saved.get("history") != window:
        raise UserError(f"--resume: {ckpt} was trained with preset {model_saved.get('preset')} and window "
                        f"{model_saved.get('history')}; pass the same --preset and --window (or --config "
                        f"{run}/config.json).")
    dataset = saved.get("dataset") if isinstance(saved.get("dataset"), dict) else {}
    _check_checkpoint_buttons("--resume", ckpt, saved, tc.dataset, info,
                              f"Resume with the run's own dataset ({dataset.get('path')}).")
    tensors, scalars = ckfmt.read_training_state(ckpt)
    try:
        model.load_state_dict(ckfmt.read_tensors(ckpt, "model"))
        restore_training_state(opt, tensors, scalars)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        earlier = [c.name for c in ckfmt.complete_checkpoints(run) if c.name < ckpt.name]
        raise UserError(f"--resume: {ckpt} does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}): "
                        f"its weights or training state are damaged or come from another run. "
                        + (f"Resume from an earlier checkpoint: write `checkpoints/{earlier[-1]}` into {run}/last."
                           if earlier else "Start a new run.")) from None
    return scalars["step"], scalars["data_epoch"], scalars["data_position"]


def train(tc: TrainConfig, on_step=None) -> dict:
    """Run (or resume) training. ``on_step(step, total, record)`` is called on rank 0 after each step.

    Read top to bottom: setup, data, model, the run folder, the loop, the end. Nothing is written
    before the options, the dataset and any --init/--resume checkpoint are accepted."""
    import numpy as np
    import torch

    from contra_bc.dataset.loader import DatasetReader
    from contra_bc.formats import checkpoint as ckfmt
    from contra_bc.formats.atomic import write_json
    from contra_bc.formats.dataset import validate_dataset
    from contra_bc.model.actions import ActionSchema
    from contra_bc.model.augment import augment_frames
    from contra_bc.model.model import LossConfig, count_parameters
    from contra_bc.signals import StopSignals

    # ---- setup: options, processes, devices, what the run folder already holds
    _check_options(tc)
    run = Path(tc.out)
    dist = init_distributed("cuda" if tc.device.startswith("cuda") or (tc.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = _device(tc, dist)
    if dist.world > 1 and device.type == "cuda":
        torch.cuda.set_device(device)
    tc = _claim_run_dir(tc, run)

    # ---- data: every shard's footer, columns, actions and text indices, before any worker reads one
    validate_dataset(tc.dataset)
    ds = DatasetReader(tc.dataset)
    ds.check_values()
    info = ds.info
    schema = ActionSchema.from_buttons(info["buttons"])
    model_cfg, init_ckpt = _model_config(tc, ds)
    # the aux loss needs a head for exactly the dataset's variables (an --init checkpoint may have none)
    aux_on = tc.aux_weight > 0 and bool(ds.aux_variables) and model_cfg.aux_outputs == len(ds.aux_variables)
    sequence = _sequence_length(tc, model_cfg)
    rare_groups = _rare_groups(tc, schema, sequence) if (tc.press_slack or tc.change_horizon) else ()
    slack_groups = rare_groups if tc.press_slack else ()
    if tc.change_horizon and init_ckpt is None and not tc.resume:
        model_cfg = dataclasses.replace(model_cfg, change_horizon=tc.change_horizon, change_groups=list(rare_groups))
    change_on = bool(model_cfg.change_horizon and model_cfg.change_groups) and tc.change_weight > 0

    # ---- model and optimizer: fresh, from --init, or the run's checkpoint (--resume)
    torch.manual_seed(tc.seed)
    np.random.seed(tc.seed)
    random.seed(tc.seed)
    base_lr = tc.lr if tc.lr is not None else model_cfg.lr
    model, encoder, texts, table = _build_model(tc, model_cfg, schema, ds, device, init_ckpt, aux_on)
    opt = _optimizer(model, tc, base_lr)
    step, epoch, position = _resume_from(run, tc, model, opt, model_cfg.history, info) if tc.resume else (0, 0, 0)
    net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    # on CUDA: compiled, with the fused attention path (FlexAttention block masks); on CPU eager and dense
    model.attention = "flex" if device.type == "cuda" else "dense"
    forward = torch.compile(net) if (tc.compile if tc.compile is not None else device.type == "cuda") else net
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    batches = Batches(tc, sequence, dist, epoch, position)
    checkpoint_config = {"preset": tc.preset, "model": asdict(model_cfg), "action_schema": schema.to_json(),
                         "text_encoder": {"id": encoder.id, "dim": encoder.dim},
                         "dataset": {"path": str(tc.dataset), "game": info.get("game"), "buttons": info["buttons"],
                                     "frame_size": info.get("frame_size"), "hz": info.get("hz")},
                         "texts": texts, "train": asdict(tc), "parameters": count_parameters(model),
                         "aux_variables": ds.aux_variables if aux_on else []}

    def save(at_step: int, data_position: tuple) -> None:
        if dist.main:
            tensors, scalars = training_state(opt, at_step, *data_position)
            ckfmt.save_checkpoint(run, at_step, {**checkpoint_config, "step": at_step},
                                  {"model": model.state_dict(), "text_table": {"embeddings": table},
                                   "training_state": tensors}, {"training_state": scalars})

    loss_cfg = LossConfig(z_loss=tc.z_loss, press_weight=tc.press_weight, aux_weight=tc.aux_weight if aux_on else 0.0,
                          press_slack=tc.press_slack, slack_groups=slack_groups,
                          change_weight=tc.change_weight if change_on else 0.0, history_dropout=tc.history_dropout)

    # ---- the run folder: written from here on; a run that ends with an error before its first
    # checkpoint leaves nothing behind
    made_run_dir = not run.exists()
    if dist.main and not (tc.resume or run.is_dir()) and not atomic.claim_dir(run):
        raise UserError(f"{run} appeared with files in it while training started; choose a new --out.")
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "config.json", {"train": asdict(tc), "model": asdict(model_cfg), "world_size": dist.world})

    # ---- the loop: Ctrl-C and SIGTERM stop between steps; the step in flight finishes and is saved
    stop = min(tc.max_steps, tc.stop_at or tc.max_steps)
    data_position = (batches.epoch, batches.position)  # after the last finished step
    model.train()
    last_val, record, saved_step = {}, {}, step
    t_last, s_last = time.perf_counter(), step
    with StopSignals() as signals, _discard_run_without_checkpoint(run, tc, dist.main, made_run_dir):
        try:
            while step < stop and not signals.requested:
                lr = lr_at(step, base_lr, tc)
                for g in opt.param_groups:
                    g["lr"] = lr
                loss_sum, aux_sum, change_sum, nll_sum = 0.0, 0.0, 0.0, [0.0] * len(schema.groups)
                for micro in range(tc.grad_accum):  # one optimizer step over --grad-accum micro-batches
                    batch = _to(batches.next(), device)
                    if not aux_on:
                        batch.pop("aux", None)
                    batch["text"] = drop_text(batch["text"], tc.seed, step, micro, dist.rank, tc.text_dropout)
                    frames = batch["frames"]
                    if tc.augment:
                        gen = torch.Generator(device="cpu").manual_seed(
                            ((tc.seed * 1_000_003 + step) * 64 + micro) * 1024 + dist.rank)
                        frames = augment_frames(frames, gen)
                    sync = micro == tc.grad_accum - 1 or dist.world == 1
                    with (contextlib.nullcontext() if sync else net.no_sync()), autocast:
                        loss, stats = forward(batch, frames, loss_cfg)
                        (loss / tc.grad_accum).backward()
                    loss_sum += float(loss.detach()) / tc.grad_accum
                    aux_sum += float(stats.get("aux", 0.0)) / tc.grad_accum
                    change_sum += float(stats.get("change", 0.0)) / tc.grad_accum
                    nll_sum = [a + float(b) / tc.grad_accum for a, b in zip(nll_sum, stats["nll"])]
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                data_position = (batches.epoch, batches.position)
                if not dist.main:
                    continue
                record = {"kind": "train", "step": step, "loss": loss_sum, "lr": lr, "grad_norm": float(grad_norm),
                          **{f"nll/{g.name}": v for g, v in zip(schema.groups, nll_sum)}}
                if aux_on:
                    record["aux"] = aux_sum
                if change_on:
                    record["change"] = change_sum
                if step % tc.log_every == 0 or step == stop:
                    now = time.perf_counter()
                    record["steps_per_s"] = (step - s_last) / max(1e-9, now - t_last)
                    record["samples_per_s"] = record["steps_per_s"] * tc.batch_size * tc.grad_accum * dist.world
                    t_last, s_last = now, step
                    append_metrics(run, record)
                if step % tc.eval_every == 0 or step == stop:
                    last_val = evaluate(model, tc, sequence, device, aux_on)
                    if last_val:
                        append_metrics(run, {"kind": "val", "step": step, **last_val})
                    draw_loss_png(run)
                if step % tc.save_every == 0 or step == stop:
                    save(step, data_position)
                    saved_step = step
                if on_step:
                    on_step(step, stop, record)
        except BaseException:
            if not signals.requested:
                raise
            # a data-loader worker that died of the same Ctrl-C is part of the stop
        if signals.requested:
            if step > saved_step:
                save(step, data_position)
            raise KeyboardInterrupt

    # ---- the end
    ranks_agree = None
    if dist.world > 1:  # every rank must hold the same weights after the same all-reduced updates
        import torch.distributed as tdist

        mine = torch.stack([torch.stack([p.detach().double().sum(), p.detach().double().abs().sum()])
                            for p in model.parameters()]).to(device)
        gathered = [torch.zeros_like(mine) for _ in range(dist.world)]
        tdist.all_gather(gathered, mine)
        ranks_agree = all(torch.equal(gathered[0], g) for g in gathered[1:])
        tdist.barrier()
        tdist.destroy_process_group()
    return {"run": str(run), "step": step, "train_loss": record.get("loss"), "val": last_val,
            "parameters": count_parameters(model), "ranks_agree": ranks_agree,
            "checkpoint": str(run / (run / "last").read_text().strip())
            if dist.main and (run / "last").exists() else None}


@contextlib.contextmanager
def _discard_run_without_checkpoint(run: Path, tc: TrainConfig, main: bool, made_run_dir: bool):
    """An error before a new run's first checkpoint (a damaged row group found while training) removes
    what the run wrote, so no empty run folder is left to be mistaken for a run."""
    try:
        yield
    except UserError:
        if main and not tc.resume and not (run / "last").exists():
            for name in ("config.json", METRICS, "loss.png"):
                (run / name).unlink(missing_ok=True)
            if made_run_dir and run.is_dir() and not any(run.iterdir()):
                run.rmdir()
        raise


