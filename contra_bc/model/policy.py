"""A trained policy for play and analysis: load a checkpoint, act one frame at a time.

    policy = load_policy("runs/small")        # a RUN dir (follows RUN/last) or a checkpoint dir
    policy.reset(instruction="Destroy the turret")
    action, info = policy.act(frame)          # frame: uint8 [192,192,3] from preprocess_frame

Each act() is one forward pass of the backbone over the new tokens only (the
previous step's action tokens, then this step's text, image, reasoning and a_in
tokens) against a KV cache that keeps the last `history` steps, so the cost per
decision does not grow with the episode.

On a GPU a decision takes the static path (model/static.py): a preallocated ring cache written in
place, bf16 weights, the whole step captured once as a CUDA graph and replayed. On a CPU the
eager path below is faster for the small presets (no launch overhead to save) and stays the
default; ``Policy(..., static=True)`` runs the static one there too (the tests compare them).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from contra_bc.errors import UserError
from contra_bc.formats import checkpoint as ckfmt
from contra_bc.model.actions import ActionSchema
from contra_bc.model.model import A_IN, ACTION, KVCache, ModelConfig, PolicyModel


def load_model(path, device="cpu") -> tuple[PolicyModel, dict, Path]:
    """Checkpoint or RUN dir -> (model in eval mode, checkpoint config, checkpoint dir)."""
    ckpt = ckfmt.resolve_checkpoint(path)
    config = ckfmt.read_config(ckpt)  # its fields checked
    try:
        cfg = ModelConfig.from_dict(config["model"])
        schema = ActionSchema.from_json(config["action_schema"])
        if cfg.d_model % cfg.n_heads or cfg.dec_d_model % cfg.dec_heads:
            raise ValueError("the widths must be multiples of the head counts")
        model = PolicyModel(cfg, schema)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{ckpt}/config.json lacks a valid model or action_schema entry ({exc}); the checkpoint is "
                        "damaged. Use an earlier checkpoint or retrain.") from None
    state = ckfmt.read_tensors(ckpt, "model")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes in config.json and model.safetensors disagree
        first = str(exc).strip().splitlines()[1:2] or [str(exc)[:200]]
        raise UserError(f"{ckpt}/model.safetensors does not fit its config.json ({first[0].strip()}). The files "
                        f"come from different runs or were edited; use a checkpoint as written by "
                        f"`contra-bc train`.") from None
    if missing or unexpected:
        raise UserError(f"{ckpt}/model.safetensors does not match its config (missing {missing[:3]}, unexpected "
                        f"{unexpected[:3]}). The files come from different runs; use a checkpoint as written by "
                        "`contra-bc train`.")
    table = ckfmt.read_tensors(ckpt, "text_table").get("embeddings")
    if table is not None and table.shape[0]:
        model.set_text_table(table)
    return model.to(device).eval(), config, ckpt


class Policy:
    def __init__(self, model: PolicyModel, config: dict, device="cpu", static: bool | None = None,
                 capture: bool | None = None):
        self.model, self.config, self.device = model, config, torch.device(device)
        self.static = self.device.type == "cuda" if static is None else bool(static)
        self._decision = None
        if self.static:
            from contra_bc.model.static import CapturedDecision, StaticDecision

            self._static = StaticDecision(model)
            capture = self.device.type == "cuda" if capture is None else capture
            self._decision = CapturedDecision(self._static) if capture else self._static
        self.schema = model.schema
        self.buttons = list(self.schema.buttons)
        dataset = config.get("dataset", {})
        self.game = dataset.get("game")
        self.frame_size = model.cfg.frame_size
        self.history = model.cfg.history
        self._encoder_spec = config.get("text_encoder", {})
        self._encoder = None
        texts = config.get("texts", [])
        self._text_cache = {t: model.text_table[i] for i, t in enumerate(texts) if i < model.text_table.shape[0]}
        self.reset()

    # -- text ---------------------------------------------------------------
    def _embed(self, text):
        if text not in self._text_cache:
            if self._encoder is None:
                from contra_bc.model.text import encoder_by_id

                self._encoder = encoder_by_id(self._encoder_spec.get("id"), self._encoder_spec.get("dim", 384))
            self._text_cache[text] = self._encoder.encode([text])[0].to(self.device)
        return self._text_cache[text]

    def set_instruction(self, text=None):
        """Change the active instruction (None: the learned null text token)."""
        self.instruction = text if text else None
        self._text = self._embed(self.instruction) if self.instruction else None

    def set_dataset_texts(self, texts: list[str]):
        """Give action_logprobs() the text table of another dataset (its text_index values)."""
        self.model.set_text_table(torch.stack([self._embed(t) for t in texts]) if texts
                                  else torch.zeros(0, self.model.cfg.text_dim))

    # -- episode ------------------------------------------------------------
    def reset(self, instruction=None):
        """Start an episode: empty the KV cache, set the instruction."""
        self._cache = KVCache(self.model.cfg.n_layers, self.device)
        if self.static:
            self._static.reset()
        self._step = 0
        self._last_action = None
        self.set_instruction(instruction)

    def observe_action(self, action: int):
        """The action actually taken at the last step (a human took over): condition on it instead."""
        self._last_action = int(action)

    @torch.inference_mode()
    def act(self, frame: np.ndarray, temperature: float = 1.0, generator=None):
        """One decision: frame uint8 [S,S,3] -> (action bitmask, info)."""
        start = time.perf_counter()
        S = self.frame_size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (S, S, 3):
            raise ValueError(f"act() wants a uint8 [{S},{S},3] frame from preprocess_frame, got "
                             f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}")
        if self.static:
            return self._act_static(frame, temperature, generator, start)
        m, dev = self.model, self.device
        L, n_obs = len(m.layout), m.layout.index(A_IN) + 1
        xs, steps, roles, slots = [], [], [], []
        if self._last_action is not None:  # the previous step's action tokens, then this step's observation
            tokens = m.schema.encode_tensor(torch.tensor([self._last_action], device=dev))
            xs.append(m.action_tokens(tokens))
            G = tokens.shape[1]
            steps += [self._step - 1] * G
            roles += [ACTION] * G
            slots += list(range(n_obs, L))
        has = torch.tensor([self._text is not None], device=dev)
        text = (self._text if self._text is not None else torch.zeros(m.cfg.text_dim, device=dev))[None]
        xs.append(m.observation_tokens(torch.from_numpy(frame).to(dev)[None], text, has))
        steps += [self._step] * n_obs
        roles += m.layout[:n_obs]
        slots += list(range(n_obs))
        t = lambda v: torch.tensor(v, dtype=torch.long, device=dev)
        h = m.extend(self._cache, torch.cat(xs, dim=1), t(steps), t(roles), t(slots))
        tokens, probs = m.decoder.sample(h[:, -1], temperature, generator)
        action = m.schema.decode(tokens[0].tolist())
        self._last_action = action
        self._step += 1
        info = {"latency_ms": (time.perf_counter() - start) * 1000.0, "step": self._step - 1,
                "probs": {g.name: p[0].cpu().numpy() for g, p in zip(m.schema.groups, probs)}}
        return action, info


    def _act_static(self, frame, temperature, generator, start):
        """The static path (model/static.py): one fixed-shape step; the only host sync is reading the action."""
        from contra_bc.model.static import gumbel

        m, st, dev = self.model, self._static, self.device
        last = m.schema.encode_tensor(torch.tensor(self._last_action or 0, device=dev))
        noise = (gumbel((st.G, st.vmax), generator, dev) if temperature > 0
                 else torch.zeros(st.G, st.vmax, device=dev))
        text = self._text if self._text is not None else torch.zeros(m.cfg.text_dim, device=dev)
        tokens, probs = self._decision(torch.from_numpy(frame).to(dev), text,
                                       torch.tensor(self._text is not None, device=dev), last, noise,
                                       torch.tensor(1.0 / temperature if temperature > 0 else 0.0, device=dev))
        tokens, probs = tokens.tolist(), probs.float().cpu().numpy()
        action = m.schema.decode(tokens)
        self._last_action = action
        self._step += 1
        return action, {"latency_ms": (time.perf_counter() - start) * 1000.0, "step": self._step - 1,
                        "probs": {g.name: probs[i, :g.classes] for i, g in enumerate(m.schema.groups)}}


def load_policy(path, device="cpu", static: bool | None = None) -> Policy:
    """A checkpoint dir or RUN dir -> Policy. UserError if unreadable or of another format version.

    On CUDA the weights are cast to bf16 and decisions take the captured static path (model/static.py)."""
    model, config, _ = load_model(path, device)
    if torch.device(device).type == "cuda":
        model = model.to(torch.bfloat16)
    return Policy(model, config, device, static=static)
