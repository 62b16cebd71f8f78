"""Results files for the Explore tests: result lines shaped like `caption --out`'s, built by hand so
that every row's margin, agreement and winner is known in advance."""

from __future__ import annotations

import json
from pathlib import Path

from c4c.result import METRIC_NAMES, CaptionResult, ModelCaption

NAMES = ["d1", "d2", "d3", "d4"]


def fake_result(video: str, captions: list[str], cider: list[float], grounding: list[float] | None = None,
                names: list[str] | None = None) -> dict:
    """A result whose winner is the arg-max of `cider` (ties: the lower index, as the ensemble)."""
    names = names or NAMES[:len(captions)]
    n = len(captions)
    winner = max(range(n), key=lambda i: (cider[i], -i))
    order = sorted(range(n), key=lambda i: (-cider[i], i))
    caps = [ModelCaption(name=names[i], caption=captions[i], token_ids=[101 + i, 102], beam_score=-1.0 - i,
                         loo={m: (cider[i] if m == "cider" else cider[i] / 10) for m in METRIC_NAMES},
                         rank=order.index(i) + 1) for i in range(n)]
    pair = [[None if i == j else round(0.1 * (i + j + 1), 3) for j in range(n)] for i in range(n)]
    r = CaptionResult(video=video, timestamps=[0.0, 1.0], frame_indices=[0, 10], captions=caps, winner=winner,
                      metric="cider", tie_break="highest cider; ties: lower index", pairwise={m: pair for m in METRIC_NAMES},
                      idf="test", timings={"total": 1.0}, settings={"beam": 5, "max_frames": 20, "metric": "cider"},
                      zoo={"name": "test"})
    d = r.to_dict()
    if grounding is not None:
        for c, g in zip(d["captions"], grounding):
            c["grounding"] = g
    return d


# Four videos with known rows (winner, margin over the best *different* caption, distinct captions):
CORPUS = [
    # v0: d1 and d2 agree (tie at the top); the best different caption is d3's: margin 2.0 - 1.5
    fake_result("clips/v0.mp4", ["a red star moves left", "a red star moves left", "a blue circle", "a dog"],
                [2.0, 2.0, 1.5, 0.1]),
    # v1: every decoder writes the same caption: no margin
    fake_result("clips/v1.mp4", ["a green square bounces"] * 4, [1.0, 1.0, 1.0, 1.0]),
    # v2: d3 wins clearly
    fake_result("clips/v2.mp4", ["a cat", "a dog runs", "a yellow star changes colour", "a star"], [0.2, 0.3, 3.0, 0.9]),
    # v3: d2 wins by a hair
    fake_result("clips/v3.mp4", ["a white star moves right", "a white star moves left", "a star", "stars"],
                [1.00, 1.01, 0.5, 0.4]),
]


def write_jsonl(path: Path, records: list, extra_lines: dict[int, str] | None = None) -> Path:
    """Records as JSON lines; `extra_lines` {position: raw text} inserts raw (e.g. malformed) lines."""
    lines = [json.dumps(r) for r in records]
    for pos, raw in sorted((extra_lines or {}).items()):
        lines.insert(pos, raw)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
