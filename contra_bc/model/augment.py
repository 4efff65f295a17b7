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
    # colour: brightness, contrast, saturation, and a small per-channel tint (white balance)
    x = x * (0.8 + 0.4 * u(B, 1, 1, 1, 1))
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * (0.8 + 0.4 * u(B, 1, 1, 1, 1)) + mean
    gray = x.mean(dim=-1, keepdim=True)
    x = (x - gray) * (0.7 + 0.6 * u(B, 1, 1, 1, 1)) + gray
    x = x * (0.95 + 0.1 * u(B, 1, 1, 1, 3))
    # sensor-like noise on half the windows
    sigma = 4.0 * u(B, 1, 1, 1, 1) * (u(B, 1, 1, 1, 1) < 0.5)
    x = x + sigma * torch.randn(x.shape, generator=gen, device=gen.device).to(dev)
    # 3×3 gaussian blur on a third of the windows
    x = x.permute(0, 1, 4, 2, 3).reshape(B * T, C, H, W)
    k = torch.tensor([1.0, 2.0, 1.0], device=dev)
    k = (k[:, None] * k[None, :] / 16).expand(C, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=C)
    pick = (u(B, 1) < 1 / 3).expand(B, T).reshape(B * T, 1, 1, 1)
    x = torch.where(pick, blurred, x)
    # translation by up to max_shift pixels, edges replicated
    if max_shift:
        shift = (u(B, 2) * (2 * max_shift + 1)).long() - max_shift
        padded = F.pad(x, (max_shift,) * 4, mode="replicate").view(B, T, C, H + 2 * max_shift, W + 2 * max_shift)
        rows = []
        for b in range(B):
            dy, dx = int(shift[b, 0]) + max_shift, int(shift[b, 1]) + max_shift
            rows.append(padded[b, :, :, dy:dy + H, dx:dx + W])
        x = torch.stack(rows).reshape(B * T, C, H, W)
    x = x.view(B, T, C, H, W).permute(0, 1, 3, 4, 2)
    return x.clamp(0, 255)
