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


@functools.lru_cache(maxsize=16)
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero entries of ``_weights`` as (K × n_out) input indices and weights."""
    w = _weights(n_in, n_out)
    k = int((w != 0).sum(axis=1).max())
    index = np.zeros((k, n_out), np.intp)
    weight = np.zeros((k, n_out), np.int64)
    for o in range(n_out):
        nz = np.flatnonzero(w[o])
        index[:len(nz), o], weight[:len(nz), o] = nz, w[o, nz]
        index[len(nz):, o] = nz[0]  # padding taps carry weight 0
    return index, weight


def preprocess_frame(screen: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """Emulator screen (H×W×3 uint8) -> model frame (size×size×3 uint8)."""
    if screen.dtype != np.uint8 or screen.ndim != 3 or screen.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 screen, got {screen.dtype} {screen.shape}")
    h, w = screen.shape[:2]
    # The box filter is banded (2-3 taps per output), so only the non-zero weights are
    # applied, in exact integer arithmetic: the same numbers as the dense product
    # weights_y @ screen @ weights_x.T, about 5x faster.
    iy, wy = _taps(h, size)
    ix, wx = _taps(w, size)
    wx32 = wx.astype(np.int32)
    cols = screen[:, ix[0], :].astype(np.int32)                 # H × size × 3, scaled 2**16 (< 2**24)
    cols *= wx32[0][None, :, None]
    for k in range(1, len(ix)):
        tap = screen[:, ix[k], :].astype(np.int32)
        tap *= wx32[k][None, :, None]
        cols += tap
    out = cols[iy[0]].astype(np.int64)                          # size × size × 3, scaled 2**32
    out *= wy[0][:, None, None]
    for k in range(1, len(iy)):
        tap = cols[iy[k]].astype(np.int64)
        tap *= wy[k][:, None, None]
        out += tap
    out += 1 << (2 * _SHIFT - 1)
    out >>= 2 * _SHIFT
    return out.astype(np.uint8)                                 # rows sum to 1, so 0 <= out <= 255
