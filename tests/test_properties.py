"""Property tests (hypothesis) for the two pure text parts: the ensemble vote and the tokenizer.

tests/test_ensemble.py already checks, over generated caption lists, that scores are finite and
non-negative, empty captions score 0, the winner is an arg-max and permutations move scores with
their captions. This file adds: captions of *any* text (controls, NUL, lone surrogates, every
script), invariance under re-spacing, score ranges, the all-identical tie, batch = one-by-one, and
`reselect`. For the tokenizer: nothing crashes, ids stay in range, encode/decode round trips, and
the teacher-forcing rows keep their shape.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import golden_sets

from c4c.vote.ensemble import DEFAULT_METRICS, score_ensemble, score_ensembles
from c4c.errors import VocabError
from c4c.vote.idf import IdfTable
from c4c.vote.metrics import normalize
from c4c.captioning.tokenizer import Tokenizer, caption_rows

FAST = ("cider", "bleu4", "rouge")  # METEOR runs in Java: a few examples only
IDF = IdfTable.from_captions(
    [["a man is playing a guitar", "a man plays guitar on stage"], ["a dog runs in a field", "a dog is running"],
     ["a woman is cooking", "someone cooks food in a kitchen"], ["people are dancing", "a group dances"]],
    source="property-test corpus")
PROPS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=80)

WORDS = st.sampled_from("a man dog is playing plays guitar the on runs field stage woman cooking . ,".split())
SENTENCE = st.lists(WORDS, min_size=0, max_size=12).map(" ".join)
# Any code point at all, surrogates and controls included (st.text() leaves out surrogates by default).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
CAPTION = st.one_of(SENTENCE, ANY_TEXT)
CAPTIONS = st.lists(CAPTION, min_size=2, max_size=7)
SPACE = st.sampled_from([" ", "  ", "\t", "\n", " \u00a0", "\u3000", "\r\n"])


def _finite(o, metrics):
    for m in metrics:
        assert all(math.isfinite(v) and v >= 0 for v in o.loo[m])


@PROPS
@given(caps=CAPTIONS)
def test_any_text_is_scored_without_error(caps):
    o = score_ensemble(caps, IDF, metrics=FAST)
    _finite(o, FAST)
    assert 0 <= o.winner < len(caps) and sorted(o.ranking) == list(range(len(caps)))


@settings(PROPS, max_examples=12)
@given(caps=st.lists(st.one_of(SENTENCE, ANY_TEXT), min_size=2, max_size=4))
def test_any_text_through_meteor(caps):
    o = score_ensemble(caps, IDF, select="meteor")
    _finite(o, DEFAULT_METRICS)


@PROPS
@given(caps=st.lists(SENTENCE, min_size=2, max_size=6), data=st.data())
def test_spacing_does_not_change_the_vote(caps, data):
    """Metrics see whitespace-split tokens (reference.md 4): re-spacing a caption changes nothing."""
    def respace(c):
        words = c.split()
        seps = [data.draw(SPACE) for _ in range(len(words) + 1)]
        return seps[0] + "".join(w + s for w, s in zip(words, seps[1:]))
    spaced = [respace(c) for c in caps]
    a, b = score_ensemble(caps, IDF, metrics=FAST), score_ensemble(spaced, IDF, metrics=FAST)
    assert a.loo == b.loo and a.pairwise == b.pairwise and a.ranking == b.ranking
    assert [normalize(c) for c in spaced] == [normalize(c) for c in caps]


@PROPS
@given(caps=CAPTIONS)
def test_score_ranges(caps):
    o = score_ensemble(caps, IDF, metrics=FAST)
    assert all(v <= 1 + 1e-9 for m in ("bleu4", "rouge") for v in o.loo[m])
    assert all(v <= 10 + 1e-9 for v in o.loo["cider"])  # CIDEr-D: x10, clipped counts, length penalty <= 1


@PROPS
@given(caption=SENTENCE, n=st.integers(2, 6))
def test_identical_captions_tie_and_the_lowest_index_wins(caption, n):
    o = score_ensemble([caption] * n, IDF, metrics=FAST)
    for m in FAST:
        assert len(set(o.loo[m])) == 1
    assert o.winner == 0 and list(o.ranking) == list(range(n)) and o.decided_by == "index"


@settings(PROPS, max_examples=30)
@given(videos=st.lists(CAPTIONS, min_size=1, max_size=4), select=st.sampled_from(FAST))
def test_batch_equals_one_by_one_and_reselect_equals_rescoring(videos, select):
    batch = score_ensembles(videos, IDF, select=select, metrics=FAST)
    assert batch == [score_ensemble(v, IDF, select=select, metrics=FAST) for v in videos]
    for o, v in zip(batch, videos):
        for m in FAST:
            assert o.reselect(m) == score_ensemble(v, IDF, select=m, metrics=FAST)


# ---- tokenizer --------------------------------------------------------------------------------------

SPECIAL = ["[PAD]"] + [f"[unused{i}]" for i in range(3)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HAND_VOCAB = SPECIAL + ["a", "man", "is", "play", "##ing", "##s", "guitar", "un", "##aff", "##able", "dog", "run",
                        "##n", "caf", "##e", ",", ".", "!", "'", "-", "1", "##2", "新", "ü", "x", "##x"]


def _tokenizers() -> list[Tokenizer]:
    toks = [Tokenizer(HAND_VOCAB, source="hand-made vocab")]
    for s in golden_sets():
        if (s / "vocab.txt").is_file():
            toks.append(Tokenizer.from_file(s / "vocab.txt"))
            break
    return toks


TOKENIZERS = _tokenizers()
# Text without '#', '[' or ']': decode() strips '#' at the ends and cuts at a literal [SEP] (reference.md 2.6).
PLAIN = st.text(st.characters(codec=None, exclude_categories=(), exclude_characters="#[]"), max_size=60)
WORDY = st.lists(st.sampled_from(["a", "man", "playing", "plays", "guitar", "unaffable", "dogs", "runn", "café",
                                  "Café", "CAFE", "naïve", "x" * 101, "新新", "1-2", "don't", "ü!", "xxxx"]),
                 max_size=12).map(" ".join)


each_tokenizer = pytest.mark.parametrize(
    "tok", TOKENIZERS, ids=[t.source.split("/")[-2] if "/" in t.source else "hand" for t in TOKENIZERS])


@each_tokenizer
@PROPS
@given(text=st.one_of(PLAIN, WORDY, ANY_TEXT))
def test_tokenize_any_text(tok, text):
    pieces = tok.tokenize(text)
    ids = tok.encode(text)
    assert len(ids) == len(pieces) and all(0 <= i < len(tok) for i in ids)
    assert all(p == "[UNK]" or tok.id_to_token(i) == p for p, i in zip(pieces, ids))
    assert all(p and not re.search(r"\s", p) for p in pieces)


@each_tokenizer
@PROPS
@given(text=st.one_of(PLAIN, WORDY))
def test_decode_encode_is_a_fixed_point(tok, text):
    """Decoding the ids of a text and tokenizing again gives the same pieces: decode writes the
    normalised text (lower case, no accents, punctuation split, [UNK] for unknown words)."""
    ids = tok.encode(text)
    assert tok.encode(tok.decode(ids)) == ids


@PROPS
@given(words=st.lists(st.sampled_from(["a", "man", "is", "playing", "plays", "guitar", "unaffable", "dog", "runn",
                                       "cafe", "x", "xxx"]), max_size=10))
def test_round_trip_of_vocabulary_words(words):
    tok = TOKENIZERS[0]
    text = " ".join(words)
    assert tok.decode(tok.encode(text)) == text


@PROPS
@given(ids=st.lists(st.integers(0, len(HAND_VOCAB) - 1), max_size=20))
def test_decode_any_ids(ids):
    tok = TOKENIZERS[0]
    text = tok.decode(ids)
    assert text == text.strip() and not text.startswith("#") and not text.endswith("#")
    assert "[SEP]" not in text and "[PAD]" not in text  # decoding stops at the first of either


@PROPS
@given(ids=st.lists(st.integers(-5, len(HAND_VOCAB) + 5), min_size=1, max_size=8))
def test_decode_out_of_range_ids_is_a_vocab_error(ids):
    tok = TOKENIZERS[0]
    assume(any(not 0 <= i < len(tok) for i in ids))
    with pytest.raises(VocabError, match="outside the vocabulary"):
        tok.decode(ids)


@each_tokenizer
@PROPS
@given(text=st.one_of(PLAIN, WORDY), max_words=st.integers(2, 40))
def test_caption_rows_shape(tok, text, max_words):
    rows = caption_rows(tok, text, max_words)
    n = sum(rows.mask)
    assert len(rows.input_ids) == len(rows.output_ids) == len(rows.mask) == max_words
    assert list(rows.mask) == [1] * n + [0] * (max_words - n) and 1 <= n <= max_words
    assert rows.input_ids[0] == tok.bos_id and rows.output_ids[n - 1] == tok.eos_id
    assert list(rows.input_ids[1:n]) == list(rows.output_ids[:n - 1]) == tok.encode(text)[:n - 1]
    assert all(i == tok.pad_id for i in rows.input_ids[n:] + rows.output_ids[n:])
