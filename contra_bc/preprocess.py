"""The one frame preprocessing function, shared by build-dataset and play.

The P2P paper traced a training–inference gap to two different resize
functions, so every model input frame in this project comes from
``preprocess_frame``: build-dataset stores its output, play calls it live, and a
test checks both give the same bytes for the same emulator screen.

The resize is an area-weighted (box) filter computed in integer arithmetic, so
its output is exact and does not depend on any image library's version.
"""

from __future__ import annotations

import functools

import numpy as np

MODEL_SIZE = 192
_SHIFT = 16


@functools.lru_cache(maxsize=16)
def _weights(n_in: int, n_out: int) -> np.ndarray:
    """Fixed-point box-filter matrix (n_out × n_in) whose rows sum to 2**_SHIFT."""
    w = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    for o in range(n_out):
        lo, hi = o * scale, (o + 1) * scale
        for i in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
            w[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    w /= w.sum(axis=1, keepdims=True)
    fixed = np.floor(w * (1 << _SHIFT)).astype(np.int64)
    # put the rounding remainder on each row's largest weight so rows sum exactly
    fixed[np.arange(n_out), w.argmax(axis=1)] += (1 << _SHIFT) - fixed.sum(axis=1)
    return fixed


def preprocess_frame(screen: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """Emulator screen (H×W×3 uint8) -> model frame (size×size×3 uint8)."""
    if screen.dtype != np.uint8 or screen.ndim != 3 or screen.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 screen, got {screen.dtype} {screen.shape}")
    h, w = screen.shape[:2]
    # float64 holds these integer products and sums exactly (< 2**53), and uses BLAS
    wy = _weights(h, size).astype(np.float64)
    wx = _weights(w, size).astype(np.float64)
    rows = wy @ screen.reshape(h, w * 3).astype(np.float64)               # size × (W·3), scaled 2**16
    rows = rows.reshape(size, w, 3).transpose(0, 2, 1)                    # size × 3 × W
    out = (rows @ wx.T).transpose(0, 2, 1).astype(np.int64)               # size × size × 3, scaled 2**32
    out = (out + (1 << (2 * _SHIFT - 1))) >> (2 * _SHIFT)
    return np.clip(out, 0, 255).astype(np.uint8)
