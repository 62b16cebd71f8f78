"""Metrics: parity with pycocoevalcap (no PTB tokenisation), CIDEr-D with a stored IDF, the one
persistent METEOR process, and inputs that break the reference wrappers."""

import math
import os
import random
import signal
import threading
import time

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from c4c.vote import metrics
from c4c.errors import InputError
from c4c.vote.idf import IdfTable
from c4c.vote.metrics import close_meteor, corpus_scores, meteor_pid, sentence_scores

WORDS = "a man woman is are playing plays the guitar on stage dog runs in field talking , .".split()


def random_corpus(seed: int, n: int = 40) -> tuple[list[list[str]], list[str]]:
    rng = random.Random(seed)

    def cap() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))

    return [[cap() for _ in range(rng.randint(1, 5))] for _ in range(n)], [cap() for _ in range(n)]


def coco(refs, hyps):
    return {i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_d_parity_with_pycocoevalcap(seed):
    refs, hyps = random_corpus(seed)
    score, per = Cider().compute_score(*coco(refs, hyps))
    ours = sentence_scores("cider", refs, hyps)  # IDF from the refs of the call, as Cider does
    assert max(abs(a - b) for a, b in zip(per, ours)) < 1e-9
    # the same through an explicit table built from those refs
    table = IdfTable.from_captions(refs)
    assert max(abs(a - b) for a, b in zip(per, sentence_scores("cider", refs, hyps, idf=table))) < 1e-9
    assert abs(corpus_scores(refs, hyps)["cider"] - score) < 1e-9
    assert score > 0.1  # a corpus where the check means something


def test_bleu_rouge_parity_with_pycocoevalcap():
    refs, hyps = random_corpus(3)
    bleu, bleu_per = Bleu(4).compute_score(*coco(refs, hyps), verbose=0)
    rouge, rouge_per = Rouge().compute_score(*coco(refs, hyps))
    assert sentence_scores("bleu4", refs, hyps) == pytest.approx(bleu_per[3], abs=1e-12)
    assert sentence_scores("rouge", refs, hyps) == pytest.approx(list(rouge_per), abs=1e-12)
    # corpus BLEU is not the mean of sentence BLEUs: check the corpus value itself
    refs2, hyps2 = refs[:10], hyps[:10]
    got = corpus_scores(refs2, hyps2)
    assert got["bleu4"] == pytest.approx(Bleu(4).compute_score(*coco(refs2, hyps2), verbose=0)[0][3], abs=1e-12)
    assert got["rouge"] == pytest.approx(float(Rouge().compute_score(*coco(refs2, hyps2))[0]), abs=1e-12)


def test_no_ptb_tokenisation_only_whitespace():
    # "guitar." stays one token (PTB would split off the period), so it does not match "guitar"
    assert sentence_scores("bleu4", [["a man plays the guitar"]], ["a man plays the guitar."])[0] < 0.9
    # but extra whitespace is irrelevant
    a = sentence_scores("cider", [["a man plays the guitar", "x"]], ["  a man\tplays the\nguitar "])
    b = sentence_scores("cider", [["a man plays the guitar", "x"]], ["a man plays the guitar"])
    assert a == b


# Values from pycocoevalcap's own Meteor wrapper (a separate JVM) on the same input, pinned here so
# the test suite needs one JVM only.
METEOR_REFS = [["a man is playing a guitar on stage", "a person plays the guitar"], ["a dog runs in a field"], ["a woman is cooking in a kitchen", "someone is cooking food"]]
METEOR_HYPS = ["a man plays a guitar", "a cat sits on a sofa", "a woman cooks food in the kitchen"]
METEOR_SEGMENTS = [0.7454545454545454, 0.06666666666666665, 0.260780447051464]
METEOR_AGGREGATE = 0.2444375540073549


def test_meteor_values_and_aggregate():
    assert sentence_scores("meteor", METEOR_REFS, METEOR_HYPS) == pytest.approx(METEOR_SEGMENTS, abs=1e-12)
    # the jar's aggregate comes from summed statistics: not the mean of the segments
    assert corpus_scores(METEOR_REFS, METEOR_HYPS)["meteor"] == pytest.approx(METEOR_AGGREGATE, abs=1e-12)


def test_meteor_process_is_reused_and_restarted():
    sentence_scores("meteor", [["a man walks"]], ["a man walks"])
    pid = meteor_pid()
    assert pid is not None
    for _ in range(3):
        sentence_scores("meteor", [["a dog"], ["a cat"]], ["a dog", "a cow"])
        corpus_scores([["a dog"]], ["a dog"])
    assert meteor_pid() == pid
    # a JVM that died (here: killed from outside) is replaced on the next call, results unchanged
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while meteor_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert meteor_pid() is None
    assert sentence_scores("meteor", METEOR_REFS, METEOR_HYPS) == pytest.approx(METEOR_SEGMENTS, abs=1e-12)
    assert meteor_pid() not in (None, pid)


def test_meteor_thread_safe():
    refs, hyps = random_corpus(4, n=30)
    expected = sentence_scores("meteor", refs, hyps)
    results, errors = [None] * 4, []

    def work(k):
        try:
            results[k] = sentence_scores("meteor", refs, hyps)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and all(r == expected for r in results)


def test_identical_captions():
    cap = "a man is playing a guitar on the stage"
    idf = IdfTable.from_captions([[cap], ["a dog runs in a field"], ["a woman is cooking"]], source="tiny corpus")
    assert sentence_scores("bleu4", [[cap]], [cap])[0] == pytest.approx(1.0, abs=1e-8)
    assert sentence_scores("rouge", [[cap]], [cap])[0] == 1.0
    assert sentence_scores("meteor", [[cap]], [cap])[0] == pytest.approx(1.0)
    assert sentence_scores("cider", [[cap]], [cap], idf=idf)[0] > 1.0
    # the trap: IDF from the single reference set itself makes everything 0 (log 1 - log 1)
    assert sentence_scores("cider", [[cap]], [cap]) == [0.0]


def test_cider_with_idf_is_batch_independent():
    refs, hyps = random_corpus(5)
    idf = IdfTable.from_captions(random_corpus(6, n=80)[0], source="another corpus")
    whole = sentence_scores("cider", refs, hyps, idf=idf)
    parts = sentence_scores("cider", refs[:7], hyps[:7], idf=idf) + sentence_scores("cider", refs[7:], hyps[7:], idf=idf)
    assert whole == parts
    assert whole != sentence_scores("cider", refs, hyps)  # and the IDF actually matters


NASTY = ["", "   ", "\n", "a\nb", "a\r\nman", "|||", "a ||| b", "| || ||||", "日本語 テスト", "😀 dog", "é à ü", "\x00", "\u2028", "\ufeff a", "SCORE ||| x", "EVAL ||| 1", "Error", "-", "a " * 400]


@pytest.mark.parametrize("metric", metrics.METRICS)
def test_nasty_inputs_never_crash(metric):
    hyps = [h for h in NASTY for _ in range(2)]
    refs = [[NASTY[(i * 7) % len(NASTY)], "a man walks"] if i % 2 else [h] for i, h in enumerate(hyps)]
    idf = IdfTable.from_captions([["a man walks"], ["a dog"]], source="toy")
    scores = sentence_scores(metric, refs, hyps, idf=idf)
    assert len(scores) == len(hyps) and all(math.isfinite(s) and s >= 0 for s in scores)
    # an empty (or whitespace-only) hypothesis scores 0, even against an empty reference
    for h, s in zip(hyps, scores):
        if not h.split():
            assert s == 0.0
    assert sentence_scores(metric, [["a man walks home"]], ["a man walks home"], idf=idf)[0] > 0.5


def test_corpus_scores_keys_and_scale():
    refs, hyps = random_corpus(7, n=20)
    s = corpus_scores(refs, hyps)
    assert set(s) == {"bleu4", "meteor", "rouge", "cider"}
    assert all(0 <= s[k] <= 1 for k in ("bleu4", "meteor", "rouge")) and s["cider"] >= 0
    perfect = corpus_scores([[h] for h in hyps], hyps, idf=IdfTable.from_captions(refs + [[h] for h in hyps]))
    assert perfect["rouge"] == 1.0 and perfect["meteor"] > 0.95


def test_bad_arguments():
    with pytest.raises(InputError):
        sentence_scores("spice", [["a"]], ["a"])
    with pytest.raises(InputError):
        sentence_scores("bleu4", [["a"], ["b"]], ["a"])
    with pytest.raises(InputError):
        sentence_scores("rouge", [[]], ["a"])
    with pytest.raises(InputError):
        sentence_scores("cider", ["a bare string"], ["a"])
    with pytest.raises(InputError):
        corpus_scores([], [])
    assert sentence_scores("meteor", [], []) == []


def test_close_meteor_stops_the_jvm():
    # last in this file: the next METEOR score (in a later test module) starts a fresh JVM
    sentence_scores("meteor", [["a b"]], ["a b"])
    pid = meteor_pid()
    close_meteor()
    assert meteor_pid() is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
