"""BERT WordPiece tokenisation, exactly as the reference caption code does it.

The reference (UniVL `modules/tokenization.py`, reused unchanged by the CLIP4Caption reproduction)
is the original BERT BasicTokenizer (clean text, split CJK characters, whitespace split, lower-case
and strip accents, split punctuation) followed by greedy longest-match WordPiece. It is small, so
it is written out here in pure Python rather than borrowed from `transformers`, whose tokenizers
differ in corner cases (and `BertTokenizer(vocab_file=...)` silently ignores the file).

Detokenisation follows the reference `eval_epoch` verbatim (reference.md 2.6): cut at the first `[SEP]`,
then at the first `[PAD]`, join with spaces, drop `" ##"`, strip `#` characters, strip spaces.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import VocabError

__all__ = ["Tokenizer", "CaptionRows", "caption_rows"]

# Tokens the reference BasicTokenizer never lower-cases or splits. `[PAD]` is deliberately absent:
# the reference constructor's default leaves it out, so "[PAD]" in text becomes "[", "pad", "]".
_NEVER_SPLIT = ("[UNK]", "[SEP]", "[MASK]", "[CLS]")
_MAX_CHARS_PER_WORD = 100  # longer words become [UNK] (reference WordpieceTokenizer default)


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # ASCII symbols such as "$", "^", "`" are not Unicode punctuation but BERT treats them as such.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _basic_tokenize(text: str) -> list[str]:
    """BERT BasicTokenizer with do_lower_case=True."""
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            cleaned.append(" ")
        elif _is_cjk(cp):
            cleaned.append(f" {ch} ")
        else:
            cleaned.append(ch)
    pieces: list[str] = []
    for token in "".join(cleaned).split():
        if token in _NEVER_SPLIT:
            pieces.append(token)
            continue
        token = "".join(c for c in unicodedata.normalize("NFD", token.lower())
                        if unicodedata.category(c) != "Mn")
        word: list[str] = []
        for ch in token:
            if _is_punctuation(ch):
                if word:
                    pieces.append("".join(word))
                    word = []
                pieces.append(ch)
            else:
                word.append(ch)
        if word:
            pieces.append("".join(word))
    # The reference re-splits the joined pieces: accent stripping can leave whitespace inside a token.
    return " ".join(pieces).split()


class Tokenizer:
    """A BERT WordPiece vocabulary with the reference tokenisation rules.

    ids are 0-based line numbers of `vocab.txt` (each line stripped, as the reference `load_vocab`
    does; a repeated token maps to its last line there too).
    """

    def __init__(self, tokens: list[str], source: str = "<memory>"):
        self._id_to_token = list(tokens)
        self._vocab = {tok: i for i, tok in enumerate(self._id_to_token)}
        self.source = source
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in self._vocab]
        if missing:
            raise VocabError(f"{source}: the vocabulary lacks {', '.join(missing)}; use the BERT vocab.txt "
                             "that the decoder was trained with")
        self.pad_id = self._vocab["[PAD]"]
        self.unk_id = self._vocab["[UNK]"]
        self.bos_id = self._vocab["[CLS]"]  # the decoder's start token
        self.eos_id = self._vocab["[SEP]"]  # the decoder's end token

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        """Read a BERT `vocab.txt` (one token per line, UTF-8)."""
        path = Path(path)
        try:
            # Text mode with universal newlines, like the reference's readline() loop.
            with open(path, encoding="utf-8") as f:
                tokens = [line.strip() for line in f]
        except FileNotFoundError:
            raise VocabError(f"{path}: no such vocabulary file") from None
        except IsADirectoryError:
            raise VocabError(f"{path}: is a directory, expected a vocab.txt file") from None
        except UnicodeDecodeError as e:
            raise VocabError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start}); "
                             "expected a BERT vocab.txt") from None
        if not tokens:
            raise VocabError(f"{path}: the vocabulary file is empty")
        return cls(tokens, source=str(path))

    def __len__(self) -> int:
        return len(self._id_to_token)

    def tokenize(self, text: str) -> list[str]:
        """Text -> wordpieces (BasicTokenizer, then greedy longest-match-first WordPiece)."""
        out: list[str] = []
        for word in _basic_tokenize(text):
            if len(word) > _MAX_CHARS_PER_WORD:
                out.append("[UNK]")
                continue
            start, sub = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self._vocab:
                        break
                    end -= 1
                if end == start:  # no piece matches: the whole word becomes [UNK]
                    sub = ["[UNK]"]
                    break
                sub.append(piece)
                start = end
            out.extend(sub)
        return out

    def encode(self, text: str) -> list[int]:
        """Text -> ids, without [CLS]/[SEP]."""
        return [self._vocab.get(t, self.unk_id) for t in self.tokenize(text)]

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self._id_to_token):
            raise VocabError(f"{self.source}: token id {i} is outside the vocabulary (size {len(self)}); "
                             "the vocabulary does not belong to this decoder")
        return self._id_to_token[i]

    def decode(self, ids) -> str:
        """ids -> caption text, exactly as the reference writes its hypotheses (reference.md 2.6)."""
        tokens = [self.id_to_token(int(i)) for i in ids]
        for stop in ("[SEP]", "[PAD]"):
            if stop in tokens:
                tokens = tokens[:tokens.index(stop)]
        return " ".join(tokens).replace(" ##", "").strip("#").strip()

    def check_fits(self, vocab_size: int, what: str = "the decoder") -> None:
        """Raise VocabError unless this vocabulary has exactly `vocab_size` entries."""
        if len(self) != vocab_size:
            raise VocabError(f"{self.source}: the vocabulary has {len(self)} tokens but {what} predicts "
                             f"{vocab_size}; use the vocab.txt the decoder was trained with")


@dataclass(frozen=True)
class CaptionRows:
    """Teacher-forcing rows of one caption (reference `_get_text`), each `max_words` long."""
    input_ids: tuple[int, ...]   # [CLS] w1..wn, then [PAD]
    output_ids: tuple[int, ...]  # w1..wn [SEP], then [PAD] (padding targets are 0 and count in the loss)
    mask: tuple[int, ...]        # 1 on the n+1 input positions, 0 after


def caption_rows(tok: Tokenizer, text: str, max_words: int) -> CaptionRows:
    """Build the reference decoder input/target/mask for one caption: wordpieces cut to max_words-1."""
    words = tok.encode(text)[:max_words - 1]
    pad = [tok.pad_id] * (max_words - len(words) - 1)
    return CaptionRows(
        input_ids=tuple([tok.bos_id] + words + pad),
        output_ids=tuple(words + [tok.eos_id] + pad),
        mask=tuple([1] * (len(words) + 1) + [0] * len(pad)),
    )
