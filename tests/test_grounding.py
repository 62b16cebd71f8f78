"""Grounding (vote/grounding.py), the selection rules (vote/selection.py), and both through the
pipeline, the result object and the CLI on a zoo with a text tower and on one without."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from c4c.errors import InputError
from c4c.pipeline import CaptionSettings, Pipeline
from c4c.result import CaptionResult
from c4c.vote.ensemble import score_ensemble
from c4c.vote.grounding import grounding_scores, video_embedding
from c4c.vote.idf import IdfTable
from c4c.vote.selection import select, standardise, tune_weight
from c4c.zoo import default_select, read_manifest, write_manifest
from c4c.zoo.random_zoo import make_random_zoo


def test_meanp_and_cosine():
    frames = np.array([[3.0, 0.0], [0.0, 0.5]])  # unit-normalised first: both frames weigh the same
    v = video_embedding(frames)
    assert np.allclose(v, [2 ** -0.5, 2 ** -0.5])
    g = grounding_scores(frames, np.array([[1.0, 1.0], [-2.0, -2.0], [1.0, 0.0]]))
    assert np.allclose(g, [1.0, -1.0, 2 ** -0.5])
    with pytest.raises(ValueError):
        grounding_scores(frames, np.ones((2, 3)))


def _outcome():
    idf = IdfTable.from_captions([["a red ball bounces"], ["a blue box slides"], ["two green circles"]], source="t")
    caps = ["a red ball bounces", "a red ball bounces left", "a blue box slides", "a red ball"]
    return score_ensemble(caps, idf, select="cider")


def test_consensus_rule_is_the_vote_exactly():
    o = _outcome()
    s = select(o, None, "consensus")
    assert s.winner == o.winner and s.ranking == o.ranking and not s.overruled


def test_grounding_rule_and_overrule():
    o = _outcome()
    g = [0.1, 0.2, 0.9, 0.1]
    s = select(o, g, "grounding")
    assert s.winner == 2 and s.overruled and s.consensus_winner == o.winner
    assert s.ranking[0] == 2 and set(s.ranking) == {0, 1, 2, 3}
    with pytest.raises(InputError):
        select(o, None, "grounding")
    with pytest.raises(InputError):
        select(o, g, "nonsense")


def test_ties_go_to_consensus_then_other_metrics_then_index():
    o = _outcome()
    s = select(o, [0.5, 0.5, 0.5, 0.5], "grounding")  # all grounding equal: the vote decides
    assert s.winner == o.winner and s.decided_by in ("consensus", "others", "index")
    # identical captions tie on everything: the lowest index wins
    idf = IdfTable.from_captions([["a b c"]], source="t")
    same = score_ensemble(["a b c", "a b c", "a b c"], idf)
    assert select(same, [0.3, 0.3, 0.3], "combined", 2.0).winner == 0
    assert select(same, [0.3, 0.3, 0.3], "combined", 2.0).decided_by == "index"


def test_combined_weighs_standardised_terms():
    o = _outcome()
    cons = list(o.loo["cider"])
    g = [0.0, 0.0, 1.0, 0.0]
    assert select(o, g, "combined", 0.0).winner == o.winner  # w = 0: the vote
    big = select(o, g, "combined", 100.0)
    assert big.winner == 2
    z = [a + 100.0 * b for a, b in zip(standardise(cons), standardise(g))]
    assert np.allclose(big.scores, z)
    assert standardise([1.0, 1.0]) == [0.0, 0.0]


def test_permuting_candidates_permutes_the_choice():
    o = _outcome()
    g = [0.3, 0.31, 0.2, 0.25]
    perm = [2, 0, 3, 1]
    idf = IdfTable.from_captions([["a red ball bounces"], ["a blue box slides"], ["two green circles"]], source="t")
    o2 = score_ensemble([o.captions[p] for p in perm], idf, select="cider")
    for rule in ("consensus", "grounding", "combined"):
        a = select(o, g, rule, 1.5)
        b = select(o2, [g[p] for p in perm], rule, 1.5)
        assert perm[b.winner] == a.winner


def test_tune_weight_picks_the_best_mean_quality():
    o = _outcome()
    quality = [[0.0, 0.0, 1.0, 0.0]]  # the grounded caption is the right one
    w, means = tune_weight([o], [[0.1, 0.1, 0.9, 0.1]], quality)
    assert means[w] == 1.0 and means[0.0] == 0.0 and w == min(k for k, v in means.items() if v == 1.0)


def test_older_results_still_load():
    d = {"video": "v.mp4", "timestamps": [0.0], "frame_indices": [0], "winner": 0, "metric": "cider",
         "tie_break": "t", "pairwise": {}, "idf": "x", "timings": {}, "settings": {}, "zoo": {}, "video_info": {},
         "schema": "c4c.result/1", "caption": "a",
         "captions": [{"name": "d1", "caption": "a", "token_ids": [1], "beam_score": -1.0,
                       "loo": {"cider": 0.5}, "rank": 1}]}
    r = CaptionResult.from_dict(d)
    assert r.select == "consensus" and r.captions[0].grounding is None and r.schema == "c4c.result/3"
    assert "grounding" not in r.explain()
    assert CaptionResult.from_json(r.to_json()) == r


@pytest.fixture(scope="module")
def zoos(tmp_path_factory):
    """A random zoo without a text tower, and the same zoo with a word-level one and a tuned w."""
    from c4c.checkpoints import save_safetensors
    from c4c.train.clip_model import CLIP, ClipConfig, WordTokenizer
    from c4c.vision.text_tower import save_text_tower_from_clip_full
    plain = make_random_zoo(tmp_path_factory.mktemp("plain"))
    grounded = make_random_zoo(tmp_path_factory.mktemp("grounded"))
    words = [w.strip() for w in (grounded / "vocab.txt").read_text().splitlines() if w.strip().isalpha()][:100]
    tok = WordTokenizer(sorted(set(words)))
    cfg = ClipConfig(image_size=16, patch=8, width=64, layers=1, embed_dim=32, context=16, vocab_size=len(tok))
    torch.manual_seed(1)
    full = grounded / "clip_full.safetensors"
    save_safetensors(CLIP(cfg).state_dict(), full, {"format": "c4c-clip-full", "vocab": tok.words})
    entry = save_text_tower_from_clip_full(full, grounded / "text_tower.safetensors")
    full.unlink()
    m = read_manifest(grounded)
    m.pop("format", None)
    write_manifest(grounded, {**m, "text_tower": entry, "selection": {"combined_weight": 2.5}})
    return plain, grounded


def _video():
    from conftest import golden_sets
    vids = [v for s in golden_sets() for v in sorted(s.glob("*.mp4"))]
    if not vids:
        pytest.skip("no golden video")
    return vids[0]


def test_pipeline_grounding_and_rules(zoos):
    plain, grounded = zoos
    video = _video()
    pipe = Pipeline.from_zoo(grounded, device="cpu")
    results = {rule: pipe.caption(video, CaptionSettings(select=rule, beam=2)) for rule in
               ("consensus", "grounding", "combined")}
    base = results["consensus"]
    assert all(c.grounding is not None and -1 <= c.grounding <= 1 for c in base.captions)
    g = [c.grounding for c in base.captions]
    assert results["grounding"].captions[results["grounding"].winner].grounding == max(g)
    assert results["combined"].selection["weight"] == 2.5
    for r in results.values():
        assert sorted(c.rank for c in r.captions) == list(range(1, len(r.captions) + 1))
        assert r.captions[r.winner].rank == 1
        assert r.selection["consensus_winner"] == base.winner
        assert "grounding" in r.explain()
        assert CaptionResult.from_json(r.to_json()) == r
    rg = results["grounding"]
    if rg.winner != base.winner:
        assert "overruled the vote" in rg.explain()
    # no text tower: consensus works and says why grounding is missing; the others are refused
    p2 = Pipeline.from_zoo(plain, device="cpu")
    r = p2.caption(video, CaptionSettings(beam=2))
    assert all(c.grounding is None for c in r.captions) and "no text tower" in r.selection["no_grounding"]
    with pytest.raises(InputError, match="text tower"):
        p2.caption(video, CaptionSettings(select="grounding"))


def test_auto_select_is_the_zoo_rule_from_its_manifest(zoos, tmp_path):
    plain, grounded = zoos
    video = _video()
    assert default_select(read_manifest(plain)) == "consensus"  # no text tower: nothing to ground with
    assert default_select(read_manifest(grounded)) == "consensus"  # no best_rule stored: the paper's vote
    m = read_manifest(grounded)
    m.pop("format", None)
    best = tmp_path / "best"
    shutil.copytree(grounded, best)
    write_manifest(best, {**m, "selection": {"combined_weight": 2.5, "best_rule": "grounding"}})
    assert default_select(read_manifest(best)) == "grounding"
    r = Pipeline.from_zoo(best, device="cpu").caption(video, CaptionSettings(beam=2))  # select="auto"
    g = [c.grounding for c in r.captions]
    assert r.select == "grounding" and r.settings["select"] == "grounding" and g[r.winner] == max(g)
    write_manifest(best, {**m, "selection": {"best_rule": "bogus"}})  # a rule c4c does not know: the vote
    assert default_select(read_manifest(best)) == "consensus"


def test_segments_choose_by_the_rule_each_grounded_in_its_own_frames(zoos, tmp_path):
    from c4c.synth.cuts import write_cut_video
    _, grounded = zoos
    video = tmp_path / "cuts.mp4"
    write_cut_video(video, "hard", n_clips=3, size=(72, 128))
    pipe = Pipeline.from_zoo(grounded, device="cpu")
    by_rule = {rule: pipe.caption(video, CaptionSettings(select=rule, beam=1, segments="every:3"))
               for rule in ("consensus", "grounding")}
    vote, ground = by_rule["consensus"], by_rule["grounding"]
    assert len(ground.segments) == len(vote.segments) >= 2 and ground.select == "grounding"
    for sv, sg in zip(vote.segments, ground.segments):
        g = [c.grounding for c in sg.captions]
        assert all(x is not None for x in g) and g[sg.winner] == max(g)
        assert [c.caption for c in sv.captions] == [c.caption for c in sg.captions]
        assert sg.selection["consensus_winner"] == sv.winner and sg.captions[sg.winner].rank == 1
    # each segment is grounded in its own frames, not the whole video's: the scores differ across spans
    assert len({tuple(c.grounding for c in s.captions) for s in ground.segments}) == len(ground.segments)
    assert CaptionResult.from_json(ground.to_json()) == ground


def test_caption_cli_select(zoos):
    plain, grounded = zoos
    video = str(_video())
    run = lambda *a: subprocess.run([sys.executable, "-m", "c4c", "caption", video, "--beam", "2", *a],
                                    capture_output=True, text=True, timeout=600)
    p = run("--zoo", str(grounded), "--select", "combined", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["select"] == "combined"
    p = run("--zoo", str(plain), "--select", "grounding")
    assert p.returncode == 2 and "text tower" in p.stderr and "Traceback" not in p.stderr


def _result(select_rule="combined", grounding=(0.2, 0.1, 0.4), winner=2, vote=0, no_grounding=""):
    from c4c.result import ModelCaption
    loo = [{"cider": 1.0, "bleu4": 0.5, "meteor": 0.3, "rouge": 0.6}, {"cider": 0.5, "bleu4": 0.4, "meteor": 0.2, "rouge": 0.5},
           {"cider": 0.2, "bleu4": 0.1, "meteor": 0.1, "rouge": 0.2}]
    ranks = {winner: 1, **{i: k + 2 for k, i in enumerate(j for j in range(3) if j != winner)}}
    caps = [ModelCaption(f"d{i}", f"caption {i}", [1], -1.0, loo[i], ranks[i], None if grounding is None else grounding[i])
            for i in range(3)]
    return CaptionResult(video="v.mp4", timestamps=[0.0], frame_indices=[0], captions=caps, winner=winner, metric="cider",
                         tie_break="t", pairwise={}, idf="x", timings={"total": 1.0}, settings={}, zoo={},
                         select=select_rule, selection={"consensus_winner": vote, "weight": 2.0, "scores": [0.0, -1.0, 1.0],
                                                        "no_grounding": no_grounding})


def test_page_shows_grounding_and_the_overrule():
    from c4c.ui import figures, view
    r = _result()
    why = view.why_markdown(r)
    assert "CIDEr-D" in why and "grounding" in why and "overruled the vote, which picked d0" in why
    assert view.table_headers(r)[-1] == "Grounding" and view.table_rows(r)[0][-1] == 0.4
    assert "grounding combined" in view.winner_html(r)
    fig = figures.loo_figure(r)
    assert sum(ax.get_visible() for ax in fig.axes) == 5  # 4 metrics + grounding
    assert any("Grounding" in ax.get_title() and "selects" in ax.get_title() for ax in fig.axes)
    # a zoo without a text tower: no grounding panel, and the page says why
    plain = _result("consensus", None, 0, 0, "this zoo has no text tower")
    assert "No grounding column: this zoo has no text tower" in view.why_markdown(plain)
    assert "overruled" not in view.why_markdown(plain)
    assert sum(ax.get_visible() for ax in figures.loo_figure(plain).axes) == 4
    assert "–" in view.styled_table(plain).to_html()
