"""`c4c.train.evaluate`: the Table-1 rows (singles, ensembles, oracle, baseline) and `python -m c4c evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from c4c.cli import main
from c4c.train.evaluate import most_frequent_caption, score_rows
from c4c.features.files import save_features
from c4c.vote.idf import IdfTable
from c4c.vote.metrics import corpus_scores, sentence_scores
from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo
from c4c.train.evaluate import clip_labels
from c4c.synth import make_captions, make_scene
from c4c.synth.parse import attribute_report

REFS = [["a red ball moves left", "a red ball goes left", "the red ball slides to the left"],
        ["a blue box spins", "a blue box rotates", "the blue square spins around"],
        ["a green star grows", "a green star gets bigger", "the green star grows in size"],
        ["a yellow triangle falls", "a yellow triangle moves down", "the yellow triangle sinks"]]
# Five "decoders": three agree on most videos, two are off in different ways.
HYPS = {
    "d1": ["a red ball moves left", "a blue box spins", "a green star grows", "a yellow triangle moves down"],
    "d2": ["a red ball moves left", "a blue box spins", "a green star shrinks", "a yellow triangle falls"],
    "d3": ["a red ball moves right", "a blue box spins", "a green star grows", "a yellow triangle falls"],
    "d4": ["a red box moves left", "a blue ball spins", "a green star grows", "a yellow triangle rises"],
    "d5": ["a red ball moves left", "a red box spins", "a green star grows bigger", "a yellow triangle falls"],
}
IDF = IdfTable.from_captions([r for r in REFS] + [["a red ball", "a blue box"], ["a green star moves"]], source="test")


def test_rows_kinds_and_oracle_headroom():
    rows, chosen, disagreement = score_rows(REFS, HYPS, IDF, baseline="a red ball moves left")
    kinds = [r.kind for r in rows]
    assert kinds == ["single"] * 5 + ["ensemble"] * 4 + ["oracle", "baseline"]
    by = {r.name: r for r in rows}
    # single rows are the reference corpus scores x100
    s = corpus_scores(REFS, HYPS["d4"])
    assert by["d4"].cider == pytest.approx(100 * s["cider"], abs=0.01)
    assert by["d4"].bleu4 == pytest.approx(100 * s["bleu4"], abs=0.01)
    # the oracle picks, per video, the caption with the best CIDEr-D against the refs
    per = np.array([sentence_scores("cider", REFS, HYPS[n]) for n in HYPS])
    assert chosen["oracle"] == [HYPS[f"d{k + 1}"][i] for i, k in enumerate(per.argmax(0))]
    oracle = by["oracle (best per video)"]
    assert all(oracle.cider >= r.cider - 1e-9 for r in rows if r.kind == "single")
    # the consensus vote picks the majority caption on every video here
    assert chosen["ensemble (CIDEr-D vote)"] == ["a red ball moves left", "a blue box spins", "a green star grows",
                                                 "a yellow triangle falls"]
    # every video has at least one dissenting decoder
    assert disagreement == 1.0
    assert chosen["baseline"] == ["a red ball moves left"] * 4
    assert all(by["baseline (most frequent train caption)"].cider < r.cider for r in rows if r.kind == "ensemble")


def test_disagreement_counts_only_videos_with_differences():
    hyps = {n: [h[0], "same caption", h[2], "same caption"] for n, h in HYPS.items()}
    assert score_rows(REFS, hyps, IDF, baseline="x")[2] == 0.5


def test_most_frequent_caption_ties_go_to_the_first_seen():
    assert most_frequent_caption(["b a", "a  b", "a b ", "b a"]) == "b a"
    assert most_frequent_caption(["x", "y", "y", "x"]) == "x"


def test_evaluate_cli_json_on_a_random_zoo(tmp_path, capsys):
    spec = RandomZooSpec(max_words=6, sep_bias=2.0, n_decoders=3)
    zoo = make_random_zoo(tmp_path / "zoo", spec)
    rng = np.random.default_rng(0)
    videos, sentences, feats = [], [], {}
    for i, split in enumerate(["train"] * 4 + ["val"] + ["test"] * 5):
        vid = f"v{i}"
        videos.append({"video_id": vid, "split": split})
        sentences += [{"video_id": vid, "caption": f"w{i} w{i + 1} w3"}, {"video_id": vid, "caption": "w1 w2 w3"}]
        feats[vid] = rng.normal(size=(int(rng.integers(2, 8)), spec.vision.embed_dim)).astype(np.float32)
    (tmp_path / "ann.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    save_features(tmp_path / "f.npz", feats)
    rc = main(["evaluate", "--zoo", str(zoo), "--features", str(tmp_path / "f.npz"), "--annotations",
               str(tmp_path / "ann.json"), "--beam", "2", "--json", "--quiet", "--threads", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert [r["kind"] for r in rows] == ["single"] * 3 + ["ensemble"] * 4 + ["oracle", "baseline"]
    assert [r["name"] for r in rows[:3]] == ["random1", "random2", "random3"]
    assert "attribute_oracle" not in out  # ids that are not synthetic: no labels, no attribute columns
    for r in rows:
        assert set(r) == {"name", "kind", "bleu4", "meteor", "rouge_l", "cider"}
        assert all(0.0 <= r[k] <= 1000.0 for k in ("bleu4", "meteor", "rouge_l", "cider"))
    assert 0.0 <= out["disagreement"] <= 1.0 and out["n_videos"] == 5
    base = rows[-1]
    assert base["rouge_l"] > 0  # "w1 w2 w3" (the most frequent train caption) overlaps every video's refs


def test_rows_carry_attribute_accuracies_with_labels():
    labels = [{"objects": [{"shape": "circle", "colour": "red", "size": "small", "event": "move", "direction": "left"}]},
              {"objects": [{"shape": "square", "colour": "blue", "size": "large", "event": "spin"}]},
              {"objects": [{"shape": "star", "colour": "green", "size": None, "event": "grow"}]},
              {"objects": [{"shape": "triangle", "colour": "yellow", "size": "small", "event": "move",
                            "direction": "down"}]}]
    rows, chosen, _ = score_rows(REFS, HYPS, IDF, baseline="a red ball moves left", labels=labels)
    by = {r.name: r.attributes for r in rows}
    assert by["d1"]["all_three"] == 100.0 and by["d1"]["n_one"] == 4 and by["d1"]["both"] is None
    # d3: "moves right" for left; d4: box/ball swapped and "rises" for a fall
    assert (by["d3"]["event"], by["d3"]["shape"]) == (75.0, 100.0)
    assert (by["d4"]["shape"], by["d4"]["event"], by["d4"]["all_three"]) == (50.0, 75.0, 25.0)
    assert by["d5"]["colour"] == 75.0
    assert by["baseline (most frequent train caption)"]["all_three"] == 25.0
    assert len(rows) == len(chosen)  # rows in the order of `chosen`'s keys
    assert all(r.attributes == attribute_report(chosen[key], labels) for r, key in zip(rows, chosen))
    assert score_rows(REFS, HYPS, IDF, baseline="x")[0][0].attributes is None


def test_clip_labels_from_annotations_or_the_generator(tmp_path):
    stored = {"objects": [{"shape": "star", "colour": "red", "size": "small", "event": "spin"}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"videos": [{"video_id": "test_00001", "label": stored}, {"video_id": "test_00002"}],
                                "sentences": []}))
    labels = clip_labels(["test_00001", "test_00002"], path)
    assert labels[0] == stored and labels[1] == make_scene("test_00002").label()
    assert clip_labels(["video7", "test_00001"], path) is None  # real ids: no attribute columns
    assert clip_labels(["test_00003"], None) == [make_scene("test_00003").label()]


def test_evaluate_cli_attribute_table_on_synthetic_ids(tmp_path, capsys):
    spec = RandomZooSpec(max_words=6, sep_bias=2.0, n_decoders=2)
    zoo = make_random_zoo(tmp_path / "zoo", spec)
    rng = np.random.default_rng(0)
    videos, sentences, feats = [], [], {}
    ids = [f"train_{i:05d}" for i in range(3)] + ["val_00000"] + [f"test_{i:05d}" for i in range(6)]
    for vid in ids:
        scene = make_scene(vid)
        videos.append({"video_id": vid, "split": vid.split("_")[0], "label": scene.label()})
        sentences += [{"video_id": vid, "caption": c} for c in make_captions(scene, 3)]
        feats[vid] = rng.normal(size=(3, spec.vision.embed_dim)).astype(np.float32)
    (tmp_path / "ann.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    save_features(tmp_path / "f.npz", feats)
    args = ["evaluate", "--zoo", str(zoo), "--features", str(tmp_path / "f.npz"), "--annotations",
            str(tmp_path / "ann.json"), "--beam", "1", "--quiet", "--threads", "1"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    keys = {"n_one", "n_two", "parsed", "colour", "shape", "event", "all_three", "size", "size_stated", "both"}
    assert all(set(r["attributes"]) == keys for r in out["rows"]) and set(out["attribute_oracle"]) == keys
    n_one = sum(len(make_scene(v).label()["objects"]) == 1 for v in ids if v.startswith("test"))
    assert out["attribute_oracle"]["n_one"] == n_one and out["rows"][0]["attributes"]["n_two"] == 6 - n_one
    # random decoders emit word-piece soup: nothing parses, so nothing is right
    assert out["rows"][0]["attributes"]["parsed"] == 0.0 and out["attribute_oracle"]["colour"] in (0.0, None)
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "Attributes (%)" in table and "attribute oracle (any decoder right)" in table
