"""The two plots that explain a vote, as matplotlib Figures.

Built with `matplotlib.figure.Figure` rather than pyplot: no global figure registry, so concurrent
requests never draw into each other's figures and nothing leaks when a figure is dropped."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..result import CaptionResult
from ..settings import METRIC_NAMES

__all__ = ["loo_figure", "agreement_figure", "WINNER_COLOR", "OTHER_COLOR"]

WINNER_COLOR = "#d95f02"   # the winner's bar and label (orange: distinct from the others under colour blindness)
OTHER_COLOR = "#7570b3"
BEST_EDGE = "#1a1a1a"      # outline of each panel's arg-max (off the selecting metric it may not be the winner)
# Axis floor so that scores of ~0 do not blow noise up to full width (CIDEr-D runs 0..10, the rest 0..1).
MIN_SPAN = {"cider": 0.1, "bleu4": 0.05, "meteor": 0.05, "rouge": 0.05}


def loo_figure(r: CaptionResult) -> Figure:
    """One panel per scored metric (the selecting one first, top left), two to a row: every decoder's
    leave-one-out score, and the caption-video grounding where the zoo has a text tower. The winner's
    bar is orange in all panels; each panel's best bar is outlined."""
    metrics = r.scored
    names = [c.name for c in r.captions]
    n = len(names)
    if all(c.grounding is not None for c in r.captions):
        metrics = metrics + ["grounding"]
    rows = (len(metrics) + 1) // 2
    fig = Figure(figsize=(7.5, (2.2 + 0.55 * n) * rows / 2), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    y = np.arange(n)
    for ax, m in zip(axes, metrics):
        vals = np.array([c.grounding if m == "grounding" else c.loo[m] for c in r.captions], dtype=float)
        bars = ax.barh(y, vals, color=[WINNER_COLOR if i == r.winner else OTHER_COLOR for i in range(n)])
        best = int(np.argmax(vals))
        if vals[best] > 0:  # an all-zero panel has no best caption
            bars[best].set_edgecolor(BEST_EDGE)
            bars[best].set_linewidth(1.5)
        top = max(float(vals.max()), MIN_SPAN.get(m, 0.05))
        ax.set_xlim(min(0.0, float(vals.min()) * 1.3), top * 1.3)  # a cosine may be negative
        for yi, v in zip(y, vals):
            ax.text(v + top * 0.02, yi, f"{v:.3f}", va="center", fontsize=8)
        ax.set_yticks(y, labels=names, fontsize=8)
        ax.invert_yaxis()
        for i, lab in enumerate(ax.get_yticklabels()):
            if i == r.winner:
                lab.set_fontweight("bold")
                lab.set_color(WINNER_COLOR)
        selects = (m == r.metric and r.select != "grounding") or (m == "grounding" and r.select != "consensus")
        title = "Grounding (caption vs video)" if m == "grounding" else METRIC_NAMES[m]
        ax.set_title(title + (" (selects the winner)" if selects else ""), fontsize=10,
                     fontweight="bold" if selects else "normal")
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Leave-one-out score: each caption against all the others", fontsize=11)
    return fig


def agreement_figure(r: CaptionResult, metric: str | None = None) -> Figure:
    """Heatmap of caption i (row, the hypothesis) scored against caption j (column, the only reference)
    under `metric` (default: the selecting one). A row bright across agrees with the ensemble."""
    metric = metric or r.metric
    names = [c.name for c in r.captions]
    n = len(names)
    mat = np.array([[np.nan if v is None else float(v) for v in row] for row in r.pairwise[metric]], dtype=float)
    fig = Figure(figsize=(3.2 + 0.8 * n, 2.2 + 0.6 * n), layout="constrained")
    ax = fig.subplots()
    finite = mat[np.isfinite(mat)]
    vmax = 1.0 if metric != "cider" else max(float(finite.max()) if finite.size else 0.0, MIN_SPAN["cider"])
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=_cmap(), vmin=0.0, vmax=vmax)
    for i in range(n):
        for j in range(n):
            if np.isfinite(mat[i, j]):
                dark = mat[i, j] / vmax < 0.6  # white text on the dark end of viridis
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
            else:
                ax.text(j, i, "\u2014", ha="center", va="center", fontsize=9, color="#555555")
    ax.set_xticks(range(n), labels=names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=[f"{nm}  (LOO {r.captions[i].loo[metric]:.2f})" for i, nm in enumerate(names)],
                  fontsize=8)
    for i, lab in enumerate(ax.get_yticklabels()):
        if i == r.winner:
            lab.set_fontweight("bold")
            lab.set_color(WINNER_COLOR)
    ax.set_xlabel("reference: caption j alone")
    ax.set_ylabel("hypothesis: caption i")
    ax.set_title(f"Pairwise agreement ({METRIC_NAMES.get(metric, metric)}): caption i scored against caption j",
                 fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _cmap():
    import matplotlib
    return matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")  # the diagonal: never scored
