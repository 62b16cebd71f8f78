"""Score a zoo on a split the way the paper's Table 1 does: every single decoder, the leave-one-out
ensemble under each selecting metric, an oracle and a trivial baseline.

Conventions (docs/reference.md 4, the reference's nlg-eval): corpus BLEU-4, METEOR 1.5, ROUGE-L and CIDEr-D on
whitespace-split captions (no PTB tokenisation); CIDEr-D's IDF comes from the references of the
evaluated split. The ensemble's *selection* uses the zoo's stored IDF (training captions), exactly
as `python -m c4c caption` does for one video, because at captioning time there are no references.

Rows: "single" (one decoder), "ensemble" (paper 2.3, one row per selecting metric), "oracle" (per
video, the decoder caption with the best CIDEr-D against that video's references: the headroom of
any selector), "baseline" (the most frequent training caption for every video). Scores x100.

Attributes: on synthetic clips every row also gets the accuracies of `c4c.synth.parse` (colour,
shape, event with direction, size, both objects of two-object clips), because CIDEr-D on templated
captions rewards wrong captions that share the template's n-grams; `attribute_oracle` is right on a
clip's attribute when any decoder is. Labels come from the annotations' `label` fields, or from
the generator for synthetic ids; other corpora (real MSR-VTT) get no attribute columns.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["EvalRow", "Evaluation", "decode_split", "score_rows", "evaluate_models", "evaluate_zoo",
           "most_frequent_caption", "clip_labels"]

SELECTORS = ("cider", "bleu4", "meteor", "rouge")
_SHORT = {"cider": "CIDEr-D", "bleu4": "BLEU-4", "meteor": "METEOR", "rouge": "ROUGE-L"}
_SYNTH_ID = re.compile(r"(train|val|test)_\d{5}")  # c4c.synth.split_ids
# (column title, attribute_report key) of the attribute table
_ATTR_COLUMNS = (("Col", "colour"), ("Shape", "shape"), ("Event", "event"), ("All3", "all_three"),
                 ("Size", "size"), ("Sized", "size_stated"), ("Both2", "both"), ("Parsed", "parsed"))


@dataclass(frozen=True)
class EvalRow:
    name: str
    kind: str        # "single" | "ensemble" | "selection" | "oracle" | "baseline"
    bleu4: float     # x100, corpus BLEU-4
    meteor: float    # x100
    rouge_l: float   # x100, mean ROUGE-L
    cider: float     # x100, mean CIDEr-D, IDF from the evaluated references
    # c4c.synth.parse.attribute_report of the row's captions; None without labels (not synthetic clips)
    attributes: Mapping[str, float | int | None] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class Evaluation:
    rows: tuple[EvalRow, ...]
    disagreement: float          # share of videos whose decoders do not all give the same caption
    n_videos: int
    split: str
    beam: int
    captions: Mapping[str, Sequence[str]] | None = None  # per row name: one caption per video
    attribute_oracle: Mapping[str, float | int | None] | None = None  # any decoder right, per clip

    def to_json(self) -> dict:
        rows = [{k: v for k, v in asdict(r).items() if k != "attributes" or v is not None} for r in self.rows]
        out = {"rows": rows, "disagreement": round(self.disagreement, 4),
               "n_videos": self.n_videos, "split": self.split, "beam": self.beam,
               "conventions": "corpus BLEU-4 / METEOR 1.5 / ROUGE-L / CIDEr-D x100, whitespace tokens (no PTB), "
                              "CIDEr-D IDF from the evaluated references; ensemble selection with the zoo IDF"}
        if self.attribute_oracle is not None:
            out["attribute_oracle"] = dict(self.attribute_oracle)
            out["attribute_conventions"] = (
                "c4c.synth.parse against each clip's label, % x100: colour/shape/event/all_three on one-object "
                "clips (event with direction, stated entry/exit side, target colour); size among captions stating "
                "one, size_stated the share that do; both: two-object clips with both objects' colour and shape "
                "right; an unparsed caption is wrong; attribute_oracle: any decoder right on the clip")
        return out

    def table(self) -> str:
        """A plain-text table in the layout of the paper's Table 1."""
        width = max(len(r.name) for r in self.rows) + 2
        lines = [f"{'Model':<{width}}{'B@4':>7}{'M':>7}{'R':>7}{'C':>7}", "-" * (width + 28)]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}{r.bleu4:>7.1f}{r.meteor:>7.1f}{r.rouge_l:>7.1f}{r.cider:>7.1f}")
        lines.append(f"{self.split}: {self.n_videos} videos, beam {self.beam}; decoders disagree on "
                     f"{100 * self.disagreement:.1f}% of videos")
        if self.attribute_oracle is not None:
            lines += ["", self._attribute_table()]
        return "\n".join(lines)

    def _attribute_table(self) -> str:
        named = [(r.name, r.attributes) for r in self.rows if r.attributes is not None]
        named.append(("attribute oracle (any decoder right)", self.attribute_oracle))
        width = max(len(n) for n, _ in named) + 2
        cell = lambda v: f"{'-' if v is None else f'{v:.1f}':>7}"  # noqa: E731
        lines = [f"{'Attributes (%)':<{width}}" + "".join(f"{t:>7}" for t, _ in _ATTR_COLUMNS),
                 "-" * (width + 7 * len(_ATTR_COLUMNS))]
        lines += [f"{n:<{width}}" + "".join(cell(a[k]) for _, k in _ATTR_COLUMNS) for n, a in named]
        a = self.attribute_oracle
        lines.append(f"{a['n_one']} one-object clips (Col/Shape/Event/All3/Size; Sized = share stating a size), "
                     f"{a['n_two']} two-object clips (Both2 = both objects' colour and shape); "
                     "parsed against the clips' labels by c4c.synth.parse")
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


def clip_labels(video_ids: Sequence[str], annotations_path: str | Path | None = None) -> list[dict] | None:
    """Each video's label: the annotations' `label` field (`python -m c4c synth --annotations`), else
    the generator's for a synthetic id; None when any video has neither (e.g. real MSR-VTT)."""
    stored: dict[str, dict] = {}
    if annotations_path and Path(annotations_path).is_file():
        data = json.loads(Path(annotations_path).read_text(encoding="utf-8"))
        stored = {str(v["video_id"]): v["label"] for v in data.get("videos", ()) if isinstance(v.get("label"), dict)}
    if not all(v in stored or _SYNTH_ID.fullmatch(v) for v in video_ids):
        return None
    from ..synth import make_scene
    return [stored[v] if v in stored else make_scene(v).label() for v in video_ids]


def score_rows(refs: Sequence[Sequence[str]], per_decoder: Mapping[str, Sequence[str]], idf, baseline: str,
               log: Callable[[str], None] | None = None,
               labels: Sequence[dict] | None = None) -> tuple[list[EvalRow], dict[str, list[str]], float]:
    """(rows, captions per row, disagreement) from every decoder's captions of the same videos;
    with `labels` (one per video) every row also carries its attribute accuracies."""
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
    if labels is not None:
        from ..synth.parse import attribute_report
        # `chosen` was filled in the order of `rows` (its keys are short: "oracle", not the row's name)
        rows = [replace(r, attributes=attribute_report(chosen[key], labels)) for r, key in zip(rows, chosen)]
    return rows, chosen, disagreement


def evaluate_models(models: Mapping[str, object], tokenizer, idf, features: Mapping[str, np.ndarray], ann,
                    split: str = "test", beam: int = 5, progress: bool = True,
                    log: Callable[[str], None] | None = print, labels: Sequence[dict] | None = None,
                    text_tower=None, weight: float = 1.0, tune: dict | None = None) -> Evaluation:
    """Decode `split` with every model and score all rows (see the module docstring). `labels`
    (one per video of the split) default to `clip_labels` of the annotations' source file. With a
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
    if labels is None:
        labels = clip_labels(ids, ann.source)
    rows, chosen, disagreement = score_rows(refs, per_decoder, idf, most_frequent_caption(train_caps), log=log,
                                            labels=labels)
    if text_tower is not None and len(per_decoder) >= 2:
        from .selection_eval import caption_groundings, rule_rows, tune_selection
        groundings = caption_groundings(text_tower, features, ids, per_decoder)
        if tune is not None:
            tune.update(tune_selection(refs, per_decoder, groundings, idf, split, beam))
            weight = tune["combined_weight"]
        more, more_chosen = rule_rows(refs, per_decoder, groundings, idf, weight)
        if labels is not None:
            from ..synth.parse import attribute_report
            more = [replace(r, attributes=attribute_report(more_chosen[r.name], labels)) for r in more]
        rows[-2:-2] = more  # before the oracle and the baseline
        chosen.update(more_chosen)
    oracle = None
    if labels is not None:
        from ..synth.parse import oracle_report
        oracle = oracle_report([per_decoder[name] for name in per_decoder], labels)
    return Evaluation(tuple(rows), disagreement, len(ids), split, beam, chosen, oracle)


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
