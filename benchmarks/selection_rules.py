"""The selection rules (consensus | grounding | combined) measured on a synthetic split: prints the
val-tuned w and the test rows per rule, the single decoders and the oracle (README, "Grounding and the
selection rules"). The decoders read `DEC_FEATS` (their own backbone's features); grounding uses
`GROUND_FEATS` (features of the image tower that `TOWER` was trained with; the same file for a zoo's own).

    python benchmarks/selection_rules.py ZOO DEC_FEATS GROUND_FEATS TOWER MSRVTT_data.json BEAM OUT.json

TOWER: a zoo's text_tower.safetensors, or `train backbone`'s clip_full.safetensors. Also writes
OUT_captions.json (every row's caption per test video). Measured 2026-12-08 with
/tmp/zoo-new/{demo,work/features.npz,work/backbone/clip_full.safetensors}, beam 5.
"""
import json
import sys

import numpy as np
import torch

from c4c.features.files import load_features
from c4c.train.caption_data import load_annotations
from c4c.train.evaluate import _row, decode_split
from c4c.train.selection_eval import caption_groundings, rule_rows, tune_selection
from c4c.vision.text_tower import TextTower
from c4c.vote.ensemble import score_ensembles
from c4c.vote.metrics import sentence_scores
from c4c.vote.selection import select
from c4c.zoo import Zoo


def main(zoo_dir, dec_feats, ground_feats, tower_file, ann_path, beam, out):
    beam = int(beam)
    torch.set_num_threads(1)
    zoo, ann = Zoo(zoo_dir), load_annotations(ann_path)
    fd, fg = load_features(dec_feats), load_features(ground_feats)
    tower = TextTower.from_file(tower_file)
    res = {}
    for split in ("val", "test"):
        ids = [v for v in ann.ids(split) if v in fd and v in fg]
        per = {n: decode_split(m, fd, ids, zoo.tokenizer, beam=beam, progress=False) for n, m in zoo.decoders.items()}
        res[split] = (ids, per, [list(ann.captions[v]) for v in ids], caption_groundings(tower, fg, ids, per))
    ids, per, refs, g = res["val"]
    sel = tune_selection(refs, per, g, zoo.idf, "val", beam)
    print("selection:", json.dumps(sel), flush=True)
    ids, per, refs, g = res["test"]
    rows, chosen = rule_rows(refs, per, g, zoo.idf, sel["combined_weight"])
    names = list(per)
    chosen.update({n: list(per[n]) for n in names})
    rows += [_row(n, "single", refs, per[n]) for n in names]
    best = np.array([sentence_scores("cider", refs, per[n]) for n in names]).argmax(0)  # ties: lowest index
    chosen["oracle"] = [per[names[b]][i] for i, b in enumerate(best)]
    rows.append(_row("oracle (best per video)", "oracle", refs, chosen["oracle"]))
    json.dump({"ids": ids, "chosen": chosen}, open(out.replace(".json", "_captions.json"), "w"))
    outs = score_ensembles([[per[n][i] for n in names] for i in range(len(ids))], zoo.idf, select="cider",
                           pairwise=False)
    over = {r: float(np.mean([select(o, gg, r, sel["combined_weight"]).overruled for o, gg in zip(outs, g)]))
            for r in ("grounding", "combined")}
    print(f"{'row':<42}{'B@4':>7}{'M':>7}{'R':>7}{'C':>7}")
    for r in rows:
        print(f"{r.name:<42}{r.bleu4:>7.1f}{r.meteor:>7.1f}{r.rouge_l:>7.1f}{r.cider:>7.1f}")
    print("test videos", len(ids), "share where the rule overruled the vote:", over)
    json.dump({"selection": sel, "rows": [r.__dict__ for r in rows], "n_test": len(ids), "overruled": over},
              open(out, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:8])
