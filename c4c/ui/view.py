"""A CaptionResult as the page shows it: table rows, the winner's banner, gallery items, timings.

Pure functions of the result (and the sampled frames): they never touch the models, so the page
cannot show anything the result JSON does not hold."""

from __future__ import annotations

import html
import re

import numpy as np
from PIL import Image

from ..result import CaptionResult
from ..settings import METRIC_NAMES

__all__ = ["table_rows", "table_headers", "styled_table", "winner_html", "why_markdown", "readable_tie_break",
           "timings_markdown", "zoo_markdown", "thumbnails", "WINNER_MARK", "WINNER_STYLE", "COLUMN_WIDTHS"]

WINNER_MARK = "\u2605"  # star before the winner's name: the highlight survives copy-paste and colour blindness
WINNER_STYLE = "background-color: #fff3b0; color: #1a1a1a; font-weight: 700"
COLUMN_WIDTHS = ["6%", "12%", "36%", "9%", "9%", "9%", "9%", "10%"]  # rank, model, caption, <= 4 scores, grounding
NO_SCORE = "\u2013"  # shown where a zoo has no text tower, so no grounding
THUMB_SHORT_SIDE = 224  # gallery thumbnails: the size CLIP sees, small enough for per-session state


def table_headers(r: CaptionResult) -> list[str]:
    return ["Rank", "Model", "Caption"] + [METRIC_NAMES[m] for m in r.scored] + ["Grounding"]


def table_rows(r: CaptionResult) -> list[list]:
    """One row per decoder, best-ranked first: rank, model (starred if it won), caption, LOO scores,
    grounding (None without a text tower)."""
    rows = []
    for i, c in sorted(enumerate(r.captions), key=lambda ic: ic[1].rank):
        name = f"{WINNER_MARK} {c.name}" if i == r.winner else c.name
        rows.append([c.rank, name, c.caption] + [round(float(c.loo[m]), 4) for m in r.scored]
                    + [None if c.grounding is None else round(float(c.grounding), 4)])
    return rows


def styled_table(r: CaptionResult):
    """The table as a pandas Styler: scores to 3 decimals, the winner's row highlighted."""
    import pandas as pd
    headers = table_headers(r)
    df = pd.DataFrame(table_rows(r), columns=headers)
    win_row = next(k for k, row in enumerate(table_rows(r)) if row[1].startswith(WINNER_MARK))
    score_cols = headers[3:]

    def highlight(row):
        return [WINNER_STYLE if row.name == win_row else ""] * len(row)

    return df.style.apply(highlight, axis=1).format({c: "{:.3f}" for c in score_cols}, na_rep=NO_SCORE)


def winner_html(r: CaptionResult) -> str:
    """The ensemble's caption, large, with the model that wrote it and the rule that chose it."""
    metric = html.escape(METRIC_NAMES.get(r.metric, r.metric))
    how = {"grounding": "grounding (caption-video similarity)",
           "combined": f"leave-one-out {metric} and grounding combined"}.get(r.select, f"leave-one-out {metric}")
    return (f'<div class="c4c-winner" id="c4c-winner"><div class="c4c-winner-caption">{html.escape(r.caption)}</div>'
            f'<div class="c4c-winner-meta">by <b>{html.escape(r.winner_name)}</b>, chosen by {how} '
            f"among {len(r.captions)} decoders</div></div>")


def why_markdown(r: CaptionResult) -> str:
    """CaptionResult.explain(), plus the tie-break when the selecting scores tie at the top."""
    text = f"**Why this caption won:** {r.explain()}"
    scores = r.selection.get("scores") if r.select != "consensus" else None
    top = sorted(scores or (c.loo[r.metric] for c in r.captions), reverse=True)
    if len(top) > 1 and top[0] - top[1] < 1e-9:
        text += f" Scores tie at the top, so: {readable_tie_break(r)}."
    if r.selection.get("no_grounding"):
        text += f" *No grounding column: {r.selection['no_grounding']}.*"
    return text


def readable_tie_break(r: CaptionResult) -> str:
    """The ensemble's tie-break text with model indices as names and metric keys as display names."""
    names = [c.name for c in r.captions]
    name = lambda d: names[int(d[0])] if int(d[0]) < len(names) else d[0]  # noqa: E731
    # Only the indices after "model"/"models": a weight such as "0.75" in the rule's text stays a number.
    text = re.sub(r"\b(models? )(\d+(?:, \d+)*)\b", lambda m: m[1] + re.sub(r"\d+", name, m[2]), r.tie_break)
    return re.sub(r"\b(" + "|".join(METRIC_NAMES) + r")\b", lambda m: METRIC_NAMES[m[1]], text)


def timings_markdown(r: CaptionResult) -> str:
    """Per-stage seconds in pipeline order, plus what the numbers ran on."""
    parts = [f"{k} {v:.2f} s" for k, v in r.timings.items() if k != "total"]
    total = r.timings.get("total")
    head = f"**Timings** ({r.settings.get('device', '?')}, beam {r.settings.get('beam', '?')}, "\
           f"{len(r.timestamps)} frames)"
    text = f"{head}: " + ", ".join(parts)
    if total is not None:
        text += f"; total {total:.2f} s"
    if r.timings.get("backbone", 1.0) == 0.0:
        text += " (frames and features reused from an earlier request on the same video)"
    return text


def zoo_markdown(zoo_summary: dict, evaluation: dict | None = None, rule: str = "consensus") -> str:
    """Which model zoo answers, what it was trained on (never let a demo zoo pass for MSR-VTT) and,
    when its manifest holds an attribute evaluation, what it gets right under `rule`, measured."""
    name = zoo_summary.get("name", "?")
    desc = zoo_summary.get("description") or "no description in its manifest"
    n = len(zoo_summary.get("decoders", {}))
    measured = measured_sentence(evaluation, rule)
    return f"**Model zoo:** `{name}`: {n} decoders. {desc}" + (f"\n\n{measured}" if measured else "")


def measured_sentence(evaluation: dict | None, rule: str = "consensus") -> str | None:
    """One sentence from a manifest's evaluation: how often the caption chosen by `rule` (the zoo's
    default; the CIDEr-D vote when the evaluation has no row for it) gets each attribute right on the
    held-out test clips; None when the evaluation has no attribute block."""
    rows = (evaluation or {}).get("rows") or []
    vote = next((r for r in rows if r.get("kind") == "ensemble" and "CIDEr" in r.get("name", "")), None)
    chosen = next((r for r in rows if rule != "consensus" and r.get("name", "").startswith(f"select: {rule}")), None)
    by = f"the {rule} rule's caption (this zoo's default)" if chosen else "the ensemble's caption (CIDEr-D vote)"
    a = (chosen or vote or {}).get("attributes")
    if not a or a.get("colour") is None:
        return None
    pct = lambda k: "n/a" if a.get(k) is None else f"{a[k]:.0f} %"  # noqa: E731
    return (f"**Measured** on {evaluation.get('n_videos', '?')} held-out test clips that no step of the build saw, "
            f"{by} names the right colour on {pct('colour')}, the right shape on {pct('shape')} "
            f"and the right event on {pct('event')} of one-object clips (all three: {pct('all_three')}); "
            f"both objects' colour and shape on {pct('both')} of two-object clips.")


def thumbnails(images: np.ndarray, timestamps: list[float], indices: list[int],
               short_side: int = THUMB_SHORT_SIDE) -> list[tuple[np.ndarray, str]]:
    """(RGB uint8 thumbnail, "3.0 s, #90") per sampled frame (time, frame index), for gr.Gallery."""
    out = []
    for img, t, idx in zip(images, timestamps, indices):
        h, w = img.shape[:2]
        if min(h, w) > short_side:
            scale = short_side / min(h, w)
            img = np.asarray(Image.fromarray(img).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                         Image.BICUBIC))
        out.append((np.ascontiguousarray(img), f"{t:.1f} s, #{idx}"))
    return out
