"""The Explore page's corpus plots, as matplotlib Figures (no pyplot state, as figures.py):
how often each decoder wins, how close the votes are, and which decoders agree with which.

Each takes the filtered rows, so the plots always describe what the table lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..result import METRIC_NAMES
from .explore import Corpus
from .figures import OTHER_COLOR, WINNER_COLOR, _cmap

__all__ = ["wins_figure", "margin_figure", "mean_agreement_figure"]


def _empty(fig: Figure, ax, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="#555555", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def wins_figure(corpus: Corpus, rows: pd.DataFrame) -> Figure:
    """Videos won per decoder (every decoder of the file, zero wins included); with grounding, how
    many of those wins grounding alone would have given to another caption."""
    fig = Figure(figsize=(5.2, 1.6 + 0.35 * max(1, len(corpus.decoders))), layout="constrained")
    ax = fig.subplots()
    if rows.empty:
        return _empty(fig, ax, "no videos match the filters")
    counts = rows["decoder"].value_counts()
    names = corpus.decoders
    wins = np.array([int(counts.get(n, 0)) for n in names])
    y = np.arange(len(names))
    best = int(np.argmax(wins))
    ax.barh(y, wins, color=[WINNER_COLOR if i == best else OTHER_COLOR for i in range(len(names))])
    for yi, w in zip(y, wins):
        ax.text(w, yi, f" {w} ({100 * w / len(rows):.0f} %)", va="center", fontsize=8)
    if corpus.has_grounding:
        over = rows[rows["grounding_disagrees"].fillna(False).astype(bool)]["decoder"].value_counts()
        ax.barh(y, [int(over.get(n, 0)) for n in names], color="none", edgecolor="#1a1a1a", hatch="//",
                label="grounding would pick another caption")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(y, labels=names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1, wins.max()) * 1.35)
    ax.set_xlabel("videos won", fontsize=8)
    ax.set_title(f"Which decoder wins ({len(rows)} videos)", fontsize=10)
    return fig


def margin_figure(rows: pd.DataFrame) -> Figure:
    """Histogram of the winners' margins over the best different caption; videos where every decoder
    wrote the same caption have no margin and are counted in the title."""
    fig = Figure(figsize=(5.2, 3.0), layout="constrained")
    ax = fig.subplots()
    if rows.empty:
        return _empty(fig, ax, "no videos match the filters")
    margins = rows["margin"].to_numpy(dtype=float)
    finite = margins[np.isfinite(margins)]
    agree = int(np.isnan(margins).sum())
    metric = METRIC_NAMES.get(str(rows["metric"].iat[0]), str(rows["metric"].iat[0]))
    if finite.size:
        ax.hist(finite, bins=min(40, max(5, finite.size // 4)), color=OTHER_COLOR)
        ties = int((finite == 0).sum())
        if ties:
            ax.axvline(0, color=WINNER_COLOR, lw=1.5, label=f"{ties} tie(s): won by the tie-break")
            ax.legend(fontsize=7)
    else:
        _empty(fig, ax, "every decoder agrees on every video")
    ax.set_xlabel(f"winner's leave-one-out {metric} minus the best different caption's", fontsize=8)
    ax.set_ylabel("videos", fontsize=8)
    ax.set_title(f"How close the vote is ({agree} video(s) where all decoders agree)", fontsize=10)
    return fig


def mean_agreement_figure(corpus: Corpus, rows: pd.DataFrame) -> Figure:
    """Decoder-by-decoder agreement (caption i scored against caption j alone, the selecting metric)
    averaged over the listed videos where both decoders voted."""
    names = corpus.decoders
    n = len(names)
    fig = Figure(figsize=(3.4 + 0.6 * n, 2.4 + 0.5 * n), layout="constrained")
    ax = fig.subplots()
    idx = corpus.table.index.get_indexer(rows.index)  # positions in the corpus's pairwise array
    if rows.empty or not n:
        return _empty(fig, ax, "no videos match the filters")
    sub = corpus.pairwise[idx]
    seen = np.isfinite(sub).sum(axis=0)
    mat = np.where(seen > 0, np.nansum(sub, axis=0) / np.maximum(seen, 1), np.nan)
    metric = str(rows["metric"].iat[0])
    finite = mat[np.isfinite(mat)]
    vmax = 1.0 if metric != "cider" else max(float(finite.max()) if finite.size else 0.0, 0.1)
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=_cmap(), vmin=0.0, vmax=vmax)
    for i in range(n):
        for j in range(n):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if mat[i, j] / vmax < 0.6 else "black")
    ax.set_xticks(range(n), labels=names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=names, fontsize=8)
    ax.set_xlabel("reference: caption j alone", fontsize=8)
    ax.set_ylabel("hypothesis: caption i", fontsize=8)
    ax.set_title(f"Mean pairwise agreement ({METRIC_NAMES.get(metric, metric)}), {len(rows)} videos", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
