"""The selection rules measured on a split, and the combined rule's w tuned on the validation split.

`python -m c4c evaluate` adds a row per rule when the zoo has a text tower; `evaluate --tune-select`
(on --split val) or `build-zoo` stores w in the manifest's "selection" entry:

    "selection": {"combined_weight": w, "tuned_on": "...", "val_cider": {rule: CIDEr-D x100},
                  "mean_cider_by_weight": {w: mean sentence CIDEr-D x100}, "best_rule": rule}

Quality of a caption = its CIDEr-D against the video's references (IDF from the evaluated references,
as the oracle row); w maximises the mean over the split (= corpus CIDEr-D of the chosen captions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["caption_groundings", "rule_rows", "tune_selection"]

RULE_METRIC = "cider"  # the selecting metric of every rule's consensus term (the caption default)


def caption_groundings(text_tower, features: Mapping[str, np.ndarray], video_ids: Sequence[str],
                       per_decoder: Mapping[str, Sequence[str]]) -> list[list[float]]:
    """[video][decoder] grounding of every caption (each distinct caption embedded once)."""
    from ..vote.grounding import grounding_scores
    names = list(per_decoder)
    distinct = sorted({per_decoder[n][i] for n in names for i in range(len(video_ids))})
    emb = {}
    for s in range(0, len(distinct), 256):
        chunk = distinct[s: s + 256]
        emb.update(zip(chunk, text_tower.encode(chunk)))
    return [grounding_scores(features[v], np.stack([emb[per_decoder[n][i]] for n in names]))
            for i, v in enumerate(video_ids)]


def _choices(per_decoder, groundings, idf, weight: float) -> dict[str, list[int]]:
    from ..vote.ensemble import score_ensembles
    from ..vote.selection import select
    names = list(per_decoder)
    by_video = [[per_decoder[n][i] for n in names] for i in range(len(groundings))]
    outcomes = score_ensembles(by_video, idf, select=RULE_METRIC, pairwise=False)
    return {rule: [select(o, g, rule, weight).winner for o, g in zip(outcomes, groundings)]
            for rule in ("consensus", "grounding", "combined")}, outcomes


def rule_rows(refs, per_decoder: Mapping[str, Sequence[str]], groundings, idf, weight: float):
    """(rows, captions per row): one EvalRow per selection rule (consensus = the CIDEr-D vote)."""
    from .evaluate import _row
    names = list(per_decoder)
    picks, _ = _choices(per_decoder, groundings, idf, weight)
    rows, chosen = [], {}
    for rule, label in (("consensus", "select: consensus (CIDEr-D vote)"), ("grounding", "select: grounding"),
                        ("combined", f"select: combined (w={weight:g})")):
        chosen[label] = [per_decoder[names[p]][i] for i, p in enumerate(picks[rule])]
        rows.append(_row(label, "selection", refs, chosen[label]))
    return rows, chosen


def tune_selection(refs, per_decoder: Mapping[str, Sequence[str]], groundings, idf, split: str, beam: int) -> dict:
    """The manifest's "selection" entry: w of the combined rule tuned on this split (see the docstring)."""
    from ..vote.metrics import sentence_scores
    from ..vote.selection import tune_weight
    names = list(per_decoder)
    quality = np.array([sentence_scores("cider", refs, per_decoder[n]) for n in names]).T  # (videos, models)
    _, outcomes = _choices(per_decoder, groundings, idf, 1.0)
    w, means = tune_weight(outcomes, groundings, quality.tolist())
    picks, _ = _choices(per_decoder, groundings, idf, w)
    val = {rule: round(100 * float(np.mean([quality[i, p] for i, p in enumerate(ps)])), 2) for rule, ps in picks.items()}
    best = max(val, key=lambda r: (val[r], r == "consensus"))  # a tie keeps the paper's vote
    return {"combined_weight": w, "tuned_on": f"{split} split, {len(refs)} videos, beam {beam}",
            "val_cider": val, "mean_cider_by_weight": {f"{k:g}": round(100 * v, 2) for k, v in means.items()},
            "best_rule": best}
