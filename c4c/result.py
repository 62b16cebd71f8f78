"""The one result object of a captioning run. The CLI table, the JSON export, the batch JSON lines,
the app's page and its API all serialise this, so they can never disagree."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .settings import METRIC_NAMES

__all__ = ["ModelCaption", "Segment", "CaptionResult", "METRIC_NAMES", "model_captions"]

# 2: `segments`, `segmentation` (segmented captioning), `grounding`, `select`; 3: each segment's
# `selection` (segments choose by any rule), and METEOR in `loo` only where asked for (settings.scores).
SCHEMA = "c4c.result/3"
READABLE_SCHEMAS = ("c4c.result/1", "c4c.result/2", SCHEMA)  # older files load as /3 without the new fields


@dataclass(frozen=True)
class ModelCaption:
    """One decoder's caption and how the rest of the ensemble rated it."""
    name: str                      # decoder name in the zoo manifest
    caption: str                   # detokenised text
    token_ids: list[int]           # generated ids after [CLS], up to and including [SEP]
    beam_score: float              # sum of log-probs of the returned beam (no length penalty)
    loo: dict[str, float]          # metric -> leave-one-out score S_i (0..1 scale; CIDEr-D 0..10)
    rank: int                      # 1 = the winner under the selection rule
    grounding: float | None = None  # cosine of caption and video (meanP) by the text tower; None: no tower


def model_captions(names, hyps, texts, outcome, selection=None, grounding=None) -> list[ModelCaption]:
    """ModelCaptions from decoder names, their hypotheses (.ids, .score), texts and an EnsembleOutcome;
    ranked by `selection` (vote/selection.py) when given, else by the vote; `grounding`: one per caption."""
    rank = {i: r + 1 for r, i in enumerate((selection or outcome).ranking)}
    return [ModelCaption(name=n, caption=txt, token_ids=[int(i) for i in h.ids], beam_score=float(h.score),
                         loo={m: float(v[i]) for m, v in outcome.loo.items()}, rank=rank[i],
                         grounding=None if grounding is None else round(float(grounding[i]), 6))
            for i, (n, h, txt) in enumerate(zip(names, hyps, texts))]


def plain_pairwise(pairwise) -> dict[str, list[list[float | None]]]:
    return {m: [[None if v is None else float(v) for v in row] for row in mat] for m, mat in pairwise.items()}


@dataclass(frozen=True)
class Segment:
    """One time span of a segmented video, captioned by the whole ensemble from its own frames."""
    start_s: float                               # where the span starts (s)
    end_s: float                                 # ... and ends (exclusive)
    timestamps: list[float]                      # seconds of the frames fed to the decoders (<= max_frames)
    frame_indices: list[int]                     # their indices in the decoded stream
    captions: list[ModelCaption]                 # one per decoder, in zoo order
    winner: int                                  # index into `captions`
    tie_break: str
    pairwise: dict[str, list[list[float | None]]]  # as CaptionResult.pairwise
    selection: dict[str, Any] = field(default_factory=dict)  # as CaptionResult.selection (its rule: the result's)

    @property
    def caption(self) -> str:
        return self.captions[self.winner].caption


@dataclass(frozen=True)
class CaptionResult:
    """Everything about captioning one video: inputs, per-model outputs, the vote and its reasons."""
    video: str                                   # the source path or name as given
    timestamps: list[float]                      # seconds of the sampled frames fed to the decoders
    frame_indices: list[int]                     # their indices in the decoded stream
    captions: list[ModelCaption]                 # one per participating decoder, in zoo order
    winner: int                                  # index into `captions`
    metric: str                                  # the metric that chose the winner
    tie_break: str                               # the rule used when scores tie
    pairwise: dict[str, list[list[float | None]]]  # metric -> [i][j]: caption i scored against j alone
    idf: str                                     # which CIDEr-D document frequencies were used
    timings: dict[str, float]                    # stage -> seconds
    settings: dict[str, Any]                     # beam, max_frames, metric, decoders, device, ...
    zoo: dict[str, Any]                          # zoo name, description, per-model provenance
    video_info: dict[str, Any] = field(default_factory=dict)  # fps, duration, frame count, sha256
    select: str = "consensus"                    # the selection rule (settings.SELECT_RULES)
    selection: dict[str, Any] = field(default_factory=dict)  # consensus_winner, weight, scores, why no grounding
    schema: str = SCHEMA
    # Segmented runs (settings.segments != "none"): a caption per time span; the fields above then
    # describe the whole video, sampled as an unsegmented run samples it. None when not segmented.
    segments: list[Segment] | None = None
    segmentation: dict[str, Any] = field(default_factory=dict)  # mode, detector, cuts (all detected), gaps, seconds decoded

    @property
    def caption(self) -> str:
        """The ensemble's caption."""
        return self.captions[self.winner].caption

    @property
    def winner_name(self) -> str:
        return self.captions[self.winner].name

    @property
    def scored(self) -> list[str]:
        """The metrics every caption was scored with: the selecting one first, then METRIC_NAMES order
        (METEOR only where it was asked for, settings.scores; results before that have all four)."""
        have = set.intersection(*(set(c.loo) for c in self.captions)) if self.captions else set()
        return [self.metric] + [m for m in METRIC_NAMES if m != self.metric and m in have]

    def explain(self) -> str:
        """One plain-language sentence on why the winner won, naming the vote and grounding."""
        w = self.captions[self.winner]
        name = METRIC_NAMES.get(self.metric, self.metric)
        n_others = len(self.captions) - 1
        same = [c.name for c in self.captions if c.caption == w.caption and c is not w]
        vote = self.selection.get("consensus_winner", self.winner)
        g = f"; grounding {w.grounding:.3f}" if w.grounding is not None else ""
        if self.select == "grounding":
            text = (f"{w.name}'s caption won because it matches the video best (grounding {w.grounding:.3f}, "
                    f"the cosine of caption and video by the backbone's text tower); its leave-one-out {name} "
                    f"is {w.loo[self.metric]:.3f}")
        elif self.select == "combined":
            text = (f"{w.name}'s caption won on agreement and grounding together "
                    f"(z({name}) + {self.selection.get('weight', 0):g} z(grounding)): leave-one-out {name} "
                    f"{w.loo[self.metric]:.3f}{g}")
        else:
            others = sorted((c for i, c in enumerate(self.captions) if i != self.winner),
                            key=lambda c: -c.loo[self.metric])
            text = (f"{w.name}'s caption won because it agrees best with the other {n_others} "
                    f"captions: its leave-one-out {name} is {w.loo[self.metric]:.3f}")
            if others:
                text += f", ahead of {others[0].name} ({others[0].loo[self.metric]:.3f})"
            text += g
        if vote != self.winner:
            v = self.captions[vote]
            text += (f"; grounding overruled the vote, which picked {v.name} ({name} {v.loo[self.metric]:.3f}"
                     + (f", grounding {v.grounding:.3f}" if v.grounding is not None else "") + ")")
        if same:
            text += f"; {', '.join(same)} produced the very same caption"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["caption"] = self.caption  # convenience copy for consumers that read one field
        for seg, out in zip(self.segments or [], d["segments"] or []):
            out["caption"] = seg.caption
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptionResult:
        d = dict(d)
        d.pop("caption", None)
        if d.get("schema", SCHEMA) not in READABLE_SCHEMAS:
            raise ValueError(f"unknown result schema {d.get('schema')!r}, expected one of {READABLE_SCHEMAS}")
        d["schema"] = SCHEMA  # each version only adds fields: an older result reads as a /3 one without them
        d["captions"] = [ModelCaption(**c) for c in d["captions"]]
        if d.get("segments") is not None:
            d["segments"] = [Segment(**{**{k: v for k, v in s.items() if k != "caption"},
                                        "captions": [ModelCaption(**c) for c in s["captions"]]})
                             for s in d["segments"]]
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> CaptionResult:
        return cls.from_dict(json.loads(text))
