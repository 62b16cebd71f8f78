"""The whole zoo pipeline in miniature (`python -m c4c build-zoo --size tiny`): synthetic data, backbone,
features, vocab, IDF, five decoders, evaluation and manifest, then the zoo loads and captions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from c4c.cli import main
from c4c.train.decoder import read_metadata
from c4c.zoo import Zoo, read_manifest


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    rc = main(["build-zoo", "--size", "tiny", "--out", str(root / "zoo"), "--work", str(root / "work"),
               "--threads", "1", "--quiet"])
    assert rc == 0
    return root


def test_manifest_and_files(tiny_zoo):
    m = read_manifest(tiny_zoo / "zoo")  # validates that every named file exists
    assert "synthetic" in m["description"] and "NOT" in m["description"]
    assert [d["name"] for d in m["decoders"]] == ["d1", "d2", "d3", "d4", "d5"]
    hyper = [read_metadata(tiny_zoo / "zoo" / d["file"])["provenance"]["hyper"] for d in m["decoders"]]
    assert len({h["seed"] for h in hyper}) == 5
    assert len({(h["dropout"], h["lr"], h["epochs"], h["captions_per_video"]) for h in hyper}) >= 4
    for d in m["decoders"]:
        assert d["settings"] == {"mask": "frames", "max_frames": 20, "heads": 1}
        assert d["provenance"]["layout"].startswith("TE 1 + TD 3")
    assert set(m["build"]["stage_seconds"]) >= {"backbone", "features", "decoders", "evaluate"}


def test_evaluation_has_every_row(tiny_zoo):
    ev = read_manifest(tiny_zoo / "zoo")["evaluation"]
    kinds = [r["kind"] for r in ev["rows"]]
    assert kinds == ["single"] * 5 + ["ensemble"] * 4 + ["selection"] * 3 + ["oracle", "baseline"]
    # the consensus rule is the CIDEr-D vote, row for row
    by_name = {r["name"]: r for r in ev["rows"]}
    cons = by_name["select: consensus (CIDEr-D vote)"]
    assert {k: v for k, v in cons.items() if k not in ("name", "kind")} == \
        {k: v for k, v in by_name["ensemble (CIDEr-D vote)"].items() if k not in ("name", "kind")}
    assert ev["n_videos"] == 10 and 0.0 <= ev["disagreement"] <= 1.0
    for r in ev["rows"]:
        assert all(np.isfinite(r[k]) and r[k] >= 0 for k in ("bleu4", "meteor", "rouge_l", "cider"))
    singles = [r["cider"] for r in ev["rows"] if r["kind"] == "single"]
    oracle = next(r for r in ev["rows"] if r["kind"] == "oracle")
    assert oracle["cider"] >= max(singles) - 1e-6


def test_text_tower_and_tuned_selection(tiny_zoo):
    m = read_manifest(tiny_zoo / "zoo")
    assert m["text_tower"]["file"] == "text_tower.safetensors" and m["text_tower"]["tokenizer"] == "words"
    sel = m["selection"]
    assert sel["combined_weight"] in [float(k) for k in sel["mean_cider_by_weight"]]
    assert sel["tuned_on"].startswith("val split") and set(sel["val_cider"]) == {"consensus", "grounding", "combined"}
    zoo = Zoo(tiny_zoo / "zoo")
    assert zoo.text_tower is not None and zoo.text_tower.arch.embed_dim == zoo.backbone.embed_dim
    assert f"w={sel['combined_weight']:g}" in " ".join(r["name"] for r in m["evaluation"]["rows"])


def test_zoo_loads_and_evaluate_cli_matches(tiny_zoo, capsys):
    zoo = Zoo(tiny_zoo / "zoo")
    assert zoo.names == ["d1", "d2", "d3", "d4", "d5"]
    assert all(m.cfg.mask == "frames" and m.cfg.te_layers == 1 and m.cfg.td_layers == 3 for m in zoo.decoders.values())
    rc = main(["evaluate", "--zoo", str(tiny_zoo / "zoo"), "--features", str(tiny_zoo / "work" / "features.npz"),
               "--annotations", str(tiny_zoo / "work" / "MSRVTT_data.json"), "--beam", "2", "--json", "--quiet",
               "--threads", "1"])
    assert rc == 0
    again = json.loads(capsys.readouterr().out)
    stored = read_manifest(tiny_zoo / "zoo")["evaluation"]
    assert again["rows"] == stored["rows"] and again["disagreement"] == stored["disagreement"]


def test_rerun_skips_finished_stages(tiny_zoo, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (tiny_zoo / "zoo").glob("d*.safetensors")}
    assert main(["build-zoo", "--size", "tiny", "--out", str(tiny_zoo / "zoo"), "--work", str(tiny_zoo / "work"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, skipped") == 7
    assert {p.name: p.stat().st_mtime_ns for p in (tiny_zoo / "zoo").glob("d*.safetensors")} == before


def test_evaluate_tune_select_stores_w(tiny_zoo, capsys):
    zoo = tiny_zoo / "zoo"
    before = read_manifest(zoo)["selection"]
    rc = main(["evaluate", "--zoo", str(zoo), "--features", str(tiny_zoo / "work" / "features.npz"),
               "--annotations", str(tiny_zoo / "work" / "MSRVTT_data.json"), "--split", "val", "--beam", "2",
               "--tune-select", "--quiet", "--threads", "1"])
    assert rc == 0
    after = read_manifest(zoo)["selection"]
    assert after["combined_weight"] == before["combined_weight"] and after["val_cider"] == before["val_cider"]
    assert "select: combined" in capsys.readouterr().out
