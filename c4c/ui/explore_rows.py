"""One Explore row from one result: the winner, the margin over the best *different* caption, how
many distinct captions, grounding when the captions carry it; a segmented result gives one row per
segment. Pure functions of the parsed JSON (`explore.load_corpus` reads the file)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["row_from_result"]


def _number(x) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"score {x!r} is not a number")
    return float(x)


def row_from_result(d: Any) -> dict:
    """The table row of one result dict (`CaptionResult.to_dict()`). ValueError, with a reason a
    person can act on, when `d` is not a result."""
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    caps, metric, win = d.get("captions"), d.get("metric"), d.get("winner")
    if not isinstance(d.get("video"), str):
        raise ValueError("no 'video' field")
    if not isinstance(caps, list) or not caps or not all(isinstance(c, dict) for c in caps):
        raise ValueError("no 'captions' list")
    if not isinstance(metric, str):
        raise ValueError("no 'metric' field")
    if isinstance(win, bool) or not isinstance(win, int) or not 0 <= win < len(caps):
        raise ValueError(f"'winner' {win!r} is not an index into its {len(caps)} captions")
    try:
        names = [str(c["name"]) for c in caps]
        texts = [str(c["caption"]) for c in caps]
        scores = [_number(c["loo"][metric]) for c in caps]
    except (KeyError, TypeError) as e:
        raise ValueError(f"a caption lacks {e} (name, caption, or its leave-one-out {metric!r} score)") from None
    # Decoders that wrote the winner's very caption score the same and would make every margin 0:
    # the runner-up is the best *different* caption.
    norm = [" ".join(t.lower().split()) for t in texts]
    others = [k for k in range(len(caps)) if norm[k] != norm[win]]
    runner = max(others, key=lambda k: (scores[k], -k)) if others else None
    row = {"video": d["video"], "decoder": names[win], "caption": texts[win], "metric": metric,
           "margin": scores[win] - scores[runner] if runner is not None else math.nan,
           "runner_up": names[runner] if runner is not None else "",
           "distinct": len(set(norm)), "decoders": len(caps),
           "names": names, "captions": texts}
    grounding = [c.get("grounding") for c in caps]
    if all(isinstance(g, (int, float)) and not isinstance(g, bool) for g in grounding):
        pick = max(range(len(caps)), key=lambda k: (grounding[k], -k))
        row.update(grounding=float(grounding[win]), grounding_pick=names[pick], grounding_disagrees=pick != win)
    return row


def _parts(d: dict) -> list[dict]:
    """The result itself, or one result-like dict per segment of a segmented result (its time span in
    "segment", its own captions, winner and pairwise matrices; the video's metric)."""
    segs = d.get("segments") if isinstance(d, dict) else None
    if not segs:
        return [d]
    return [{"video": d["video"], "metric": d["metric"], "captions": s["captions"], "winner": s["winner"],
             "pairwise": s.get("pairwise") or {}, "segment": f"{float(s['start_s']):.1f}-{float(s['end_s']):.1f} s"}
            for s in segs]
