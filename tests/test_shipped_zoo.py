"""The default zoo that ships in weights/demo: what it says it is, what it scored, and that it runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from c4c.pipeline import CaptionSettings, Pipeline
from c4c.zoo import default_zoo_dir, read_manifest

ROOT = Path(__file__).resolve().parents[1]
# Floors the shipped zoo holds (the first zoo: shape 20 %, event 22 %, both objects 2 %); issue 12's
# targets that it does not reach yet are in test_issue_12_targets, marked as expected failures.
SHAPE_FLOOR, EVENT_FLOOR, COLOUR_FLOOR, BOTH_FLOOR = 95.0, 85.0, 98.0, 50.0


def test_manifest_says_what_it_is_and_meets_the_targets():
    m = read_manifest(default_zoo_dir())
    assert "NOT on MSR-VTT" in m["description"]
    assert len(m["decoders"]) == 5 and sum(p.stat().st_size for p in default_zoo_dir().iterdir()) < 30e6
    rows = {r["name"]: r for r in m["evaluation"]["rows"]}
    singles = [r["cider"] for r in rows.values() if r["kind"] == "single"]
    ensemble = next(r for r in rows.values() if r["kind"] == "ensemble" and "CIDEr" in r["name"])
    baseline = next(r for r in rows.values() if r["kind"] == "baseline")
    oracle = next(r for r in rows.values() if r["kind"] == "oracle")
    assert ensemble["cider"] > sum(singles) / len(singles)   # the vote beats the average decoder ...
    assert min(singles) > 3 * baseline["cider"] and oracle["cider"] > ensemble["cider"]
    assert m["evaluation"]["disagreement"] >= 0.30
    # What the zoo gets right, parsed from its captions against the test clips' labels.
    vote = ensemble["attributes"]
    assert vote["colour"] >= COLOUR_FLOOR and vote["shape"] >= SHAPE_FLOOR and vote["event"] >= EVENT_FLOOR
    assert vote["both"] >= BOTH_FLOOR


@pytest.mark.xfail(strict=True, reason="issue 12 is open: the shipped zoo's test split has the vote at 193.9 "
                                        "against d1's 195.2, event 86.7 %, both objects 57.3 % (docs/synthetic-data.md)")
def test_issue_12_targets():
    """The targets the shipped zoo must reach (strict: when it does, this fails and the mark must go)."""
    rows = read_manifest(default_zoo_dir())["evaluation"]["rows"]
    ensemble = next(r for r in rows if r["kind"] == "ensemble" and "CIDEr" in r["name"])
    vote = ensemble["attributes"]
    assert ensemble["cider"] > max(r["cider"] for r in rows if r["kind"] == "single")  # ... and the best one
    assert vote["colour"] >= 98 and vote["shape"] >= 95 and vote["event"] >= 90 and vote["both"] >= 80


def test_shipped_zoo_captions_an_example():
    examples = json.loads((ROOT / "examples" / "captions.json").read_text())
    video = ROOT / "examples" / sorted(examples)[0]
    r = Pipeline.from_zoo(default_zoo_dir(), device="cpu").caption(video, CaptionSettings())
    assert len(r.captions) == 5 and all(c.caption for c in r.captions)
    vocab = {w for refs in examples.values() for ref in refs["captions"] for w in ref.split()}
    assert set(r.caption.split()) <= vocab  # it learned the captions' language, not noise
    assert r.zoo["name"] == "demo"


def test_the_shipped_table_is_what_the_zoo_scores(tmp_path):
    """The README's re-scoring commands, run as a user would: regenerate the test split's captions,
    extract its features with the shipped backbone, evaluate the shipped decoders. The result must be
    the evaluation table stored in the manifest (and printed in the README), up to last-digit beam
    flips from another CPU's float rounding (identical on the machines this was run on)."""
    run = lambda *a: subprocess.run([sys.executable, "-m", "c4c", *a], cwd=ROOT, capture_output=True,  # noqa: E731
                                    text=True, timeout=900)
    ann, feats = tmp_path / "MSRVTT_data.json", tmp_path / "test.npz"
    for args in (("synth", "--annotations", str(ann)),
                 ("extract", "--synth", "test", "--backbone", "weights/demo/backbone.safetensors", "--out", str(feats),
                  "--quiet")):
        p = run(*args)
        assert p.returncode == 0, p.stderr[-2000:]
    p = run("evaluate", "--zoo", "weights/demo", "--features", str(feats), "--annotations", str(ann), "--json",
            "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout)
    want = read_manifest(default_zoo_dir())["evaluation"]
    assert [r["name"] for r in got["rows"]] == [r["name"] for r in want["rows"]]
    for g, w in zip(got["rows"], want["rows"]):
        for k in ("bleu4", "meteor", "rouge_l", "cider"):
            assert abs(g[k] - w[k]) <= 0.3, (g["name"], k, g[k], w[k])
    assert abs(got["disagreement"] - want["disagreement"]) <= 0.01
    for g, w in zip(got["rows"], want["rows"]):  # the attribute accuracies the README and the page quote
        for k, v in (w.get("attributes") or {}).items():
            if v is not None and k not in ("n_one", "n_two"):
                assert abs(g["attributes"][k] - v) <= 1.0, (g["name"], k, g["attributes"][k], v)
    singles = [r["cider"] for r in got["rows"] if r["kind"] == "single"]  # (vote > best single: issue 12, above)
    assert next(r["cider"] for r in got["rows"] if r["name"].startswith("ensemble (CIDEr-D")) > sum(singles) / 5
