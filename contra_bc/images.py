"""PNG pictures a person reads at a glance: side-by-side frames with a difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contra_bc.formats import atomic


def side_by_side(panels: list[tuple[str, np.ndarray | None]], path: Path, scale: int = 2,
                 title: str = "") -> Path:
    """Write labelled panels left to right; a missing panel is drawn grey."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    shape = next(p.shape for _, p in panels if p is not None)
    h, w = shape[0] * scale, shape[1] * scale
    pad, head = 8, 22 + (18 if title else 0)
    canvas = Image.new("RGB", (len(panels) * (w + pad) + pad, h + head + pad), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 4), title, fill=(255, 255, 255), font=font)
    for i, (label, img) in enumerate(panels):
        x = pad + i * (w + pad)
        draw.text((x, head - 18), label, fill=(255, 230, 120), font=font)
        if img is None:
            tile = Image.new("RGB", (w, h), (90, 90, 90))
        else:
            tile = Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.NEAREST)
        canvas.paste(tile, (x, head))
    return save_png(canvas, path)


def save_png(image, path: Path) -> Path:
    """Save a PIL image as PNG under a temp name, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path(path)
    try:
        image.save(tmp, format="PNG")
        atomic.commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def difference(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Pixels that differ in magenta over a dimmed copy of ``a``."""
    if a is None or b is None:
        return None
    changed = (a != b).any(axis=2)
    out = (a // 3).astype(np.uint8)
    out[changed] = (255, 0, 255)
    return out
