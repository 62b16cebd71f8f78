"""Does a frame-level grounding select better than CLIP4Clip's meanP one? (issue: "and, if it helps
selection, a frame-level (EMScore-like) variant").

    python benchmarks/grounding_variants.py ZOO FEATURES MSRVTT_data.json [BEAM]

For the val and test splits of a synthetic zoo build (FEATURES: the build's features.npz, the frames
the decoders and the text tower were trained with), every decoder's caption is scored three ways
against the video's 1-fps frame embeddings:
  meanP       cosine with the L2-normalised mean of the L2-normalised frames (what c4c ships)
  frame-mean  mean over frames of the per-frame cosines (EMScore's coarse idea, at frame level)
  frame-max   the best single frame's cosine (a caption true of one moment)
Per variant: the grounding-only rule and the combined rule with w tuned on val (c4c.vote.selection),
then the test split's corpus CIDEr-D and attribute accuracies (c4c.synth.parse), beside the vote.

frame-mean ranks a video's captions exactly as meanP does (the mean of per-frame cosines is the text's
cosine with the mean unit frame, i.e. meanP's cosine times a per-video constant), so it selects the
same captions; the script shows it, and frame-max is the variant that can differ.
"""
import json
import sys

import numpy as np
import torch

from c4c.features.files import load_features
from c4c.synth.parse import attribute_report
from c4c.train.caption_data import load_annotations
from c4c.train.evaluate import _row, clip_labels, decode_split
from c4c.vote.ensemble import score_ensembles
from c4c.vote.grounding import video_embedding
from c4c.vote.metrics import sentence_scores
from c4c.vote.selection import select, tune_weight
from c4c.zoo import Zoo


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


VARIANTS = {
    "meanP": lambda frames, texts: _unit(texts) @ video_embedding(frames),
    "frame-mean": lambda frames, texts: (_unit(texts) @ _unit(frames).T).mean(axis=1),
    "frame-max": lambda frames, texts: (_unit(texts) @ _unit(frames).T).max(axis=1),
}


def main(zoo_dir, feats_path, ann_path, beam="5"):
    torch.set_num_threads(1)
    zoo, ann, feats = Zoo(zoo_dir), load_annotations(ann_path), load_features(feats_path)
    names = list(zoo.decoders)
    data = {}
    for split in ("val", "test"):
        ids = ann.ids(split)
        per = {n: decode_split(m, feats, ids, zoo.tokenizer, beam=int(beam), progress=False) for n, m in zoo.decoders.items()}
        caps = [[per[n][i] for n in names] for i in range(len(ids))]
        refs = [list(ann.captions[v]) for v in ids]
        distinct = sorted({c for cs in caps for c in cs})
        emb = dict(zip(distinct, zoo.text_tower.encode(distinct)))
        outcomes = score_ensembles(caps, zoo.idf, select="cider", pairwise=False)
        quality = np.array([sentence_scores("cider", refs, per[n]) for n in names]).T
        data[split] = (ids, caps, refs, emb, outcomes, quality)
    ids, caps, refs, _, outcomes, _ = data["test"]
    labels = clip_labels(ids, ann_path)
    table = []

    def row(name, picks):
        chosen = [caps[i][p] for i, p in enumerate(picks)]
        r = _row(name, "selection", refs, chosen)
        a = attribute_report(chosen, labels) if labels else {}
        table.append({"row": name, "cider": r.cider, **{k: a.get(k) for k in ("colour", "shape", "event", "all_three", "both")}})

    row("consensus (CIDEr-D vote)", [o.winner for o in outcomes])
    for variant, fn in VARIANTS.items():
        g = {s: [[float(x) for x in fn(feats[v], np.stack([d[3][c] for c in d[1][i]]))] for i, v in enumerate(d[0])]
             for s, d in data.items()}
        v_ids, v_caps, v_refs, _, v_out, v_q = data["val"]
        w, _ = tune_weight(v_out, g["val"], v_q.tolist())
        val_ground = float(np.mean([v_q[i, select(o, gg, "grounding").winner] for i, (o, gg) in enumerate(zip(v_out, g["val"]))]))
        val_comb = float(np.mean([v_q[i, select(o, gg, "combined", w).winner] for i, (o, gg) in enumerate(zip(v_out, g["val"]))]))
        print(f"{variant}: val mean CIDEr-D grounding {100 * val_ground:.1f}, combined (w={w:g}) {100 * val_comb:.1f}", flush=True)
        row(f"{variant}: grounding", [select(o, gg, "grounding").winner for o, gg in zip(outcomes, g["test"])])
        row(f"{variant}: combined (w={w:g}, val)", [select(o, gg, "combined", w).winner for o, gg in zip(outcomes, g["test"])])
    print(f"{'test split, ' + str(len(ids)) + ' videos':<40}{'CIDEr-D':>8}{'colour':>8}{'shape':>8}{'event':>8}{'all3':>8}{'both':>8}")
    for t in table:
        print(f"{t['row']:<40}" + "".join(f"{t[k]:>8.1f}" if t[k] is not None else f"{'-':>8}"
                                          for k in ("cider", "colour", "shape", "event", "all_three", "both")))
    print(json.dumps(table))


if __name__ == "__main__":
    main(*sys.argv[1:5])
