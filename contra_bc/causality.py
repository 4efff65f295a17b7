"""`contra-bc causality-score`: how much a policy's action distribution depends on what it sees.

The score (P2P paper §5.2)
--------------------------
For each batch of validation windows (frames, actions) of length T:

1. Cut every window into C equal chunks of L = T // C steps (the last T - C*L steps are
   dropped). Each chunk is fed to the model as its own sequence.
2. Perturb: every image frame is, with probability p, replaced by a frame of a *different
   scene of the same game*, drawn from the same batch: a position of another episode, or of
   the same episode at least ``min_distance`` steps away. Only valid (non-padding) positions
   are replaced and used as donors (default ``min_distance``: one window length, so a donor
   never comes from the overlapping stretch of play). Actions, text and masks are unchanged.
3. Score the chunk at ONE position: its last valid step (the step with the largest index
   inside the chunk whose ``valid`` flag is set; a chunk with no valid step is skipped).
   There the model's teacher-forced action distribution is compared between the original and
   the perturbed input: the sum over action token groups g of KL(P_g(original) || P_g(perturbed)).
4. The score is that KL summed over the windows of all batches and over chunks.

With p = 0 no frame changes and the score is exactly 0. A model that ignores its frames
(it copies its past actions) also scores ~0; one that reads the screen scores higher.
``--repeats R`` repeats the whole measurement with seeds seed..seed+R-1 (different windows
and perturbations) and reports the mean and standard deviation over repeats.

The toy problem (paper §5.1.1)
------------------------------
``toy_experiment`` trains a linear policy and ReLU MLPs of depth 1-4 by SGD (batch 1, fixed
learning rate) on optimal braking demonstrations and tracks
c = log p(brake | obstacle, no light) - log p(brake | no obstacle, light) during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contra_bc.config import CausalityConfig
from contra_bc.errors import UserError
from contra_bc.options import check

# ---------------------------------------------------------------- toy problem (§5.1.1)


@dataclass
class ToyConfig:
    """The toy braking world and its training run.

    The obstacle is a two-state Markov chain: it appears with probability ``p_appear`` on a
    clear step and stays with probability ``p_stay`` (mean length 1 / (1 - p_stay) steps).
    The demonstrator is optimal: it brakes exactly when an obstacle is present. The brake light
    is the demonstrator's previous action, so it equals the previous step's obstacle bit: it
    agrees with the correct action on every step except the first and the first-after-last step
    of each obstacle. Three distractor features are standard normal noise.
    """

    p_appear: float = 0.1
    p_stay: float = 0.9
    noise_features: int = 3
    steps: int = 4000
    lr: float = 0.02
    width: int = 16
    depths: tuple = (0, 1, 2, 3, 4)  # 0 = linear policy
    evals: int = 40
    seed: int = 0


def toy_demonstrations(n: int, cfg: ToyConfig, rng: np.random.Generator):
    """n consecutive steps: features [obstacle, brake_light, noise...] and the optimal action."""
    obstacle = np.zeros(n, np.float32)
    present = False
    for t in range(n):
        present = rng.random() < (cfg.p_stay if present else cfg.p_appear)
        obstacle[t] = present
    light = np.concatenate([[0.0], obstacle[:-1]]).astype(np.float32)  # previous action
    noise = rng.standard_normal((n, cfg.noise_features)).astype(np.float32)
    x = np.concatenate([obstacle[:, None], light[:, None], noise], axis=1)
    return x, obstacle.copy()


def toy_policy(depth: int, n_in: int, width: int):
    """depth 0: linear with bias; depth d: d hidden ReLU layers. Outputs the logit of p(brake)."""
    import torch

    if depth == 0:
        return torch.nn.Linear(n_in, 1)
    layers, d = [], n_in
    for _ in range(depth):
        layers += [torch.nn.Linear(d, width), torch.nn.ReLU()]
        d = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(d, 1))


def toy_experiment(cfg: ToyConfig) -> dict:
    """Train each depth on the same demonstrations; returns c over training for each."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(cfg.seed)
    x, y = toy_demonstrations(cfg.steps, cfg, rng)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    n_in = x.shape[1]
    s_obstacle = torch.zeros(1, n_in)
    s_obstacle[0, 0] = 1.0
    s_light = torch.zeros(1, n_in)
    s_light[0, 1] = 1.0
    every = max(1, cfg.steps // cfg.evals)
    curves = {}
    for depth in cfg.depths:
        torch.manual_seed(cfg.seed * 100 + depth)
        policy = toy_policy(depth, n_in, cfg.width)
        opt = torch.optim.SGD(policy.parameters(), lr=cfg.lr)

        def c_now():
            with torch.no_grad():
                return float(F.logsigmoid(policy(s_obstacle)) - F.logsigmoid(policy(s_light)))

        points = [(0, c_now())]
        for t in range(cfg.steps):
            loss = F.binary_cross_entropy_with_logits(policy(x[t:t + 1])[:, 0], y[t:t + 1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (t + 1) % every == 0 or t + 1 == cfg.steps:
                points.append((t + 1, c_now()))
        curves[toy_name(depth)] = points
    light_agrees = float((x[:, 1] == y).float().mean())
    return {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
            "light_agrees_with_action": round(light_agrees, 4),
            "curves": curves,
            "final_c": {name: round(pts[-1][1], 4) for name, pts in curves.items()}}


def toy_name(depth: int) -> str:
    return "linear" if depth == 0 else f"mlp-{depth}"


def draw_toy(result: dict, path: Path) -> Path:
    from contra_bc.charts import line_charts

    cfg = result["config"]
    return line_charts(
        [{"series": result["curves"], "title": "c = log p(brake|obstacle, no light) - log p(brake|no obstacle, light)",
          "xlabel": "SGD steps (batch 1)", "ylabel": "c"}],
        path, title=f"toy causality (P2P sec. 5.1.1): lr {cfg['lr']}, width {cfg['width']}, seed {cfg['seed']}")


# ---------------------------------------------------------------- the score (§5.2)




def check_config(cfg: CausalityConfig) -> None:
    """UserError for a setting out of its declared range (the CLI checks the same before it calls)."""
    check(cfg)


def scored_positions(valid: np.ndarray, chunks: int) -> list[tuple[int, int, int]]:
    """(window b, chunk c, step t) scored: the last valid step of each chunk of L = T // C steps."""
    b_count, t_count = valid.shape
    length = t_count // chunks
    out = []
    for b in range(b_count):
        for c in range(chunks):
            idx = np.flatnonzero(valid[b, c * length:(c + 1) * length])
            if len(idx):
                out.append((b, c, c * length + int(idx[-1])))
    return out


def perturb_frames(frames: np.ndarray, valid: np.ndarray, episode: np.ndarray, start: np.ndarray,
                   p: float, min_distance: int, rng: np.random.Generator):
    """Replace each valid frame with probability p by a frame of another scene of the batch.

    A donor is a valid position of another episode, or of the same episode at least
    ``min_distance`` steps away. The random draws do not depend on p (one uniform number and
    one donor per position, drawn first), so for one seed the frames swapped at a smaller p
    are a subset of those swapped at a larger p, with the same donors: a sweep over p is paired.
    Returns (perturbed copy, bool mask of replaced positions).
    """
    out = frames.copy()
    replaced = np.zeros(valid.shape, bool)
    uniform = rng.random(valid.shape)
    donors_b, donors_t = np.nonzero(valid)
    donor_ep = episode[donors_b]
    donor_pos = start[donors_b] + donors_t
    picks = rng.random(valid.shape)
    for b, t in zip(*np.nonzero(valid)):
        if not uniform[b, t] < p:
            continue
        ok = (donor_ep != episode[b]) | (np.abs(donor_pos - (start[b] + t)) >= min_distance)
        candidates = np.flatnonzero(ok)
        if len(candidates) == 0:
            continue  # nothing far enough in this batch: the frame stays
        k = candidates[min(int(picks[b, t] * len(candidates)), len(candidates) - 1)]
        out[b, t] = frames[donors_b[k], donors_t[k]]
        replaced[b, t] = True
    return out, replaced


def chunk_batch(batch: dict, chunks: int) -> dict:
    """[B, T, ...] tensors -> [B*C, L, ...]: each chunk becomes its own sequence."""
    import torch

    t_count = batch["actions"].shape[1]
    length = t_count // chunks
    if length < 1:
        raise UserError(f"--chunks {chunks} is more than the {t_count} steps of a window; use fewer chunks.")
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[1] == t_count:
            v = value[:, :chunks * length]
            out[key] = v.reshape(v.shape[0] * chunks, length, *v.shape[2:]).contiguous()
        elif isinstance(value, torch.Tensor) and value.dim() == 1:
            out[key] = value.repeat_interleave(chunks)
        else:
            out[key] = value
    return out


def group_logprobs(model, batch: dict, frames=None) -> list:
    """Teacher-forced log-probabilities per action token group, in float64.

    From the logits: KL between two close distributions is a small
    difference of large terms, and float32 log-probabilities lose it to rounding.
    """
    import torch

    return [torch.log_softmax(lg.double(), dim=-1) for lg in model.action_logits(batch, frames=frames)]


def kl_at(logps_a: list, logps_b: list, rows, cols):
    """Sum over action token groups of KL(a || b) at the given (row, col) positions; [N] tensor."""
    import torch

    total = None
    for la, lb in zip(logps_a, logps_b):
        la = la[rows, cols].double()
        lb = lb[rows, cols].double()
        kl = (la.exp() * (la - lb)).sum(-1)
        total = kl if total is None else total + kl
    return total.clamp_min(0.0) if total is not None else torch.zeros(len(rows), dtype=torch.float64)


def score_batch(model, batch: dict, cfg: CausalityConfig, rng: np.random.Generator) -> dict:
    """The causality score of one batch: KL summed over windows and chunks, and its parts."""
    import torch

    frames = batch["frames"].numpy()
    valid = batch["valid"].numpy().astype(bool)
    episode = batch["episode"].numpy()
    start = batch["start"].numpy()
    min_distance = cfg.min_distance or frames.shape[1]
    perturbed, replaced = perturb_frames(frames, valid, episode, start, cfg.p, min_distance, rng)
    chunked = chunk_batch(batch, cfg.chunks)
    length = batch["actions"].shape[1] // cfg.chunks
    positions = scored_positions(valid, cfg.chunks)
    if not positions:
        return {"score": 0.0, "chunks_scored": 0, "frames_replaced": int(replaced.sum()), "positions": []}
    rows = torch.tensor([b * cfg.chunks + c for b, c, _ in positions])
    cols = torch.tensor([t - c * length for _, c, t in positions])
    other = torch.from_numpy(perturbed[:, :cfg.chunks * length]).reshape(chunked["frames"].shape)
    with torch.no_grad():
        original = group_logprobs(model, chunked)
        changed = group_logprobs(model, chunked, frames=other)
    kl = kl_at(original, changed, rows, cols)
    return {"score": float(kl.sum()), "chunks_scored": len(positions), "frames_replaced": int(replaced.sum()),
            "positions": [(int(b), int(c), int(t)) for b, c, t in positions], "kl": kl.tolist()}


def _load_policy(checkpoint):
    from contra_bc.model.policy import load_policy

    return load_policy(checkpoint, device="cpu")


def open_dataset(dataset: Path, split: str):
    """The dataset reader, after checking the path and the split."""
    from contra_bc.dataset.loader import DatasetReader

    dataset = Path(dataset)
    if not dataset.exists():
        raise UserError(f"Dataset {dataset} does not exist. Build one with "
                        f"`contra-bc build-dataset RECORDINGS --out {dataset}`.")
    reader = DatasetReader(dataset)
    splits = sorted({e.get("split") for e in reader.episodes})
    if split not in splits:
        raise UserError(f"Dataset {dataset} has no episodes in split {split!r}; its splits: "
                        f"{', '.join(map(str, splits)) or 'none'}. Choose one with --split.")
    return reader


def dataset_game(reader) -> str | None:
    info = reader.info or {}
    return info.get("game") or (info.get("games") or [None])[0]


def check_game(policy, reader, checkpoint, dataset) -> None:
    game = dataset_game(reader)
    if game is not None and policy.game != game:
        raise UserError(f"The checkpoint {checkpoint} was trained on {policy.game}, but the dataset {dataset} "
                        f"holds {game}: the score compares frames of one game. Use a dataset of "
                        f"{policy.game} recordings (or a checkpoint trained on {game}).")
    info = reader.info
    if list(info["buttons"]) != list(policy.buttons):
        raise UserError(f"The checkpoint {checkpoint} acts on buttons {policy.buttons}, but {dataset} records "
                        f"{info['buttons']}: its actions would be read as other buttons. Use a dataset of the "
                        f"checkpoint's platform.")
    if list(info["frame_size"]) != [policy.frame_size, policy.frame_size]:
        raise UserError(f"The checkpoint {checkpoint} sees {policy.frame_size}x{policy.frame_size} frames, but "
                        f"{dataset} holds {info['frame_size'][0]}x{info['frame_size'][1]}. Rebuild the dataset "
                        f"with `contra-bc build-dataset ... --frame-size {policy.frame_size}`.")


def iterate_batches(dataset: Path, cfg: CausalityConfig, window: int, seed: int):
    """cfg.batches batches of cfg.batch windows of ``window`` steps from cfg.split, in seeded order."""
    from contra_bc.dataset.loader import make_loader

    loader = make_loader(dataset, split=cfg.split, window=window, batch_size=cfg.batch, shuffle=True,
                         seed=seed, workers=0, drop_last=False)
    for i, batch in enumerate(loader):
        if i >= cfg.batches:
            break
        yield batch


def score_policy(policy, dataset: Path, cfg: CausalityConfig) -> dict:
    """The score of a loaded policy, repeated over cfg.repeats seeds."""
    import torch

    window = cfg.window or policy.history * cfg.chunks
    repeats = []
    policy.model.eval()
    for r in range(cfg.repeats):
        seed = cfg.seed + r
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        total, scored, replaced, valid = 0.0, 0, 0, 0
        for batch in iterate_batches(dataset, cfg, window, seed):
            part = score_batch(policy.model, batch, cfg, rng)
            total += part["score"]
            scored += part["chunks_scored"]
            replaced += part["frames_replaced"]
            valid += int(batch["valid"].sum())
        repeats.append({"seed": seed, "score": total, "chunks_scored": scored, "frames_replaced": replaced,
                        "frames_valid": valid})
    scores = np.array([r["score"] for r in repeats])
    scored = sum(r["chunks_scored"] for r in repeats)
    return {
        "score": float(scores.mean()),
        "spread": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
        "mean_per_chunk": float(sum(r["score"] for r in repeats) / scored) if scored else 0.0,
        "chunks_scored": scored // max(1, len(repeats)),
        "replaced_fraction": (sum(r["frames_replaced"] for r in repeats)
                              / max(1, sum(r["frames_valid"] for r in repeats))),
        "window": window,
        "chunk_length": window // cfg.chunks,
        "scored_position": "the last valid step of each chunk",
        "repeats": repeats,
    }


def causality_score(checkpoint: Path, dataset: Path, cfg: CausalityConfig) -> dict:
    """`contra-bc causality-score CHECKPOINT DATASET`."""
    check_config(cfg)
    reader = open_dataset(dataset, cfg.split)
    policy = _load_policy(checkpoint)
    check_game(policy, reader, checkpoint, dataset)
    policy.set_dataset_texts(reader.texts)  # the dataset's text_index values index its own texts
    result = score_policy(policy, dataset, cfg)
    result.update(checkpoint=str(checkpoint), dataset=str(dataset), game=policy.game, p=cfg.p, chunks=cfg.chunks,
                  split=cfg.split, config={k: v for k, v in cfg.__dict__.items()})
    return result


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, dir) of every checkpoint of a RUN dir (RUN/checkpoints/step-NNNNNN), oldest first."""
    run = Path(run)
    base = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    found = []
    for d in sorted(base.glob("step-*")):
        if d.is_dir() and (d / "model.safetensors").is_file():
            try:
                found.append((int(d.name.split("-", 1)[1]), d))
            except ValueError:
                continue
    if not found:
        raise UserError(f"{run} holds no checkpoints (expected {base}/step-NNNNNN/model.safetensors). "
                        f"Give the RUN dir written by `contra-bc train --out RUN`.")
    return sorted(found)


def validation_losses(run: Path) -> list[tuple[int, float]]:
    """(step, validation loss) from RUN/metrics.jsonl lines that carry one."""
    from contra_bc.formats.checkpoint import read_metrics

    return [(int(r["step"]), float(r["loss"])) for r in read_metrics(run, "val")
            if r.get("loss") is not None and "step" in r]


def trace_over(run: Path, dataset: Path, cfg: CausalityConfig, png: Path, on_checkpoint=None) -> dict:
    """The score of every checkpoint of a run (same windows and perturbations), drawn beside val loss."""
    from contra_bc.charts import line_charts

    check_config(cfg)
    reader = open_dataset(dataset, cfg.split)
    points = []
    losses = dict(validation_losses(run))
    for step, ckpt in list_checkpoints(run):
        policy = _load_policy(ckpt)
        check_game(policy, reader, ckpt, dataset)
        policy.set_dataset_texts(reader.texts)
        r = score_policy(policy, dataset, cfg)
        points.append({"checkpoint": str(ckpt), "step": step, "score": r["score"],
                       "spread": r["spread"], "mean_per_chunk": r["mean_per_chunk"],
                       "val_loss": losses.get(step)})
        if on_checkpoint:
            on_checkpoint(points[-1])
    loss_curve = sorted(validation_losses(run))
    line_charts([
        {"series": {"causality score": [(p["step"], p["score"]) for p in points]},
         "title": f"causality score (p={cfg.p}, C={cfg.chunks}, {cfg.repeats} repeat(s))",
         "xlabel": "training step", "ylabel": "score"},
        {"series": {"validation loss": loss_curve}, "title": "validation loss (RUN/metrics.jsonl)",
         "xlabel": "training step", "ylabel": "loss (log scale)", "log_y": True},
    ], png, title=f"{Path(run).name}: causality over training")
    return {"run": str(run), "dataset": str(dataset), "png": str(png), "points": points,
            "config": {k: v for k, v in cfg.__dict__.items()}}


def toy_rows(result: dict) -> list[dict]:
    """The table of `toy_experiment`: c at the start and end of training, per policy."""
    return [{"policy": name, "c at start": f"{pts[0][1]:.3f}", "c at end": f"{pts[-1][1]:.3f}"}
            for name, pts in result["curves"].items()]


def over_rows(result: dict) -> list[dict]:
    """The table of `trace_over`: one row per checkpoint."""
    return [{"checkpoint": r["checkpoint"], "step": r["step"], "score": f"{r['score']:.6g}",
             "spread": f"{r['spread']:.2g}",
             "val loss": "-" if r.get("val_loss") is None else f"{r['val_loss']:.4f}"} for r in result["points"]]


def score_rows(result: dict) -> list[dict]:
    """The table of `causality_score`: one row."""
    return [{"score": f"{result['score']:.6g}", "spread (std over repeats)": f"{result['spread']:.3g}",
             "mean per chunk": f"{result['mean_per_chunk']:.6g}", "chunks scored": result["chunks_scored"],
             "frames replaced": f"{result['replaced_fraction']:.3f}", "repeats": len(result["repeats"])}]


def too_few_swaps(result: dict, p: float) -> str | None:
    """A warning when far fewer frames were swapped than p asks (the score then understates reliance)."""
    if p > 0 and result["replaced_fraction"] < 0.5 * p:
        return (f"only {result['replaced_fraction']:.1%} of frames could be swapped (p={p}): "
                "the batches hold too few other scenes. Use a larger --batch, a split with more episodes, "
                "or a smaller --min-distance.")
    return None
