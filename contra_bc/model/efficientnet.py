"""Image tokenizer: the stem and first five MBConv stages of EfficientNet-B0, in plain torch.

(torchvision's copy would need a multi-GB install beside our CPU torch.) No
pretrained weights are available offline, so the tokenizer is trained jointly
with the policy from scratch, which the paper also found better than freezing.
``width`` and ``depth`` multiply channels and block repeats, and ``input_pool``
makes each k×k pixel block one input position before the stem, so the CPU presets
(tiny, small) stay fast: ``input_mode`` "unshuffle" folds the block into 3·k² channels
(every pixel reaches the stem, at the cost of a wider first conv only; a 1-pixel enemy
bullet stays a sharp 1-pixel signal), "pool" averages it (the bullet fades to a dim
smear); width 1, depth 1, pool 1 is B0 on the full 192×192 frame, whose last stage
is a 12×12 map, which a 1×1 conv squeezes to a few channels and a linear layer turns
into ``n_tokens`` tokens of size ``d_model``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# EfficientNet-B0 stages 1..5: (expand ratio, kernel, stride, out channels, repeats)
B0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3)]
STEM_CHANNELS = 32


def _ch(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8)


def frame_norm(channels: int, kind: str) -> nn.Module:
    """The normalisation after each conv.

    "group" (the default): GroupNorm, statistics of one frame only, so a frame's tokens never
    depend on the other frames of a batch and training and play compute the same thing.
    "batch": BatchNorm, as EfficientNet has it; kept to load checkpoints made before `image_norm` existed.
    In train mode it normalises over every frame of the batch (padding included) and in eval
    mode it uses running statistics, so the image tokens a policy saw in training are not the
    ones it sees in play.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"unknown image norm {kind!r} (group or batch)")


class ConvNorm(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, groups=1, act=True, norm="group"):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), frame_norm(cout, norm),
                         nn.SiLU() if act else nn.Identity())


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, k×k depthwise, squeeze-excite, 1×1 project."""

    def __init__(self, cin, cout, expand, k, stride, norm="group"):
        super().__init__()
        mid = cin * expand
        self.expand = ConvNorm(cin, mid, 1, norm=norm) if expand != 1 else nn.Identity()
        self.depthwise = ConvNorm(mid, mid, k, stride, groups=mid, norm=norm)
        se = max(1, cin // 4)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, se, 1), nn.SiLU(), nn.Conv2d(se, mid, 1),
                                nn.Sigmoid())
        self.project = ConvNorm(mid, cout, 1, act=False, norm=norm)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        h = self.depthwise(self.expand(x))
        h = self.project(h * self.se(h))
        return x + h if self.residual else h


class ImageTokenizer(nn.Module):
    def __init__(self, d_model: int, n_tokens: int, frame_size: int = 192, width: float = 1.0, depth: float = 1.0,
                 token_channels: int = 32, input_pool: int = 1, norm: str = "group", input_mode: str = "pool"):
        super().__init__()
        if input_mode not in ("pool", "unshuffle"):
            raise ValueError(f"unknown image input {input_mode!r} (pool or unshuffle)")
        self.input_pool, self.input_mode = input_pool, input_mode
        stem_in = 3 * input_pool * input_pool if input_mode == "unshuffle" else 3
        layers = [ConvNorm(stem_in, _ch(STEM_CHANNELS, width), 3, 2, norm=norm)]
        cin, stride_total = _ch(STEM_CHANNELS, width), 2
        for expand, k, stride, cout, repeats in B0_STAGES:
            cout = _ch(cout, width)
            for i in range(max(1, math.ceil(repeats * depth))):
                layers.append(MBConv(cin, cout, expand, k, stride if i == 0 else 1, norm))
                cin = cout
            stride_total *= stride
        self.features = nn.Sequential(*layers)
        self.squeeze = ConvNorm(cin, token_channels, 1, norm=norm)
        side = frame_size // input_pool // stride_total
        self.n_tokens, self.d_model = n_tokens, d_model
        self.proj = nn.Linear(token_channels * side * side, n_tokens * d_model)
        # frames arrive as uint8 RGB; normalise here so every caller feeds the same thing
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1) * 255, persistent=False)
        # depthwise convs are several times faster on CPU in NHWC layout
        self.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [M, H, W, 3] (uint8 or float in 0..255) -> tokens [M, n_tokens, d_model]."""
        return self.tokens(self.feature_map(frames))

    def feature_map(self, frames: torch.Tensor) -> torch.Tensor:
        """frames -> the last feature map, flattened [M, token_channels * side * side]."""
        x = ((frames.permute(0, 3, 1, 2).float() - self.mean) / self.std).to(self.proj.weight.dtype)
        if self.input_pool > 1:
            x = F.pixel_unshuffle(x, self.input_pool) if self.input_mode == "unshuffle" else F.avg_pool2d(x, self.input_pool)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.squeeze(self.features(x)).flatten(1)

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features).view(-1, self.n_tokens, self.d_model)
