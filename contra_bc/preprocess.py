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
import math
import threading

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


@functools.lru_cache(maxsize=16)
def _plan(h: int, w: int, size: int) -> tuple | None:
    """Matrices for the fast path, or None when the weights are not periodic (use the taps).

    With n_in/size = p/q in lowest terms, a box filter's weights repeat every q outputs and
    p inputs: the matrix is one q×p block repeated down its diagonal. That is checked on the
    fixed-point matrix itself (float rounding in ``_weights`` breaks it for some sizes).
    Returns (column block as float32, acting on whole interleaved RGB pixels; row block as
    float64, scaled by 2**-32 so the result lands in units of one output level).
    """
    blocks = []
    for n in (h, w):
        g = math.gcd(n, size)
        p, q = n // g, size // g
        weights = _weights(n, size)
        block = weights[:q, :p]
        if p > 16 or not np.array_equal(np.kron(np.eye(g, dtype=np.int64), block), weights):
            return None
        blocks.append(block)
    cols = np.kron(blocks[1].T, np.eye(3)).astype(np.float32)   # 3p' × 3q': p' pixels -> q' pixels
    rows = blocks[0].astype(np.float64) * 2.0 ** (-2 * _SHIFT)  # q × p; a power of two scales exactly
    return cols, rows


_scratch = threading.local()


def _work_arrays(h: int, w: int, size: int, cols: np.ndarray) -> tuple:
    """Per-thread scratch arrays for one frame shape, reused from frame to frame.

    The temporaries are ~0.5-1 MB each; allocating them afresh made glibc map and fault in
    new pages on every call, which cost more than the arithmetic.
    """
    cache = getattr(_scratch, "arrays", None)
    if cache is None or len(cache) > 4:
        cache = _scratch.arrays = {}
    key = (h, w, size)
    if key not in cache:
        blocks = h * w * 3 // cols.shape[0]
        cache[key] = (np.empty((h, w * 3), np.float32), np.empty((blocks, cols.shape[1]), np.float32),
                      np.empty((h, size * 3), np.float64), np.empty((size, size * 3), np.float64))
    return cache[key]


def preprocess_frame(screen: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """Emulator screen (H×W×3 uint8) -> model frame (size×size×3 uint8)."""
    if screen.dtype != np.uint8 or screen.ndim != 3 or screen.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 screen, got {screen.dtype} {screen.shape}")
    h, w = screen.shape[:2]
    plan = _plan(h, w, size)
    if plan is None:
        return _resize_taps(screen, size)
    cols, rows = plan
    # Both passes are small matrix products (BLAS) over blocks, and still exact: the column
    # pass sums at most 255 * 2**16 < 2**24 in float32, the row pass at most 255 * 2**32 < 2**53
    # in float64 (the power-of-two scale does not change that), every term is non-negative so
    # every partial sum is smaller, and so each number is an integer (or its exact 2**-32
    # multiple) whatever the summation order. The result equals the integer formula bit for bit.
    pixels, wide, wide64, out = _work_arrays(h, w, size, cols)
    pixels[...] = screen.reshape(h, w * 3)
    np.matmul(pixels.reshape(-1, cols.shape[0]), cols, out=wide)           # h·(w/p') × 3q'
    wide64[...] = wide.reshape(h, size * 3)
    q, p = rows.shape
    np.matmul(rows, wide64.reshape(h // p, p, size * 3), out=out.reshape(h // p, q, size * 3))
    out += 0.5                          # round half up; exact, since out < 2**8 has 32 fraction bits
    return out.astype(np.uint8).reshape(size, size, 3)   # the cast truncates: floor for values >= 0


def _resize_taps(screen: np.ndarray, size: int) -> np.ndarray:
    """The box filter applied through its non-zero taps (any size ratio)."""
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
