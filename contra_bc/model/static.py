"""A decision path built for a GPU: one fixed-shape step over a preallocated KV cache.

`Policy.act` (model/policy.py) runs the backbone over the new tokens against a cache that grows
and moves, builds its masks from host-side step counts and decodes one action group at a time:
on a GPU that is hundreds of small kernel launches and several host syncs per decision. Here
every decision has the same shapes and touches the same buffers, so it can be captured once as
a CUDA graph and replayed:

- The new tokens of a decision are always the previous step's G action tokens and this step's
  observation tokens (text, image x N, reasoning, a_in). At step 0 the action tokens exist too,
  marked as belonging to no step, so nothing attends to them.
- The cache is a ring of (history + 1) blocks, one per step, each holding that step's stored
  tokens (every token but a_in) at fixed offsets, plus one slot for the current a_in: step s
  lives in block s mod (history + 1). Keys are written in place (index_copy_) before attention;
  which slots a query may read comes from each slot's step and role, kept on the device, through
  the same `attention_allowed` rule as training. A step older than the window is simply out of
  range for every query, so nothing is ever dropped or moved.
- The step counter lives on the device; nothing in a decision reads a value back to the host.
- The action decoder runs its G positions at once, G times, filling one group per pass (a causal
  mask makes position g read only groups before it), and samples with Gumbel noise drawn before
  the step (argmax of logits / T + noise: the same distribution as sampling the softmax).

`StaticDecision` holds the buffers and runs one decision; on CUDA `CapturedDecision` records it
as a CUDA graph after a warm-up and replays it (no recompiles, no launches beyond one replay).
tests/test_model.py checks on CPU that this path gives today's `Policy.act` actions and
probabilities over an episode longer than the window.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from contra_bc.model.model import A_IN, ACTION, PolicyModel, apply_rope, attention_allowed

NO_STEP = -(1 << 40)  # the step of an empty slot: out of every window


class StaticDecision(nn.Module):
    """Fixed-shape decisions for one episode at a time, over ``model``'s weights (shared, not copied)."""

    def __init__(self, model: PolicyModel):
        super().__init__()
        self.model = model
        cfg = model.cfg
        dev = model.a_in.device
        layout = model.layout
        self.L = len(layout)
        self.G = len(model.schema.vocab)
        self.n_obs = layout.index(A_IN) + 1                  # text, image x N, reasoning, a_in
        self.stored_per_step = self.L - 1                     # every token but a_in
        self.window = cfg.history
        self.blocks = self.window + 1                         # the previous step's actions are computed a step late
        self.slots = self.blocks * self.stored_per_step + 1   # + the current a_in
        heads, head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        dtype = model.a_in.dtype
        shape = (cfg.n_layers, 1, heads, self.slots, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=dev), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=dev), persistent=False)
        self.register_buffer("slot_step", torch.full((self.slots,), NO_STEP, dtype=torch.long, device=dev),
                             persistent=False)
        roles = torch.tensor(layout[:self.n_obs - 1] + layout[self.n_obs:], device=dev)  # a step's stored roles
        self.register_buffer("slot_role", torch.cat([roles.repeat(self.blocks), torch.tensor([A_IN], device=dev)]),
                             persistent=False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long, device=dev), persistent=False)
        # the new tokens of a decision: step t-1's G action tokens, then step t's observation tokens
        self.register_buffer("new_role", torch.tensor([ACTION] * self.G + layout[:self.n_obs], device=dev),
                             persistent=False)
        self.register_buffer("new_slot", torch.tensor(list(range(self.n_obs, self.L)) + list(range(self.n_obs)),
                                                      device=dev), persistent=False)
        self.register_buffer("new_back", torch.tensor([1] * self.G + [0] * self.n_obs, device=dev),
                             persistent=False)  # how many steps before the current one each new token is
        # where each new token's key goes within its step's block (a_in: the extra slot at the end)
        offsets = list(range(self.n_obs - 1, self.stored_per_step)) + list(range(self.n_obs - 1)) + [-1]
        self.register_buffer("new_offset", torch.tensor(offsets, device=dev), persistent=False)
        inv = cfg.rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=dev) / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)
        dec = model.decoder
        self.register_buffer("dec_mask", torch.ones(self.G, self.G, dtype=torch.bool, device=dev).tril(),
                             persistent=False)
        dec_inv = dec.rope_base ** (-torch.arange(0, dec.blocks[0].attn.head_dim, 2, dtype=torch.float64,
                                                  device=dev) / dec.blocks[0].attn.head_dim)
        ang = torch.arange(self.G, dtype=torch.float64, device=dev)[:, None] * dec_inv[None]
        self.register_buffer("dec_cos", ang.cos().float(), persistent=False)
        self.register_buffer("dec_sin", ang.sin().float(), persistent=False)
        vmax = max(model.schema.vocab)
        # classes beyond a group's own count never win the argmax
        pad = torch.full((self.G, vmax), float("-inf"), device=dev)
        for g, n in enumerate(model.schema.vocab):
            pad[g, :n] = 0.0
        self.register_buffer("class_pad", pad, persistent=False)
        self.vmax = vmax

    def reset(self) -> None:
        """A new episode: every slot empty, step 0 (in place: a captured graph keeps its buffers)."""
        self.slot_step.fill_(NO_STEP)
        self.step.zero_()

    @torch.no_grad()
    def forward(self, frame, text, has_text, last_tokens, noise, inv_temperature):
        """One decision. frame uint8 [S,S,3]; text [text_dim]; has_text bool []; last_tokens long [G] (the
        previous step's executed action, any value at step 0); noise float [G, vmax] (Gumbel);
        inv_temperature float [] (0 = argmax). Returns (tokens long [G], probabilities [G, vmax])."""
        m = self.model
        dtype = m.a_in.dtype
        t = self.step
        # -- new tokens: previous actions, then this step's observation
        act = m.action_tokens(last_tokens[None])[0].to(dtype)                             # [G, d]
        obs = m.observation_tokens(frame[None], text[None].to(dtype), has_text[None])[0]  # [n_obs, d]
        x = torch.cat([act, obs.to(dtype)], dim=0)[None]                                  # [1, Q, d]
        # -- where they live: their steps (none for step -1), slots in the ring, positions for RoPE
        new_step = t - self.new_back
        new_step = torch.where(new_step < 0, torch.full_like(new_step, NO_STEP), new_step)
        block = torch.remainder(t - self.new_back, self.blocks)
        dest = torch.where(self.new_offset < 0, torch.full_like(block, self.slots - 1),
                           block * self.stored_per_step + self.new_offset)
        self.slot_step.index_copy_(0, dest, new_step)
        pos = (t - self.new_back) * self.L + self.new_slot
        ang = pos.to(torch.float64)[:, None] * self.inv_freq[None]
        cos, sin = ang.cos().float(), ang.sin().float()
        # nobody attends to an a_in of an earlier step: the one a_in slot always holds this step's
        mask = attention_allowed(new_step, self.new_role, self.slot_step, self.slot_role, self.window)
        for i, blk in enumerate(m.blocks):
            h = blk.norm1(x)
            att = blk.attn
            q, k, v = att.qkv(h).view(1, -1, 3, att.heads, att.head_dim).permute(2, 0, 3, 1, 4)
            q, k = apply_rope(att.q_norm(q), cos, sin), apply_rope(att.k_norm(k), cos, sin)
            self.k[i].index_copy_(2, dest, k)
            self.v[i].index_copy_(2, dest, v)
            y = F.scaled_dot_product_attention(q, self.k[i], self.v[i], attn_mask=mask)
            x = x + att.out(y.transpose(1, 2).reshape(1, -1, att.heads * att.head_dim))
            x = x + blk.mlp(blk.norm2(x))
        h = m.norm(x)[:, -1]                                                              # the a_in output [1, d]
        tokens, probs = self._decode(h, noise, inv_temperature)
        self.step.add_(1)
        return tokens, probs

    def _decode(self, h, noise, inv_temperature):
        """The action decoder, all G positions per pass, one group filled per pass."""
        dec = self.model.decoder
        ctx = dec.inp(h)[:, None]                                                         # [1, 1, D]
        tokens = torch.zeros(self.G, dtype=torch.long, device=h.device)
        probs = []
        for g, head in enumerate(dec.heads):
            emb = dec.emb(tokens[:-1] + dec.offsets[:-1])[None] + ctx                     # [1, G-1, D]
            x = torch.cat([ctx, emb], dim=1)
            for blk in dec.blocks:
                x, _ = blk(x, self.dec_cos, self.dec_sin, self.dec_mask)
            logits = head(dec.norm(x)[:, g]).float()[0]                                   # [V_g]
            p = F.softmax(torch.where(inv_temperature > 0, logits * inv_temperature, logits), dim=-1)
            n = logits.shape[0]
            # temperature T: argmax(logits / T + Gumbel noise) samples softmax(logits / T); T = 0: argmax
            score = torch.where(inv_temperature > 0, logits * inv_temperature + noise[g, :n], logits)
            tokens[g] = score.argmax()
            probs.append(F.pad(p, (0, self.vmax - n)))
        return tokens, torch.stack(probs)


class CapturedDecision:
    """A `StaticDecision` recorded as one CUDA graph: inputs are copied into fixed buffers, the graph is
    replayed, outputs read from fixed buffers. Warmed up on a side stream before capture."""

    def __init__(self, static: StaticDecision, warmup: int = 3):
        dev = static.step.device
        m = static.model
        S = m.cfg.frame_size
        self.static = static
        self.frame = torch.zeros(S, S, 3, dtype=torch.uint8, device=dev)
        self.text = torch.zeros(m.cfg.text_dim, device=dev)
        self.has_text = torch.zeros((), dtype=torch.bool, device=dev)
        self.last = torch.zeros(static.G, dtype=torch.long, device=dev)
        self.noise = torch.zeros(static.G, static.vmax, device=dev)
        self.inv_t = torch.zeros((), device=dev)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                static(self.frame, self.text, self.has_text, self.last, self.noise, self.inv_t)
        torch.cuda.current_stream().wait_stream(side)
        static.reset()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.tokens, self.probs = static(self.frame, self.text, self.has_text, self.last, self.noise, self.inv_t)
        static.reset()

    def __call__(self, frame, text, has_text, last, noise, inv_t):
        self.frame.copy_(frame, non_blocking=True)
        self.text.copy_(text)
        self.has_text.copy_(has_text)
        self.last.copy_(last)
        self.noise.copy_(noise)
        self.inv_t.copy_(inv_t)
        self.graph.replay()
        return self.tokens, self.probs


def gumbel(shape, generator, device) -> torch.Tensor:
    """Gumbel(0, 1) noise from ``generator`` (a CPU generator: the same draws on every device)."""
    u = torch.rand(shape, generator=generator).clamp_(1e-20, 1.0 - 1e-7)
    return (-torch.log(-torch.log(u))).to(device)
