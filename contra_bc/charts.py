"""Line charts as PNG, drawn with PIL (no plotting library needed)."""

from __future__ import annotations

import math
from pathlib import Path

PALETTE = [(230, 90, 70), (80, 160, 230), (120, 200, 90), (240, 190, 60), (190, 110, 220), (90, 210, 200)]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) < 1e6:  # steps: 1000, not 1e+03
        return f"{int(v)}"
    if abs(v) >= 1e6 or abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def draw_panel(draw, box, series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, ylabel: str):
    """One chart inside ``box`` (x0, y0, x1, y1): axes, ticks, a line and dots per series, a legend."""
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 60, x1 - 12, y0 + 40, y1 - 36
    draw.text((x0 + 8, y0 + 4), title, fill=(255, 255, 255))
    points = [p for pts in series.values() for p in pts if math.isfinite(p[1])]
    if not points:
        draw.text((left, (top + bottom) // 2), "no data", fill=(200, 200, 200))
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(ys), max(ys)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1
    if yhi == ylo:
        ylo, yhi = ylo - 1, yhi + 1
    pad = (yhi - ylo) * 0.05
    ylo, yhi = ylo - pad, yhi + pad

    def sx(x):
        return left + (x - xlo) / (xhi - xlo) * (right - left)

    def sy(y):
        return bottom - (y - ylo) / (yhi - ylo) * (bottom - top)

    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    for t in _ticks(ylo, yhi):
        draw.line((left - 4, sy(t), right, sy(t)), fill=(55, 55, 55))
        draw.text((x0 + 4, sy(t) - 6), _fmt(t), fill=(190, 190, 190))
    for t in _ticks(xlo, xhi):
        draw.line((sx(t), bottom, sx(t), bottom + 4), fill=(150, 150, 150))
        draw.text((sx(t) - 10, bottom + 6), _fmt(t), fill=(190, 190, 190))
    draw.text(((left + right) // 2 - 20, bottom + 20), xlabel, fill=(220, 220, 220))
    draw.text((x0 + 4, top - 14), ylabel, fill=(220, 220, 220))
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = [p for p in pts if math.isfinite(p[1])]
        xy = [(sx(x), sy(y)) for x, y in pts]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((left + 8, top + 6 + 14 * i), name, fill=colour)


def line_charts(panels: list[dict], path: Path, title: str = "", panel_size=(640, 360)) -> Path:
    """Panels stacked vertically; each dict has series, title, xlabel, ylabel. Written atomically."""
    from PIL import Image, ImageDraw

    w, h = panel_size
    head = 22 if title else 0
    canvas = Image.new("RGB", (w, head + h * len(panels)), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((8, 4), title, fill=(255, 230, 120))
    for i, panel in enumerate(panels):
        draw_panel(draw, (0, head + i * h, w, head + (i + 1) * h), panel["series"], panel.get("title", ""),
                   panel.get("xlabel", ""), panel.get("ylabel", ""))
    from contra_bc.images import save_png

    return save_png(canvas, path)


def histogram_chart(groups: dict[str, list[float]], path: Path, title: str, xlabel: str, bins: int = 20,
                    lo: float | None = None, hi: float | None = None, size=(640, 320)) -> Path:
    """Side-by-side bars of how many values of each group fall in each of ``bins`` equal bins."""
    from PIL import Image, ImageDraw

    values = [v for vs in groups.values() for v in vs]
    lo = min(values, default=0.0) if lo is None else lo
    hi = max(values, default=1.0) if hi is None else hi
    if hi <= lo:
        hi = lo + 1
    width = (hi - lo) / bins
    counts = {name: [0] * bins for name in groups}
    for name, vs in groups.items():
        for v in vs:
            counts[name][min(bins - 1, max(0, int((v - lo) / width)))] += 1
    w, h = size
    canvas = Image.new("RGB", (w, h), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    left, right, top, bottom = 60, w - 12, 40, h - 36
    draw.text((8, 4), title, fill=(255, 230, 120))
    top_count = max([c for cs in counts.values() for c in cs] + [1])
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    for t in _ticks(0, top_count):
        y = bottom - t / top_count * (bottom - top)
        draw.line((left - 4, y, right, y), fill=(55, 55, 55))
        draw.text((8, y - 6), _fmt(t), fill=(190, 190, 190))
    for t in _ticks(lo, hi):
        x = left + (t - lo) / (hi - lo) * (right - left)
        draw.line((x, bottom, x, bottom + 4), fill=(150, 150, 150))
        draw.text((x - 10, bottom + 6), _fmt(t), fill=(190, 190, 190))
    draw.text(((left + right) // 2 - 40, bottom + 20), xlabel, fill=(220, 220, 220))
    slot = (right - left) / bins
    bar = max(1.0, (slot - 2) / max(1, len(groups)))
    for i, (name, cs) in enumerate(counts.items()):
        colour = PALETTE[i % len(PALETTE)]
        for b, c in enumerate(cs):
            if c:
                x0 = left + b * slot + 1 + i * bar
                draw.rectangle((x0, bottom - c / top_count * (bottom - top), x0 + bar - 1, bottom), fill=colour)
        draw.text((left + 8, top + 6 + 14 * i), f"{name} ({sum(cs)})", fill=colour)
    from contra_bc.images import save_png

    return save_png(canvas, path)
