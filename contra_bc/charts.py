"""Charts as PNG, drawn with matplotlib (Agg, no display needed), written atomically.

Two shapes cover every chart the toolkit draws: ``line_charts`` (panels of x/y series stacked
vertically: loss, causality over checkpoints, the toy curves, correction rounds) and
``histogram_chart`` (where episodes died). Figures are 1280 px wide with 12 pt text, so they
stay readable when a report or README shows them at half size.
"""

from __future__ import annotations

import io
from pathlib import Path

DPI = 100
WIDTH_IN = 12.8
FONT = 12


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1, "axes.labelsize": FONT,
                         "legend.fontsize": FONT - 1, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, path: Path) -> Path:
    from contra_bc.formats.atomic import write_bytes

    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.getvalue())
    return path


def line_charts(panels: list[dict], path: Path, title: str = "", panel_height: float = 4.2) -> Path:
    """Panels stacked vertically. Each panel: ``series`` {name: [(x, y), ...]}, and optionally
    ``title``, ``xlabel``, ``ylabel``, ``log_y`` (a log axis when every y is > 0), ``integer_x``
    (whole-number ticks: rounds), ``markers`` (names drawn as points only: e.g. validation losses,
    sparse beside the training curve)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, panel_height * len(panels) + (0.5 if title else 0)),
                             squeeze=False, constrained_layout=True)
    for ax, panel in zip(axes[:, 0], panels):
        markers = set(panel.get("markers", ()))
        ys = []
        for name, points in panel["series"].items():
            if not points:
                continue
            xs, vs = zip(*points)
            ys += list(vs)
            if name in markers:
                ax.plot(xs, vs, "o", markersize=6, label=name)
            else:
                ax.plot(xs, vs, "-" if len(xs) > 12 else "-o", linewidth=1.8, markersize=4, label=name)
        if panel.get("log_y") and ys and min(ys) > 0:
            ax.set_yscale("log")
        if panel.get("integer_x"):
            ax.xaxis.get_major_locator().set_params(integer=True)
        if panel.get("title"):
            ax.set_title(panel["title"])
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        if len(panel["series"]) > 1 or panel.get("legend"):
            ax.legend(loc="best")
    if title:
        fig.suptitle(title, fontsize=FONT + 2)
    return _save(fig, path)


def histogram_chart(groups: dict[str, list[float]], path: Path, title: str, xlabel: str, bins: int = 20,
                    lo: float | None = None, hi: float | None = None) -> Path:
    """Side-by-side bars: how many values of each group fall in each of ``bins`` equal bins."""
    import numpy as np

    plt = _pyplot()
    values = [v for vs in groups.values() for v in vs]
    lo = min(values, default=0.0) if lo is None else lo
    hi = max(values, default=1.0) if hi is None else hi
    if hi <= lo:
        hi = lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 5.0), constrained_layout=True)
    names = [n for n in groups]
    width = (edges[1] - edges[0]) / max(1, len(names))
    for i, name in enumerate(names):
        counts, _ = np.histogram(np.clip(groups[name], lo, hi), bins=edges)
        ax.bar(edges[:-1] + i * width, counts, width=width, align="edge", label=f"{name} ({len(groups[name])})")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best")
    return _save(fig, path)
