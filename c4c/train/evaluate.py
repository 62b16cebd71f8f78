"""Score a zoo on a split the way the paper's Table 1 does: every single decoder, the leave-one-out
ensemble under each selecting metric, an oracle and a trivial baseline.

Conventions (SPEC 4, the reference's nlg-eval): corpus BLEU-4, METEOR 1.5, ROUGE-L and CIDEr-D on
whitespace-split captions (no PTB tokenisation); CIDEr-D's IDF comes from the references of the
evaluated split. The ensemble's *selection* uses the zoo's stored IDF (training captions), exactly
as `python -m c4c caption` does for one video, because at captioning time there are no references.

Rows: "single" (one decoder), "ensemble" (paper 2.3, one row per selecting metric), "oracle" (per
video, the decoder caption with the best CIDEr-D against that video's references: the headroom of
any selector), "baseline" (the most frequent training caption for every video). Scores x100.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["EvalRow", "Evaluation", "decode_split", "score_rows", "evaluate_models", "evaluate_zoo",
           "most_frequent_caption"]

SELECTORS = ("cider", "bleu4", "meteor", "rouge")
_SHORT = {"cider": "CIDEr-D", "bleu4": "BLEU-4", "meteor": "METEOR", "rouge": "ROUGE-L"}


@dataclass(frozen=True)
class EvalRow:
    name: str
    kind: str        # "single" | "ensemble" | "selection" | "oracle" | "baseline"
    bleu4: float     # x100, corpus BLEU-4
    meteor: float    # x100
    rouge_l: float   # x100, mean ROUGE-L
    cider: float     # x100, mean CIDEr-D, IDF from the evaluated references


@dataclass(frozen=True)
class Evaluation:
    rows: tuple[EvalRow, ...]
    disagreement: float          # share of videos whose decoders do not all give the same caption
    n_videos: int
    split: str
    beam: int
    captions: Mapping[str, Sequence[str]] | None = None  # per row name: one caption per video

    def to_json(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "disagreement": round(self.disagreement, 4),
                "n_videos": self.n_videos, "split": self.split, "beam": self.beam,
                "conventions": "corpus BLEU-4 / METEOR 1.5 / ROUGE-L / CIDEr-D x100, whitespace tokens (no PTB), "
                               "CIDEr-D IDF from the evaluated references; ensemble selection with the zoo IDF"}

    def table(self) -> str:
        """A plain-text table in the layout of the paper's Table 1."""
        width = max(len(r.name) for r in self.rows) + 2
        lines = [f"{'Model':<{width}}{'B@4':>7}{'M':>7}{'R':>7}{'C':>7}", "-" * (width + 28)]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}{r.bleu4:>7.1f}{r.meteor:>7.1f}{r.rouge_l:>7.1f}{r.cider:>7.1f}")
        lines.append(f"{self.split}: {self.n_videos} videos, beam {self.beam}; decoders disagree on "
                     f"{100 * self.disagreement:.1f}% of videos")
        return "\n".join(lines)


def most_frequent_caption(captions: Sequence[str]) -> str:
    """The most frequent (whitespace-normalised) caption; ties go to the one seen first."""
    counts = Counter(" ".join(c.split()) for c in captions)
    best = max(counts.values())
    return next(c for c in counts if counts[c] == best)


@torch.inference_mode()
def decode_split(model, features: Mapping[str, np.ndarray], video_ids: Sequence[str], tokenizer, beam: int = 5,
                 batch_size: int = 64, desc: str = "decoding", progress: bool = True) -> list[str]:
    """One caption per video (beam search with the reference semantics, or greedy for beam 1),
    videos prepared with the model's own mask convention and batched."""
    from .caption_data import pad_video
    from .decoder import decode_texts
    texts: list[str] = []
    starts = range(0, len(video_ids), batch_size)
    for s in tqdm(starts, desc=desc, leave=False, disable=not progress):
        vids, masks = zip(*(pad_video(features[v], model.cfg) for v in video_ids[s: s + batch_size]))
        texts.extend(decode_texts(model, torch.from_numpy(np.stack(vids)), torch.from_numpy(np.stack(masks)),
                                  tokenizer, beam=beam, batch_size=batch_size))
    return texts


def _row(name: str, kind: str, refs, hyps) -> EvalRow:
    from ..vote.metrics import corpus_scores
    s = corpus_scores(refs, hyps)  # idf=None: IDF from the evaluated references (reference convention)
    return EvalRow(name, kind, *(round(100.0 * s[k], 2) for k in ("bleu4", "meteor", "rouge", "cider")))


def score_rows(refs: Sequence[Sequence[str]], per_decoder: Mapping[str, Sequence[str]], idf, baseline: str,
               log: Callable[[str], None] | None = None) -> tuple[list[EvalRow], dict[str, list[str]], float]:
    """(rows, captions per row, disagreement) from every decoder's captions of the same videos."""
    from ..vote.ensemble import score_ensembles
    from ..vote.metrics import normalize, sentence_scores
    names = list(per_decoder)
    n = len(refs)
    rows, chosen = [], {}
    for name in names:
        rows.append(_row(name, "single", refs, per_decoder[name]))
        chosen[name] = list(per_decoder[name])
    by_video = [[per_decoder[name][i] for name in names] for i in range(n)]
    if len(names) >= 2:
        for metric in SELECTORS:
            if log:
                log(f"ensemble vote by {_SHORT[metric]}")
            outcomes = score_ensembles(by_video, idf, select=metric, pairwise=False)
            label = f"ensemble ({_SHORT[metric]} vote)"
            chosen[label] = [o.caption for o in outcomes]
            rows.append(_row(label, "ensemble", refs, chosen[label]))
    # Oracle: each decoder's per-video CIDEr-D against the real references (IDF of the evaluated refs).
    per = np.array([sentence_scores("cider", refs, per_decoder[name]) for name in names])  # (models, videos)
    best = per.argmax(0)  # ties -> lowest model index
    chosen["oracle"] = [by_video[i][best[i]] for i in range(n)]
    rows.append(_row("oracle (best per video)", "oracle", refs, chosen["oracle"]))
    chosen["baseline"] = [baseline] * n
    rows.append(_row("baseline (most frequent train caption)", "baseline", refs, chosen["baseline"]))
    disagreement = float(np.mean([len({normalize(c) for c in caps}) > 1 for caps in by_video])) if n else 0.0
    return rows, chosen, disagreement


def evaluate_models(models: Mapping[str, object], tokenizer, idf, features: Mapping[str, np.ndarray], ann,
                    split: str = "test", beam: int = 5, progress: bool = True,
                    log: Callable[[str], None] | None = print, text_tower=None, weight: float = 1.0,
                    tune: dict | None = None) -> Evaluation:
    """Decode `split` with every model and score all rows (see the module docstring). With a
    `text_tower`, rows per selection rule too (train/selection_eval.py; combined with `weight`), and
    when `tune` is a dict it receives the manifest's "selection" entry tuned on this split."""
    from ..errors import InputError
    ids = ann.ids(split)
    if not ids:
        raise InputError(f"{ann.source}: the {split} split is empty")
    missing = [v for v in ids if v not in features]
    if missing:
        raise InputError(f"the features file has no entry for {len(missing)} {split} video(s) (e.g. {missing[0]!r})")
    train_caps = [c for v in ann.ids("train") for c in ann.captions[v]]
    if not train_caps:
        raise InputError(f"{ann.source}: no training captions for the baseline row")
    per_decoder = {}
    for name, model in models.items():
        per_decoder[name] = decode_split(model, features, ids, tokenizer, beam=beam, desc=f"decoding {name}",
                                         progress=progress)
    refs = [list(ann.captions[v]) for v in ids]
    rows, chosen, disagreement = score_rows(refs, per_decoder, idf, most_frequent_caption(train_caps), log=log)
    if text_tower is not None and len(per_decoder) >= 2:
        from .selection_eval import caption_groundings, rule_rows, tune_selection
        groundings = caption_groundings(text_tower, features, ids, per_decoder)
        if tune is not None:
            tune.update(tune_selection(refs, per_decoder, groundings, idf, split, beam))
            weight = tune["combined_weight"]
        more, more_chosen = rule_rows(refs, per_decoder, groundings, idf, weight)
        rows[-2:-2] = more  # before the oracle and the baseline
        chosen.update(more_chosen)
    return Evaluation(tuple(rows), disagreement, len(ids), split, beam, chosen)


def evaluate_zoo(zoo_dir, features_path, annotations_path, split: str = "test", beam: int = 5,
                 progress: bool = True, log: Callable[[str], None] | None = print,
                 tune: dict | None = None) -> Evaluation:
    """Load a zoo, the features and the annotations, and evaluate (`python -m c4c evaluate`)."""
    from ..features.files import load_features
    from .caption_data import load_annotations
    from ..zoo import Zoo
    zoo = Zoo(zoo_dir)
    ann = load_annotations(annotations_path)
    feats = load_features(features_path)
    return evaluate_models(zoo.decoders, zoo.tokenizer, zoo.idf, feats, ann, split=split, beam=beam,
                           progress=progress, log=log, text_tower=zoo.text_tower,
                           weight=float(zoo.selection.get("combined_weight", 1.0)), tune=tune)
