"""The Pixels2Play-style policy: a decoder-only transformer over timesteps of tokens.

Read top to bottom: config and presets, the token layout of one timestep, the
attention mask, the transformer pieces, the action decoder, then the policy
model with its training forward pass and its cached (incremental) forward pass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from contra_bc.model.actions import ActionSchema
from contra_bc.model.efficientnet import ImageTokenizer


# ----------------------------------------------------------------------------- config
@dataclass
class ModelConfig:
    preset: str = "tiny"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    mlp_ratio: float = 4.0
    history: int = 8                  # steps a token looks back (sliding window); also the training window
    image_tokens: int = 1             # N image tokens per frame (paper: 1..4)
    frame_size: int = 192
    cnn_width: float = 0.25           # EfficientNet width multiplier (1.0 = B0)
    cnn_depth: float = 0.34           # EfficientNet depth multiplier on block repeats (1.0 = B0)
    cnn_token_channels: int = 8       # channels of the last feature map fed to the token projection
    cnn_input_pool: int = 4           # k: the stem sees the frame at 1/k its size (1 = the paper's full 192×192)
    cnn_input: str = "pool"           # how k×k pixels become one: "unshuffle" folds them into channels (every pixel
                                      # reaches the stem), "pool" averages them (checkpoints made before cnn_input)
    image_norm: str = "group"         # per-frame GroupNorm; "batch" only for checkpoints made before it
    text_dim: int = 384               # sentence-encoder embedding size
    dec_d_model: int = 64             # action decoder width
    dec_layers: int = 1
    dec_heads: int = 2
    rope_base: float = 10000.0
    lr: float = 1e-4                  # the preset's learning rate (paper D.2)
    aux_outputs: int = 0              # game variables a linear head reads off each frame's image features (training
                                      # only: an auxiliary loss that makes the encoder see them; 0 = none)
    change_horizon: int = 0           # H > 0: a linear head reads, off each step's a_in output, in how many steps
    change_groups: list | None = None  # (0..H-1, or H for later) each of these action groups next changes (training only)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        # configs written before these keys existed used BatchNorm and averaged pixels
        d = {"image_norm": "batch", "cnn_input": "pool", **d}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS = {
    # tests: trains in about a minute on one CPU core
    "tiny": ModelConfig(lr=1e-3),
    # the demo: one decision < 50 ms on a CPU core with the KV cache
    "small": ModelConfig(preset="small", d_model=192, n_layers=4, n_heads=4, history=32, cnn_width=0.25,
                         cnn_depth=0.34, cnn_token_channels=16, cnn_input_pool=2, dec_d_model=128, dec_layers=1, dec_heads=4, lr=3e-4),
    # paper table D.2: layers / width / 16 heads, history 200, 1 image token, full EfficientNet-B0 stages
    "150M": ModelConfig(preset="150M", d_model=1024, n_layers=10, n_heads=16, history=200, cnn_width=1.0,
                        cnn_depth=1.0, cnn_token_channels=32, cnn_input_pool=1, dec_d_model=512, dec_layers=2, dec_heads=8, lr=1e-4),
    "300M": ModelConfig(preset="300M", d_model=1024, n_layers=20, n_heads=16, history=200, cnn_width=1.0,
                        cnn_depth=1.0, cnn_token_channels=32, cnn_input_pool=1, dec_d_model=512, dec_layers=2, dec_heads=8, lr=1e-4),
    "600M": ModelConfig(preset="600M", d_model=2048, n_layers=9, n_heads=16, history=200, cnn_width=1.0,
                        cnn_depth=1.0, cnn_token_channels=32, cnn_input_pool=1, dec_d_model=512, dec_layers=2, dec_heads=8, lr=1e-4),
    "1.2B": ModelConfig(preset="1.2B", d_model=2048, n_layers=22, n_heads=16, history=200, cnn_width=1.0,
                        cnn_depth=1.0, cnn_token_channels=32, cnn_input_pool=1, dec_d_model=512, dec_layers=2, dec_heads=8, lr=3e-5),
}


@dataclass
class LossConfig:
    """What the training loss weighs (train's options; the defaults are plain behaviour cloning).
    See ``PolicyModel.loss`` for each term."""

    z_loss: float = 1e-4
    press_weight: float = 1.0
    aux_weight: float = 0.0
    press_slack: int = 0
    slack_groups: tuple = ()
    change_weight: float = 0.0
    history_dropout: float = 0.0


# ----------------------------------------------------------------------------- token layout
# One timestep is  [text, image × N, reasoning, a_in, action_1 .. action_G]
TEXT, IMAGE, REASON, A_IN, ACTION = 0, 1, 2, 3, 4


def step_layout(n_image: int, n_groups: int) -> list[int]:
    """The role of each token slot in one timestep."""
    return [TEXT] + [IMAGE] * n_image + [REASON, A_IN] + [ACTION] * n_groups


# ----------------------------------------------------------------------------- attention mask
def attention_allowed(q_step, q_role, k_step, k_role, window: int):
    """Boolean [Q, K]: may a query token attend to a key token?

    - causal over steps, and only within the last `window` steps (sliding window);
    - nobody attends to an a_in token except that a_in itself (a_in is a read-out);
    - within a step, text/image/reasoning are seen by every token of the step;
      the step's ground-truth action tokens are seen only by the action tokens,
      so a_in (and everything a_in reads) never sees the action it must predict.
    """
    return allowed(q_step[:, None], q_role[:, None], k_step[None, :], k_role[None, :], window)


def allowed(q_step, q_role, k_step, k_role, window: int):
    """The rule of ``attention_allowed``, elementwise on broadcastable tensors (FlexAttention's mask_mod
    calls it with one query and one key at a time)."""
    earlier = (k_step < q_step) & (q_step - k_step < window) & (k_role != A_IN)
    same = k_step == q_step
    observation = (k_role == TEXT) | (k_role == IMAGE) | (k_role == REASON)
    within = same & (observation | ((k_role == ACTION) & (q_role == ACTION)) | ((k_role == A_IN) & (q_role == A_IN)))
    return earlier | within


def block_mask(roles, steps: int, window: int, valid=None, heads: int = 1):
    """The P2P mask over ``steps`` timesteps as a FlexAttention BlockMask (the fused path on a GPU):
    the same rule as ``attention_allowed``; ``valid`` [B, steps] hides padded steps from every other step."""
    from torch.nn.attention.flex_attention import create_block_mask

    L = roles.shape[0]
    B = 1 if valid is None else valid.shape[0]

    def mask_mod(b, h, q, k):
        ok = allowed(q // L, roles[q % L], k // L, roles[k % L], window)
        if valid is None:
            return ok
        return ok & (valid[b, k // L] | (k // L == q // L))

    return create_block_mask(mask_mod, B, None, steps * L, steps * L, device=roles.device)


# ----------------------------------------------------------------------------- transformer pieces
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # computed in fp32 even under bf16 autocast (paper §4)
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def rope_tables(positions: torch.Tensor, head_dim: int, base: float):
    """cos/sin [Q, head_dim/2] for integer positions; angles in float64 so long episodes stay exact."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def apply_rope(x, cos, sin):
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)

    def forward(self, x, cos, sin, mask, past=None):
        B, Q, D = x.shape
        q, k, v = self.qkv(x).view(B, Q, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        k_all = k if past is None else torch.cat([past[0], k], dim=2)
        v_all = v if past is None else torch.cat([past[1], v], dim=2)
        if isinstance(mask, torch.Tensor) or mask is None:
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        else:  # a FlexAttention BlockMask: the fused kernel skips the blocks nobody attends to
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k_all, v_all, block_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, Q, D)), (k, v)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.attn = Attention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, dim, bias=False))

    def forward(self, x, cos, sin, mask, past=None):
        a, kv = self.attn(self.norm1(x), cos, sin, mask, past)
        x = x + a
        return x + self.mlp(self.norm2(x)), kv


# ----------------------------------------------------------------------------- action decoder
class ActionDecoder(nn.Module):
    """A small causal transformer: a_in output -> group 1 -> group 2 -> ... (autoregressive).

    Input sequence [a_in, g_1, .., g_{G-1}]; position j predicts group j+1's class.
    """

    def __init__(self, d_in, vocab: list[int], dim, layers, heads, rope_base):
        super().__init__()
        self.vocab, self.rope_base = list(vocab), rope_base
        self.register_buffer("offsets", torch.tensor([0] + list(vocab[:-1])).cumsum(0), persistent=False)
        self.inp = nn.Linear(d_in, dim)
        self.emb = nn.Embedding(sum(vocab), dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, v) for v in vocab)

    def _hidden(self, h, tokens, length):
        ctx = self.inp(h)[:, None]
        seq = [ctx]
        if length > 1:
            # every position also gets a_in's state directly, not only through attention to position 0
            seq.append(self.emb(tokens[:, : length - 1] + self.offsets[: length - 1]) + ctx)
        x = torch.cat(seq, dim=1)
        pos = torch.arange(length, device=x.device)
        cos, sin = rope_tables(pos, self.blocks[0].attn.head_dim, self.rope_base)
        mask = pos[:, None] >= pos[None, :]
        for blk in self.blocks:
            x, _ = blk(x, cos, sin, mask)
        return self.norm(x)

    def forward(self, h, tokens):
        """Teacher-forced: h [M, d_in], tokens [M, G] -> list of logits [M, V_g]."""
        x = self._hidden(h, tokens, len(self.vocab))
        return [head(x[:, g]) for g, head in enumerate(self.heads)]

    @torch.no_grad()
    def sample(self, h, temperature=1.0, generator=None):
        """h [M, d_in] -> tokens [M, G] and each group's probabilities (list of [M, V_g])."""
        tokens = torch.zeros(h.shape[0], len(self.vocab), dtype=torch.long, device=h.device)
        probs = []
        for g, head in enumerate(self.heads):
            logits = head(self._hidden(h, tokens, g + 1)[:, g]).float()
            p = F.softmax(logits / max(temperature, 1e-6), dim=-1) if temperature > 0 else F.softmax(logits, -1)
            tokens[:, g] = (torch.multinomial(p, 1, generator=generator)[:, 0] if temperature > 0
                            else logits.argmax(-1))
            probs.append(p)
        return tokens, probs


# ----------------------------------------------------------------------------- the policy model
class KVCache:
    """Keys/values of the non-a_in tokens of the last `history` steps, per layer.

    Entries live in preallocated buffers between `start` and `end`; old steps are dropped by
    moving `start`, new ones written at `end`, and the live part is moved to the front only
    when the buffer is full, so a decision copies O(new tokens), not the whole cache.
    """

    def __init__(self, n_layers, device="cpu"):
        self.k, self.v = [None] * n_layers, [None] * n_layers
        self.steps = torch.zeros(0, dtype=torch.long, device=device)
        self.roles = torch.zeros(0, dtype=torch.long, device=device)
        self.start = self.end = 0

    @property
    def step(self):
        return self.steps[self.start:self.end]

    @property
    def role(self):
        return self.roles[self.start:self.end]

    def past(self, layer):
        if self.k[layer] is None:
            return None
        return self.k[layer][:, :, self.start:self.end], self.v[layer][:, :, self.start:self.end]

    def drop_before(self, oldest_step):
        self.start += int((self.step < oldest_step).sum())  # entries are in step order

    def reserve(self, n):
        if self.end + n <= self.steps.shape[0]:
            return
        live = self.end - self.start
        cap = 2 * (live + n) + 16
        move = lambda buf, dim: torch.cat([buf.narrow(dim, self.start, live),
                                           buf.new_zeros(*buf.shape[:dim], cap - live, *buf.shape[dim + 1:])], dim)
        self.steps, self.roles = move(self.steps, 0), move(self.roles, 0)
        self.k = [None if b is None else move(b, 2) for b in self.k]
        self.v = [None if b is None else move(b, 2) for b in self.v]
        self.start, self.end = 0, live

    def write(self, layer, k, v):
        if self.k[layer] is None:
            shape = (*k.shape[:2], self.steps.shape[0], k.shape[3])
            self.k[layer], self.v[layer] = k.new_zeros(shape), v.new_zeros(shape)
        n = k.shape[2]
        self.k[layer][:, :, self.end:self.end + n] = k
        self.v[layer][:, :, self.end:self.end + n] = v

    def commit(self, steps, roles):
        n = steps.shape[0]
        self.steps[self.end:self.end + n], self.roles[self.end:self.end + n] = steps, roles
        self.end += n


class PolicyModel(nn.Module):
    # how a_in_states attends: "dense" (a boolean mask, SDPA) or "flex" (a FlexAttention block mask: train
    # sets it on CUDA). Not part of the checkpoint: both compute the same thing.
    attention = "dense"

    def __init__(self, cfg: ModelConfig, schema: ActionSchema):
        super().__init__()
        self.cfg, self.schema = cfg, schema
        vocab = schema.vocab
        self.layout = step_layout(cfg.image_tokens, len(vocab))
        d = cfg.d_model
        self.image = ImageTokenizer(d, cfg.image_tokens, cfg.frame_size, cfg.cnn_width, cfg.cnn_depth,
                                    cfg.cnn_token_channels, cfg.cnn_input_pool, cfg.image_norm, cfg.cnn_input)
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.null_text = nn.Parameter(torch.randn(d) * 0.02)
        self.reasoning = nn.Parameter(torch.randn(d) * 0.02)
        self.a_in = nn.Parameter(torch.randn(d) * 0.02)
        self.action_emb = nn.Embedding(sum(vocab), d)
        self.type_emb = nn.Embedding(5, d)
        self.register_buffer("action_offsets", torch.tensor([0] + vocab[:-1]).cumsum(0), persistent=False)
        self.register_buffer("roles", torch.tensor(self.layout), persistent=False)
        self.register_buffer("text_table", torch.zeros(0, cfg.text_dim), persistent=False)
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(d)
        self.decoder = ActionDecoder(d, vocab, cfg.dec_d_model, cfg.dec_layers, cfg.dec_heads, cfg.rope_base)
        if cfg.change_horizon and cfg.change_groups:
            # when will this button next go down (or up)? dense supervision on the token the decoder reads
            self.change_head = nn.Linear(d, len(cfg.change_groups) * (cfg.change_horizon + 1))
        if cfg.aux_outputs:
            # reads the encoder's last feature map, not the tokens: the encoder must see the variables,
            # while the token projection stays free to keep what the actions need
            self.aux_head = nn.Linear(self.image.proj.in_features, cfg.aux_outputs)
            # the targets' train-split mean and spread (set by train), so every variable weighs the same
            self.register_buffer("aux_mean", torch.zeros(cfg.aux_outputs))
            self.register_buffer("aux_std", torch.ones(cfg.aux_outputs))
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def set_text_table(self, embeddings: torch.Tensor):
        """Sentence embeddings [n_texts, text_dim] indexed by the dataset's text_index."""
        self.text_table = embeddings.to(self.null_text.device, torch.float32)

    # -- tokens of a timestep -------------------------------------------------
    def observation_tokens(self, frames, text_emb, has_text, image=None):
        """frames [M,H,W,3], text_emb [M,text_dim], has_text [M] -> [M, 1+N+2, d] (text, image×N, reasoning, a_in).
        ``image``: the frames' image tokens when the caller already has them."""
        te = self.type_emb.weight
        text = torch.where(has_text[:, None], self.text_proj(text_emb), self.null_text) + te[TEXT]
        img = (self.image(frames) if image is None else image) + te[IMAGE]
        M = frames.shape[0]
        reason = (self.reasoning + te[REASON]).expand(M, -1)
        a_in = (self.a_in + te[A_IN]).expand(M, -1)
        return torch.cat([text[:, None], img, reason[:, None], a_in[:, None]], dim=1)

    def action_tokens(self, tokens):
        """Ground-truth action classes [M, G] -> [M, G, d]."""
        return self.action_emb(tokens + self.action_offsets) + self.type_emb.weight[ACTION]

    def _text_inputs(self, text_index):
        has = text_index >= 0
        if self.text_table.shape[0] == 0:
            emb = torch.zeros(*text_index.shape, self.cfg.text_dim, device=text_index.device)
            return emb, torch.zeros_like(has)
        return self.text_table[text_index.clamp(min=0)], has

    def _rope(self, steps, slots):
        pos = steps * len(self.layout) + slots
        return rope_tables(pos, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base)

    # -- training / analysis: full forward over T steps -----------------------
    def a_in_states(self, batch, frames=None, image_out: list | None = None, history_dropout: float = 0.0):
        """Full teacher-forced backbone pass over T steps -> (a_in outputs [B, T, d], target classes [B, T, G]).

        The action tokens (the history later steps see) are the executed ``actions``; the targets are
        ``targets`` where the batch has them (the chosen actions: they differ on perturbed steps).
        ``image_out``: a list that receives the image encoder's feature maps [B*T, F] (for the auxiliary loss).
        ``history_dropout`` p (training): each step's action tokens are, with probability p, only their
        type (no action in them), so later steps must read what to do off the screen, not copy the last action."""
        frames = batch["frames"] if frames is None else frames
        B, T = frames.shape[:2]
        L, dev = len(self.layout), self.a_in.device
        text_emb, has_text = self._text_inputs(batch["text"].to(dev))
        history = self.schema.encode_tensor(batch["actions"].to(dev))                      # [B, T, G]
        targets = self.targets(batch)
        flat = frames.to(dev).flatten(0, 1)
        features = self.image.feature_map(flat)
        if image_out is not None:
            image_out.append(features)
        obs = self.observation_tokens(flat, text_emb.flatten(0, 1), has_text.flatten(), self.image.tokens(features))
        act = self.action_tokens(history.flatten(0, 1))
        if history_dropout > 0 and self.training:
            hidden = torch.rand(act.shape[0], device=dev) < history_dropout
            act = torch.where(hidden[:, None, None], self.type_emb.weight[ACTION].expand_as(act), act)
        x = torch.cat([obs, act], dim=1).view(B, T * L, -1)                                 # steps laid end to end
        steps = torch.arange(T, device=dev).repeat_interleave(L)
        roles = self.roles.repeat(T)
        cos, sin = self._rope(steps, torch.arange(L, device=dev).repeat(T))
        valid = batch.get("valid")
        if self.attention == "flex":  # fused on a GPU; the same mask (tests/test_model.py)
            mask = block_mask(self.roles, T, self.cfg.history, None if valid is None else valid.to(dev))
        else:
            key_ok = True
            if valid is not None:  # padded steps are invisible to every other step
                key_valid = valid.to(dev).repeat_interleave(L, dim=1)                           # [B, TL]
                key_ok = key_valid[:, None, None, :] | (steps[None, :] == steps[:, None])[None, None]
            mask = attention_allowed(steps, roles, steps, roles, self.cfg.history)[None, None] & key_ok
        for blk in self.blocks:
            x, _ = blk(x, cos, sin, mask)
        return self.norm(x).view(B, T, L, -1)[:, :, self.layout.index(A_IN)], targets

    def targets(self, batch):
        """The action classes [B, T, G] a batch teaches: ``targets`` (chosen actions) if given, else ``actions``."""
        return self.schema.encode_tensor(batch.get("targets", batch["actions"]).to(self.a_in.device))

    def action_logits(self, batch, frames=None, image_out: list | None = None, a_in_out: list | None = None,
                      history_dropout: float = 0.0):
        """Teacher-forced forward over a loader batch -> list over groups of logits [B, T, V_g].
        ``a_in_out``: a list that receives the a_in outputs [B, T, d] (for the change head)."""
        h, targets = self.a_in_states(batch, frames, image_out, history_dropout)
        if a_in_out is not None:
            a_in_out.append(h)
        B, T = targets.shape[:2]
        logits = self.decoder(h.flatten(0, 1), targets.flatten(0, 1))
        return [lg.view(B, T, -1) for lg in logits]

    def forward(self, batch, frames=None, cfg: LossConfig | None = None):
        """Training entry point (what DDP wraps): the loss and its per-group parts."""
        return self.loss(batch, frames, cfg)

    @torch.no_grad()
    def action_logprobs(self, batch, frames=None):
        """List over groups of log-probabilities [B, T, V_g] (each group given the true earlier groups)."""
        return [F.log_softmax(lg.float(), dim=-1) for lg in self.action_logits(batch, frames)]

    def loss(self, batch, frames=None, cfg: LossConfig | None = None, **terms):
        """Cross-entropy summed over groups, mean over steps where loss_mask & valid; plus z-loss.
        ``cfg`` (a LossConfig) weighs the terms below; keyword ``terms`` override its fields.

        ``change_weight`` > 0 (a model with a change head) adds that much of the change head's
        cross-entropy: at each step, in how many steps each rare button (``cfg.change_groups``) next
        changes state (goes down while up, up while down), 0..H-1 or H for "not within H steps",
        read off the a_in output the decoder reads. The action's own loss has a few examples of a
        jump start per run; this one asks at every step how near the next one is (a bullet closing
        in), and for how long a press lasts (a tap or a full jump). Reported as ``change``.

        ``aux_weight`` > 0 (a model with ``aux_outputs`` and a batch with ``aux``) adds that much of the
        mean squared error of the aux head, which reads the game variables (standardised) off each valid
        frame's image features: dense supervision that makes the encoder represent what the action hangs
        on (a bullet) even where the action itself is rare. Reported as ``aux`` (unweighted).

        ``press_weight`` > 1 weighs the steps where a group gets a button that was up the step
        before (a jump starts, a shot) that much more: the rare moments where the action follows
        the screen rather than the previous action. Releases keep weight 1 (weighing them too made
        jumps end early: measured in the README). The reported nll stays unweighted.

        ``press_slack`` = K > 0 leaves out of the loss, for each group in ``slack_groups`` (one-button
        groups of rarely pressed buttons, e.g. A), the K steps before each press where the button is
        still up: when within a few steps a demonstrator takes off is noise (any of them clears the
        hazard), so "not yet" there is no lesson, and learning it spreads the press's probability thin
        over the steps where pressing is right. A release stays in (two taps 3 steps apart leave the step
        after the first one in): otherwise a place with double taps never teaches letting go.
        The reported nll keeps every step.
        """
        cfg = dataclasses.replace(cfg or LossConfig(), **terms)
        z_loss, press_weight, aux_weight = cfg.z_loss, cfg.press_weight, cfg.aux_weight
        press_slack, slack_groups, change_weight = cfg.press_slack, cfg.slack_groups, cfg.change_weight
        use_aux = self.cfg.aux_outputs > 0 and batch.get("aux") is not None
        use_change = hasattr(self, "change_head")
        image: list = []
        a_in: list = []
        logits = self.action_logits(batch, frames, image if use_aux else None, a_in if use_change else None,
                                    cfg.history_dropout)
        dev = self.a_in.device
        keep = batch["loss_mask"].to(dev) & batch.get("valid", batch["loss_mask"]).to(dev)
        targets = self.targets(batch)
        n = keep.sum().clamp(min=1)
        total, per_group = 0.0, []
        for g, lg in enumerate(logits):
            lg = lg.float()
            ce = F.cross_entropy(lg.flatten(0, 1), targets[..., g].flatten(), reduction="none").view(keep.shape)
            z = torch.logsumexp(lg, dim=-1).pow(2)
            nll = (ce * keep).sum() / n
            slack = bool(press_slack) and g in slack_groups
            if slack or press_weight != 1.0:
                w = keep.float()
                if slack:
                    w = w * ~_before_press(targets[..., g], int(press_slack))
                if press_weight != 1.0:
                    pressed = torch.zeros_like(keep)  # classes are sub-bitmasks of the group's buttons
                    pressed[:, 1:] = (targets[:, 1:, g] & ~targets[:, :-1, g]) != 0
                    w = w * (1.0 + (press_weight - 1.0) * pressed)
                total = total + (ce * w).sum() / w.sum().clamp(min=1)
            else:
                total = total + nll
            total = total + z_loss * (z * keep).sum() / n
            per_group.append(nll.detach())
        stats = {"nll": per_group, "count": keep.sum(), "logits": [lg.detach() for lg in logits],
                 "targets": targets, "keep": keep}
        if use_aux:
            valid = batch.get("valid", keep).to(dev).flatten()
            pred = self.aux_head(image[0].float())                                              # [B*T, n]
            target = (batch["aux"].to(dev).flatten(0, 1).float() - self.aux_mean) / self.aux_std
            se = (pred - target).pow(2).mean(-1)
            aux = (se * valid).sum() / valid.sum().clamp(min=1)
            if aux_weight:
                total = total + aux_weight * aux
            stats["aux"] = aux.detach()
        if use_change:
            change = self.change_loss(a_in[0], targets, keep)
            if change_weight:
                total = total + change_weight * change
            stats["change"] = change.detach()
        return total, stats

    def change_loss(self, h, targets, keep):
        """Mean cross-entropy of the change head over the steps whose next change is known in the window."""
        H, groups = self.cfg.change_horizon, list(self.cfg.change_groups)
        B, T = targets.shape[:2]
        logits = self.change_head(h.float()).view(B, T, len(groups), H + 1)
        total, count = h.new_zeros(()), keep.new_zeros((), dtype=torch.long)
        for j, g in enumerate(groups):
            label, known = steps_to_change(targets[..., g], H)
            known = known & keep
            ce = F.cross_entropy(logits[:, :, j].flatten(0, 1), label.flatten(), reduction="none").view(B, T)
            total = total + (ce * known).sum()
            count = count + known.sum()
        return total / count.clamp(min=1)

    # -- inference: cached forward over new tokens ----------------------------
    @torch.no_grad()
    def extend(self, cache: KVCache, x, steps, roles, slots):
        """Run new tokens x [1, Q, d] (absolute `steps`, `roles`, `slots` [Q]) against the cache.

        Appends the new non-a_in keys/values and drops steps that fell out of every window.
        Returns the final hidden states [1, Q, d].
        """
        cache.drop_before(int(steps.min()) - self.cfg.history + 1)
        k_step, k_role = torch.cat([cache.step, steps]), torch.cat([cache.role, roles])
        cos, sin = self._rope(steps, slots)
        mask = attention_allowed(steps, roles, k_step, k_role, self.cfg.history)
        store = roles != A_IN  # nobody ever reads an a_in key: do not keep it
        cache.reserve(int(store.sum()))
        for i, blk in enumerate(self.blocks):
            x, (k, v) = blk(x, cos, sin, mask, cache.past(i))
            cache.write(i, k[:, :, store], v[:, :, store])
        cache.commit(steps[store], roles[store])
        return self.norm(x)


def steps_to_change(target, horizon: int):
    """(label, known) [B, T]: for each step t >= 1, the k in 0..horizon-1 of the first step t+k whose class
    differs from step t-1's (k = 0: it changes at t), or ``horizon`` if it stays for all of t..t+horizon-1;
    ``known`` is False at t = 0 and where the window ends before either is certain."""
    B, T = target.shape
    label = torch.full((B, T), horizon, dtype=torch.long, device=target.device)
    known = torch.zeros((B, T), dtype=torch.bool, device=target.device)
    for t in range(1, T):
        changed = target[:, t:t + horizon] != target[:, t - 1:t]                       # [B, <=H]
        first = torch.where(changed.any(1), changed.float().argmax(1), torch.full_like(label[:, t], horizon))
        label[:, t] = first
        known[:, t] = changed.any(1) | (changed.shape[1] == horizon)
    return label, known


def _before_press(target, k: int):
    """[B, T] bool: the up steps among the k steps before each step where ``target`` goes 0 -> not 0,
    but never a release (the first up step after a press): that lesson is not timing noise."""
    up = target == 0
    start = torch.zeros_like(up)
    start[:, 1:] = ~up[:, 1:] & up[:, :-1]
    near = torch.zeros_like(up)
    for d in range(1, k + 1):
        near[:, :-d] |= start[:, d:]
    released = torch.zeros_like(up)
    released[:, 1:] = up[:, 1:] & ~up[:, :-1]
    return near & up & ~released


def build_model(cfg: ModelConfig, schema: ActionSchema) -> PolicyModel:
    return PolicyModel(cfg, schema)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
