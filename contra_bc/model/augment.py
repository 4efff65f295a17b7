"""Training-time frame augmentation (paper §3.1): colour, noise, blur, small translation.

Frames stay on the device; each window of T frames shares one colour transform and
one shift (a recording's look does not flicker frame to frame), noise is per frame.
Everything is drawn from the caller's generator, so a step's augmentation is a
pure function of (seed, step) and resumed runs reproduce it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_frames(frames: torch.Tensor, gen: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """uint8 [B,T,H,W,3] -> float [B,T,H,W,3] in 0..255."""
    B, T, H, W, C = frames.shape
    dev = frames.device
    u = lambda *shape: torch.rand(*shape, generator=gen, device=gen.device).to(dev)
    x = frames.float()
    # colour: brightness, contrast, saturation and a per-channel tint are all affine in the
    # pixel, so they fold into one 3×3 matrix and offset per window (one pass over the pixels)
    bright, contrast, sat = 0.8 + 0.4 * u(B), 0.8 + 0.4 * u(B), 0.7 + 0.6 * u(B)
    tint = 0.95 + 0.1 * u(B, 3)
    mean = x.mean(dim=(1, 2, 3, 4)) * bright                       # window mean after brightness
    eye, avg = torch.eye(3, device=dev), torch.full((3, 3), 1 / 3, device=dev)
    saturate = sat[:, None, None] * eye + (1 - sat)[:, None, None] * avg   # (x - gray)·s + gray
    matrix = tint[:, :, None] * saturate * (bright * contrast)[:, None, None]
    # the contrast offset (1 - k)·mean passes through saturation unchanged (a grey vector) and is tinted
    offset = tint * ((1 - contrast) * mean)[:, None]
    x = torch.einsum("bthwc,bdc->bthwd", x, matrix) + offset[:, None, None, None, :]
    # sensor-like noise on half the windows
    noisy = torch.nonzero(u(B) < 0.5).flatten()
    if len(noisy):
        sigma = 4.0 * u(len(noisy))
        noise = torch.randn((len(noisy), T, H, W, C), generator=gen, device=gen.device).to(dev)
        x[noisy] += sigma[:, None, None, None, None] * noise
    # 3×3 gaussian blur on a third of the windows
    blurry = torch.nonzero(u(B) < 1 / 3).flatten()
    if len(blurry):
        k = torch.tensor([1.0, 2.0, 1.0], device=dev)
        k = (k[:, None] * k[None, :] / 16).expand(C, 1, 3, 3)
        sel = x[blurry].permute(0, 1, 4, 2, 3).reshape(-1, C, H, W)
        sel = F.conv2d(F.pad(sel, (1, 1, 1, 1), mode="replicate"), k, groups=C)
        x[blurry] = sel.view(len(blurry), T, C, H, W).permute(0, 1, 3, 4, 2)
    # translation by up to max_shift pixels, edges replicated
    if max_shift:
        shift = (u(B, 2) * (2 * max_shift + 1)).long() - max_shift
        out = torch.empty_like(x)
        for b in range(B):
            dy, dx = int(shift[b, 0]), int(shift[b, 1])
            rows = (torch.arange(H, device=dev) + dy).clamp(0, H - 1)
            cols = (torch.arange(W, device=dev) + dx).clamp(0, W - 1)
            out[b] = x[b][:, rows][:, :, cols]
        x = out
    return x.clamp_(0, 255)
