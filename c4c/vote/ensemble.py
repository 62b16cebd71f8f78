"""The CLIP4Caption ensemble: pick one caption out of n decoders' captions for a video by
leave-one-out consensus (paper 2.3; reference.md 6).

S_i = metric(refs = {T_j : j != i}, hyp = T_i), and the caption with the highest S_i wins. This is
minimum-Bayes-risk selection with a uniform distribution over the candidates (Kumar & Byrne 2004;
Devlin et al. 2015's "consensus caption"). CIDEr-D must take its IDF from a corpus (`IdfTable`):
on one video's candidates alone every n-gram has idf 0 and every score is 0.

Scores are computed on whitespace-normalised captions; each candidate's references are passed in
sorted order, so a permutation of the input permutes every score exactly (no rounding drift).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..settings import METRICS as _CANONICAL  # fixed order of the tie-break sum
from .idf import IdfTable
from .metrics import METRICS, normalize, sentence_scores

__all__ = ["EnsembleOutcome", "score_ensemble", "score_ensembles", "DEFAULT_METRICS", "TIE_TOLERANCE"]

DEFAULT_METRICS = _CANONICAL
TIE_TOLERANCE = 1e-12  # scores closer than this are equal (absolute; CIDEr-D is at most 10)

TIE_BREAK_RULE = (
    "highest leave-one-out score under the selecting metric; scores within 1e-12 of each other "
    "(chained) tie, and ties go to the highest sum of the other requested metrics' scores "
    "(summed in the order cider, bleu4, meteor, rouge; again within 1e-12), then to the lowest model index"
)


@dataclass(frozen=True)
class EnsembleOutcome:
    """The vote over one video's candidate captions.

    `loo[m][i]` is caption i scored by metric m against the other n-1 captions; `pairwise[m][i][j]`
    is caption i scored against caption j alone (diagonal None). `ranking` lists model indices best
    first; `winner == ranking[0]`; `tied` are the indices whose selecting-metric score ties the
    winner's (winner included); `decided_by` and `tie_break` say what decided this vote.
    """

    captions: tuple[str, ...]  # as given, one per model
    loo: dict[str, tuple[float, ...]]
    pairwise: dict[str, tuple[tuple[float | None, ...], ...]]  # empty when not computed
    winner: int
    select: str
    ranking: tuple[int, ...]
    tied: tuple[int, ...]
    decided_by: str  # "select": a clear winner; "others": the sum of the other metrics; "index": lowest index
    tie_break: str
    idf: str  # which document frequencies CIDEr-D used
    notes: tuple[str, ...] = field(default=())

    @property
    def caption(self) -> str:
        """The winning caption."""
        return self.captions[self.winner]

    def reselect(self, select: str) -> EnsembleOutcome:
        """The same vote decided by another of the computed metrics, without rescoring (e.g. one
        `score_ensembles` call, then one outcome per selecting metric)."""
        if select not in self.loo:
            raise InputError(f"{select!r} was not computed for this vote; computed: {', '.join(self.loo)}")
        return _decide(self.captions, self.loo, self.pairwise, select, self.idf)

    def to_dict(self) -> dict:
        """Plain JSON-ready form (lists, no tuples)."""
        return {
            "captions": list(self.captions),
            "loo": {m: list(v) for m, v in self.loo.items()},
            "pairwise": {m: [list(row) for row in rows] for m, rows in self.pairwise.items()},
            "winner": self.winner,
            "caption": self.caption,
            "select": self.select,
            "ranking": list(self.ranking),
            "tied": list(self.tied),
            "decided_by": self.decided_by,
            "tie_break": self.tie_break,
            "tie_break_rule": TIE_BREAK_RULE,
            "idf": self.idf,
            "notes": list(self.notes),
        }


def _check_args(videos: Sequence[Sequence[str]], idf: IdfTable | None, select: str, metrics: Sequence[str]) -> tuple[str, ...]:
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics or len(set(metrics)) != len(metrics):
        raise InputError(f"metrics must be distinct names from {', '.join(METRICS)}; got {list(metrics)}")
    if select not in metrics:
        raise InputError(f"the selecting metric {select!r} must be one of the metrics computed {list(metrics)}")
    if "cider" in metrics and idf is None:
        raise InputError(
            "CIDEr-D needs corpus document frequencies: pass an IdfTable (the zoo's idf.json, or build one with "
            "`python -m c4c idf`); IDF taken from one video's candidates alone makes every score 0"
        )
    if idf is not None and not isinstance(idf, IdfTable):
        raise InputError(f"idf must be an IdfTable or None, got {type(idf).__name__}")
    for v, caps in enumerate(videos):
        if isinstance(caps, str) or len(caps) < 2:
            raise InputError(f"video {v}: the ensemble needs a list of at least 2 captions (3+ for a meaningful vote), got {caps!r}")
        bad = [c for c in caps if not isinstance(c, str)]
        if bad:
            raise InputError(f"video {v}: captions must be strings, got {bad[0]!r}")
    return metrics


def _groups(order: list[int], key: list[float]) -> list[list[int]]:
    """Split `order` (already sorted by `key`, descending) into runs whose neighbours differ by
    less than TIE_TOLERANCE. Runs depend only on the multiset of values, not on input order."""
    runs: list[list[int]] = []
    for i in order:
        if runs and key[runs[-1][-1]] - key[i] < TIE_TOLERANCE:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _rank(primary: list[float], secondary: list[float]) -> tuple[list[int], list[int], str]:
    """Ranking (best first), the winner's tie group on `primary`, and which rule decided first place."""
    ranking: list[int] = []
    tied: list[int] = []
    decided = ""
    for g1 in _groups(sorted(range(len(primary)), key=lambda i: (-primary[i], i)), primary):
        for g2 in _groups(sorted(g1, key=lambda i: (-secondary[i], i)), secondary):
            if not ranking:
                tied = sorted(g1)
                decided = "select" if len(g1) == 1 else ("others" if len(g2) == 1 else "index")
            ranking.extend(sorted(g2))
    return ranking, tied, decided


def _describe(decided: str, winner: int, tied: list[int], select: str, others: list[str]) -> str:
    if decided == "select":
        return f"model {winner} has the highest {select} score"
    group = ", ".join(map(str, sorted(tied)))
    other = "+".join(others) if others else "(no other metric)"
    if decided == "others":
        return f"models {group} tie on {select}; model {winner} has the highest sum of {other}"
    return f"models {group} tie on {select}; the tie on the sum of {other} goes to the lowest index, model {winner}"


def _row_max(flat: list[float], sizes: list[int]) -> list[float]:
    """Per candidate, the max over its n-1 pairwise scores (flat rows, as built in score_ensembles)."""
    out, pos = [], 0
    for n in sizes:
        for _ in range(n):
            out.append(max(flat[pos : pos + n - 1]))
            pos += n - 1
    return out


def score_ensembles(
    videos: Sequence[Sequence[str]],
    idf: IdfTable | None,
    select: str = "cider",
    metrics: Sequence[str] = DEFAULT_METRICS,
    pairwise: bool = True,
) -> list[EnsembleOutcome]:
    """`score_ensemble` for many videos at once: one scorer call per metric for the whole corpus
    (the leave-one-out and pairwise items of every video together). Results are identical to
    scoring each video on its own, since CIDEr-D's IDF is fixed by `idf` and the other metrics
    score each sentence independently. `pairwise=False` leaves `pairwise` empty and skips those
    items for BLEU, ROUGE-L and CIDEr-D (METEOR derives its leave-one-out scores from them anyway)."""
    metrics = _check_args(videos, idf, select, metrics)
    norm = [[normalize(c) for c in caps] for caps in videos]
    loo_h = [c for caps in norm for c in caps]
    loo_r = [sorted(caps[:i] + caps[i + 1 :]) for caps in norm for i in range(len(caps))]
    pair_h = [caps[i] for caps in norm for i in range(len(caps)) for j in range(len(caps)) if i != j]
    pair_r = [[caps[j]] for caps in norm for i in range(len(caps)) for j in range(len(caps)) if i != j]

    loo_flat: dict[str, list[float]] = {}
    pair_flat: dict[str, list[float]] = {}
    for m in metrics:
        m_idf = idf if m == "cider" else None
        if m == "meteor":
            # METEOR 1.5 scores several references by the best single one, so S_i = max_j pairwise[i][j]
            # exactly (tested); single-reference segments cost the jar ~6x less than multi-reference ones
            pair_flat[m] = sentence_scores(m, pair_r, pair_h)
            loo_flat[m] = _row_max(pair_flat[m], [len(c) for c in norm])
        elif pairwise:
            both = sentence_scores(m, loo_r + pair_r, loo_h + pair_h, idf=m_idf)
            loo_flat[m], pair_flat[m] = both[: len(loo_h)], both[len(loo_h) :]
        else:
            loo_flat[m] = sentence_scores(m, loo_r, loo_h, idf=m_idf)

    idf_text = idf.describe() if idf is not None else "none (CIDEr-D not computed)"
    outcomes: list[EnsembleOutcome] = []
    pos = ppos = 0
    for caps in videos:
        n = len(caps)
        loo = {m: tuple(loo_flat[m][pos : pos + n]) for m in metrics}
        pos += n
        pair: dict[str, tuple[tuple[float | None, ...], ...]] = {}
        if pairwise:
            for m in metrics:
                it = iter(pair_flat[m][ppos : ppos + n * (n - 1)])
                pair[m] = tuple(tuple(None if i == j else next(it) for j in range(n)) for i in range(n))
        ppos += n * (n - 1)
        outcomes.append(_decide(tuple(caps), loo, pair, select, idf_text))
    return outcomes


def _decide(captions: tuple[str, ...], loo: dict, pair: dict, select: str, idf_text: str) -> EnsembleOutcome:
    n = len(captions)
    others = [m for m in _CANONICAL if m in loo and m != select]
    # summed in a fixed order so the tie-break value does not depend on how metrics were listed
    secondary = [sum((loo[m][i] for m in others), 0.0) for i in range(n)]
    ranking, tied, decided = _rank(list(loo[select]), secondary)
    notes = []
    if n == 2:
        notes.append("only 2 candidates: each is scored against the other alone, so the vote says little (3 or more are needed)")
    return EnsembleOutcome(
        captions=captions,
        loo=loo,
        pairwise=pair,
        winner=ranking[0],
        select=select,
        ranking=tuple(ranking),
        tied=tuple(tied),
        decided_by=decided,
        tie_break=_describe(decided, ranking[0], tied, select, others),
        idf=idf_text,
        notes=tuple(notes),
    )


def score_ensemble(
    captions: Sequence[str],
    idf: IdfTable | None,
    select: str = "cider",
    metrics: Sequence[str] = DEFAULT_METRICS,
    pairwise: bool = True,
) -> EnsembleOutcome:
    """Choose one of `captions` (one per model, n >= 2; n >= 3 for a meaningful vote) by
    leave-one-out consensus under `select`, computing every metric in `metrics`.

    Tie-break (deterministic): the highest leave-one-out score under `select` wins; scores within
    1e-12 of each other (chained) tie, and ties go to the highest sum of the other requested
    metrics' scores (summed in the order cider, bleu4, meteor, rouge; again within 1e-12), then to
    the lowest model index. CIDEr-D uses the document frequencies of `idf`, which is required when
    "cider" is among `metrics`. Empty captions are allowed and score 0 as hypotheses. Pure: the
    same input gives the same output.
    """
    if isinstance(captions, str):
        raise InputError("score_ensemble wants a list of captions (one per model), got a single string")
    return score_ensembles([captions], idf, select=select, metrics=metrics, pairwise=pairwise)[0]
