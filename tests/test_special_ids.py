"""BOS/EOS come from the zoo's tokenizer on every captioning path, not from BERT's 101/102: a zoo
whose vocabulary puts [CLS]/[SEP] at 2/3 must start at 2 and stop at 3 in the Pipeline (app, CLI,
batch), in `c4c decode` and in training's validation decoding."""

import numpy as np
import pytest
import torch

from c4c.captioning.decoding import BOS_ID, EOS_ID, beam_search, greedy
from c4c.captioning.model import prepare_video
from c4c.pipeline import Pipeline
from c4c.settings import CaptionSettings
from c4c.train.decoder import decode_texts
from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo


@pytest.fixture(scope="module")
def compact_zoo(tmp_path_factory):
    # A strong [SEP] bias makes random decoders stop after a token or two, at the vocabulary's [SEP].
    spec = RandomZooSpec(specials="compact", sep_bias=8.0, n_decoders=3, max_words=8)
    return Pipeline.from_zoo(make_random_zoo(tmp_path_factory.mktemp("zoo"), spec), device="cpu", cache_size=0)


def _feats(pipe, n=4):
    return np.random.default_rng(0).standard_normal((n, pipe.zoo.backbone.embed_dim)).astype(np.float32)


def test_the_compact_vocabulary_is_not_berts(compact_zoo):
    tok = compact_zoo.zoo.tokenizer
    assert (tok.bos_id, tok.eos_id) == (2, 3) and (BOS_ID, EOS_ID) == (101, 102)


def test_pipeline_decodes_with_the_zoos_special_ids(compact_zoo, one_thread):
    tok = compact_zoo.zoo.tokenizer
    feats = _feats(compact_zoo)
    names, hyps, _, _ = compact_zoo.caption_features(feats, CaptionSettings(beam=3))
    for name, h in zip(names, hyps):
        assert h.ids[-1] == tok.eos_id                      # stopped at this vocabulary's [SEP]
        model = compact_zoo.zoo.decoders[name]
        video, mask = prepare_video(torch.from_numpy(feats), model.cfg)
        want = beam_search(model, video, mask, beam=3, bos_id=tok.bos_id, eos_id=tok.eos_id)[0]
        assert h.ids == want.ids
        bert = beam_search(model, video, mask, beam=3)[0]   # BERT's ids: another, wrong decoding
        assert bert.ids != want.ids


def test_training_validation_decodes_with_the_tokenizers_ids(compact_zoo, one_thread):
    tok = compact_zoo.zoo.tokenizer
    model = next(iter(compact_zoo.zoo.decoders.values()))
    video, mask = prepare_video(torch.from_numpy(_feats(compact_zoo)), model.cfg)
    texts = decode_texts(model, video, mask, tok, beam=1)
    want = greedy(model, video, mask, bos_id=tok.bos_id, eos_id=tok.eos_id)[0]
    assert texts == [tok.decode(want.ids)]
