"""Tokenizer: the reference BERT tokenisation and detokenisation, exactly (golden cases and small
hand-made vocabularies), teacher-forcing rows, and clear VocabErrors."""

import json

import pytest

from c4c.errors import VocabError
from c4c.captioning.tokenizer import Tokenizer, caption_rows

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _golden(golden_set):
    if not (golden_set / "golden.json").is_file():
        pytest.skip(f"{golden_set.name} has no golden.json")
    return json.loads((golden_set / "golden.json").read_text())


def _config(golden_set):
    if not (golden_set / "vocab.txt").is_file():
        pytest.skip(f"{golden_set.name} has no vocab.txt")
    return json.loads((golden_set / "config.json").read_text())


def test_golden_vocab_and_special_ids(golden_set):
    cfg = _config(golden_set)
    tok = Tokenizer.from_file(golden_set / "vocab.txt")
    sp = cfg["special_tokens"]
    assert len(tok) == cfg["vocab_size"]
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (sp["PAD"], sp["UNK"], sp["BOS"], sp["EOS"])


def test_golden_tokenizer_cases(golden_set):
    cases = _golden(golden_set)["tokenizer_cases"]
    tok = Tokenizer.from_file(golden_set / "vocab.txt")
    assert cases
    for case in cases:
        assert tok.tokenize(case["text"]) == case["tokens"], case["text"]
        assert tok.encode(case["text"]) == case["ids"], case["text"]


def test_golden_detokenize_cases(golden_set):
    cases = _golden(golden_set)["detokenize_cases"]
    tok = Tokenizer.from_file(golden_set / "vocab.txt")
    assert cases
    for case in cases:
        assert tok.decode(case["ids"]) == case["text"], case["ids"]


def test_golden_teacher_forcing_rows(golden_set):
    max_words = _config(golden_set)["max_words"]
    videos = _golden(golden_set)["videos"]
    tok = Tokenizer.from_file(golden_set / "vocab.txt")
    for v in videos:
        assert tok.tokenize(v["caption"]) == v["caption_tokens"]
        rows = caption_rows(tok, v["caption"], max_words)
        assert list(rows.input_ids) == v["input_caption_ids"]
        assert list(rows.output_ids) == v["output_caption_ids"]
        assert list(rows.mask) == v["decoder_mask"]


@pytest.fixture
def small(tmp_path):
    words = ["un", "##aff", "##able", "unaff", "a", "##b", "##c", "naive", "x", "##x", ",", "!", "[", "]", "pa",
             "##d", "cafe", "$"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    return Tokenizer.from_file(path)


def test_wordpiece_is_greedy_longest_match(small):
    assert small.tokenize("unaffable") == ["unaff", "##able"]  # "unaff" beats "un" + "##aff"
    assert small.tokenize("abcb") == ["a", "##b", "##c", "##b"]
    assert small.tokenize("abz") == ["[UNK]"]                  # one unmatched piece spoils the whole word
    assert small.encode("abz a") == [1, small.encode("a")[0]]


def test_basic_tokenizer_rules(small):
    assert small.tokenize("Naïve, CAFÉ!") == ["naive", ",", "cafe", "!"]  # lower case, accents, punctuation
    assert small.tokenize("a\u0000b\ufffd\x07 a\u3000a") == ["a", "##b", "a", "a"]  # controls dropped, Zs = space
    assert small.tokenize("a新a") == ["a", "[UNK]", "a"]                       # CJK chars become words
    assert small.tokenize("$a") == ["$", "a"]                                  # ASCII symbols split like punctuation
    # [CLS]/[SEP]/[UNK]/[MASK] survive as written; [PAD] is not protected by the reference
    assert small.tokenize("[CLS] [SEP] [PAD] [MASK] [UNK]") == ["[CLS]", "[SEP]", "[", "pa", "##d", "]", "[MASK]",
                                                                "[UNK]"]
    assert small.tokenize("[cls]")[0] == "["
    assert small.tokenize("") == [] and small.tokenize(" \t\n") == []


def test_words_over_100_chars_are_unknown(small):
    assert small.tokenize("x" * 100) == ["x"] + ["##x"] * 99
    assert small.tokenize("x" * 101) == ["[UNK]"]


def test_decode_rules(small):
    ids = {t: i for i, t in enumerate(SPECIAL + ["un", "##aff", "##able"])}
    assert small.decode([ids["un"], ids["##aff"], ids["##able"], ids["[SEP]"], ids["un"]]) == "unaffable"
    assert small.decode([ids["##aff"], ids["[PAD]"], ids["un"]]) == "aff"
    assert small.decode([]) == ""
    with pytest.raises(VocabError, match="outside the vocabulary"):
        small.decode([len(small)])


def test_vocab_errors(tmp_path, small):
    with pytest.raises(VocabError, match="no such"):
        Tokenizer.from_file(tmp_path / "missing.txt")
    with pytest.raises(VocabError, match="directory"):
        Tokenizer.from_file(tmp_path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("\n".join(SPECIAL).encode() + "\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(VocabError, match="UTF-8"):
        Tokenizer.from_file(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(VocabError, match="empty"):
        Tokenizer.from_file(empty)
    nosep = tmp_path / "nosep.txt"
    nosep.write_text("[PAD]\n[UNK]\n[CLS]\nword\n")
    with pytest.raises(VocabError, match=r"\[SEP\]"):
        Tokenizer.from_file(nosep)
    with pytest.raises(VocabError, match=f"{len(small)} tokens but the decoder predicts 30522"):
        small.check_fits(30522)
    small.check_fits(len(small))
