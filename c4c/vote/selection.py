"""Selection rules: which caption of one video wins, from the vote (`ensemble`) and grounding.

* "consensus": the leave-one-out vote (paper 2.3), exactly `EnsembleOutcome`'s winner.
* "grounding": the caption whose text embedding is closest to the video's (`grounding`).
* "combined":  z(consensus) + w * z(grounding), each standardised over the video's candidates
  (mean 0, population std 1; a term whose candidates all score alike contributes 0); w is tuned on
  the validation split (`tune_weight`) and stored in the zoo's manifest ("selection").

Tie-break, the same for every rule and deterministic: the rule's score (within 1e-12, chained),
then the leave-one-out score under the selecting metric, then the sum of the other metrics' scores
(order cider, bleu4, meteor, rouge), then the lowest model index. For "consensus" this is exactly
the vote's own tie-break. Pure: the same input gives the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..settings import METRICS as _CANONICAL
from ..settings import SELECT_RULES
from .ensemble import TIE_TOLERANCE, EnsembleOutcome

__all__ = ["Selection", "select", "standardise", "tune_weight", "SELECT_RULES", "WEIGHT_GRID"]

# w candidates for `tune_weight`: ECO (arXiv 2405.01028) weighs its CLIP score ~3.5 : 1 against consensus.
# Up to 50: on the demo zoo's val split the best w was still the grid's end at 10 (grounding-heavy);
# at w = 50 the vote only breaks near-ties of grounding.
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 15.0, 25.0, 50.0)


@dataclass(frozen=True)
class Selection:
    rule: str                    # "consensus" | "grounding" | "combined"
    winner: int
    ranking: tuple[int, ...]     # best first
    scores: tuple[float, ...]    # the rule's score per caption (combined: z + w z)
    consensus_winner: int        # the vote's winner, for "grounding overruled the vote"
    weight: float | None         # w of "combined", else None
    decided_by: str              # "rule" | "consensus" | "others" | "index"
    tie_break: str               # what decided first place, in words

    @property
    def overruled(self) -> bool:
        return self.winner != self.consensus_winner


def standardise(x: Sequence[float]) -> list[float]:
    """(x - mean) / std over the candidates (population std); all zeros when std < 1e-12."""
    a = np.asarray(x, dtype=np.float64)
    sd = a.std()
    return [0.0] * len(a) if sd < 1e-12 else [float(v) for v in (a - a.mean()) / sd]


def _rank(keys: list[list[float]]) -> tuple[list[int], int]:
    """Ranking by `keys` lexicographically, each level grouped within TIE_TOLERANCE (chained), then
    by index; and the first level (0-based; len(keys) = index) that separated the winner."""
    n = len(keys[0])

    def split(group: list[int], level: int) -> list[list[int]]:
        if level == len(keys):
            return [[i] for i in sorted(group)]
        k = keys[level]
        runs: list[list[int]] = []
        for i in sorted(group, key=lambda i: (-k[i], i)):
            if runs and k[runs[-1][-1]] - k[i] < TIE_TOLERANCE:
                runs[-1].append(i)
            else:
                runs.append([i])
        return [leaf for run in runs for leaf in split(run, level + 1)] if len(group) > 1 else [group]

    ranking = [g[0] for g in split(list(range(n)), 0)]
    decided, group = len(keys), list(range(n))
    for level, k in enumerate(keys):  # the first level at which the winner stands alone
        group = [i for i in group if k[ranking[0]] - k[i] < TIE_TOLERANCE and k[i] - k[ranking[0]] < TIE_TOLERANCE]
        if len(group) == 1:
            decided = level
            break
    return ranking, decided


def select(outcome: EnsembleOutcome, grounding: Sequence[float] | None, rule: str = "consensus",
           weight: float = 1.0) -> Selection:
    """The winner of one video's captions under `rule` (see the module docstring)."""
    if rule not in SELECT_RULES:
        raise InputError(f"unknown selection rule {rule!r}; choose one of {', '.join(SELECT_RULES)}")
    n, metric = len(outcome.captions), outcome.select
    if rule != "consensus" and (grounding is None or len(grounding) != n):
        raise InputError(f"the {rule} rule needs a grounding score per caption (a zoo with a text tower)")
    consensus = list(outcome.loo[metric])
    others = [m for m in _CANONICAL if m in outcome.loo and m != metric]
    rest = [sum((outcome.loo[m][i] for m in others), 0.0) for i in range(n)]
    if rule == "consensus":
        scores, keys = consensus, [consensus, rest]
    elif rule == "grounding":
        scores = [float(g) for g in grounding]
        keys = [scores, consensus, rest]
    else:
        scores = [c + weight * g for c, g in zip(standardise(consensus), standardise(grounding))]
        keys = [scores, consensus, rest]
    ranking, level = _rank(keys)
    w = ranking[0]
    labels = (["rule", "others", "index"] if rule == "consensus" else ["rule", "consensus", "others", "index"])
    decided = labels[min(level, len(labels) - 1)]
    what = {"consensus": f"leave-one-out {metric}", "grounding": "grounding",
            "combined": f"z({metric}) + {weight:g} z(grounding)"}[rule]
    tie = {"rule": f"model {w} has the highest {what}",
           "consensus": f"tie on {what}; model {w} has the highest leave-one-out {metric}",
           "others": f"tie on {what}" + ("" if rule == "consensus" else f" and {metric}")
                     + f"; model {w} has the highest sum of {'+'.join(others) or '(no other metric)'}",
           "index": f"tie on {what} and every other score; the lowest index, model {w}"}[decided]
    return Selection(rule, w, tuple(ranking), tuple(float(s) for s in scores), outcome.winner,
                     weight if rule == "combined" else None, decided, tie)


def tune_weight(outcomes: Sequence[EnsembleOutcome], groundings: Sequence[Sequence[float]],
                quality: Sequence[Sequence[float]], grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, dict[float, float]]:
    """The w of "combined" that maximises the mean quality of the selected captions over a split.

    `quality[v][i]` is how good caption i of video v is against that video's references (e.g. its
    CIDEr-D). Returns (best w, {w: mean quality}); a tie goes to the smallest w (closest to the vote)."""
    means = {}
    for w in grid:
        picks = [select(o, g, "combined", w).winner for o, g in zip(outcomes, groundings)]
        means[float(w)] = float(np.mean([q[p] for q, p in zip(quality, picks)])) if picks else 0.0
    best = max(means.values())
    return min(w for w, m in means.items() if m >= best - 1e-12), means
