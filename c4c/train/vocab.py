"""A small BERT-id-compatible `vocab.txt` for c4c's synthetic captions.

The decoders of the default zoo speak only the few hundred words of the synthetic captions, so a
30,522-line bert-base-uncased vocabulary would make their word embedding and classifier (tied, vocab
x hidden) the largest part of every file. The vocabulary written here keeps the BERT special ids that
the model and the decoding rely on (reference.md 2.3: [PAD]=0, [UNK]=100, [CLS]=101=BOS, [SEP]=102=EOS,
[MASK]=103) so the same code runs a real bert-base-uncased `vocab.txt` unchanged (real runs use the
user's file; see reference.md 2.7).

Layout: line 0 `[PAD]`, lines 1-99 `[unused0]..[unused98]`, 100 `[UNK]`, 101 `[CLS]`, 102 `[SEP]`,
103 `[MASK]`, then the caption words by decreasing frequency (ties alphabetical, so the file is a pure
function of the captions), then single characters and `##`-continuations of letters and digits, so a
word outside the captions becomes WordPieces instead of `[UNK]`.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SPECIALS", "basic_split", "build_vocab", "write_vocab"]

# The BERT layout of the first 104 ids (ids are 0-based line numbers).
SPECIALS: list[str] = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Fallback pieces: every ASCII letter/digit/punctuation mark as a word start, and letters/digits as
# continuations, so that greedy WordPiece can spell any lower-case ASCII word.
_CHARS = string.ascii_lowercase + string.digits + string.punctuation
_CONT = [f"##{c}" for c in string.ascii_lowercase + string.digits]


def _is_punct(ch: str) -> bool:
    # BERT treats every non-alphanumeric ASCII printable character as punctuation, plus Unicode P*.
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_split(text: str) -> list[str]:
    """Words as BERT's BasicTokenizer (do_lower_case) sees them: lower-cased, accents stripped,
    split on whitespace, every punctuation mark its own word. Good enough to list caption words;
    the real tokenizer (`c4c.captioning.tokenizer`) does the WordPiece step."""
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words: list[str] = []
    for chunk in text.split():
        cur = ""
        for ch in chunk:
            if _is_punct(ch):
                if cur:
                    words.append(cur)
                    cur = ""
                words.append(ch)
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def build_vocab(captions: Iterable[str], min_count: int = 1) -> list[str]:
    """The vocabulary (one token per id) for `captions`: BERT specials, caption words seen at least
    `min_count` times (most frequent first), then character fallback pieces."""
    counts = Counter(w for c in captions for w in basic_split(c))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    vocab = list(SPECIALS)
    seen = set(vocab)
    for tok in [*words, *_CHARS, *_CONT]:
        if tok not in seen:
            vocab.append(tok)
            seen.add(tok)
    return vocab


def write_vocab(vocab: list[str], path: str | Path) -> Path:
    """Write one token per line (the line number is the id), as bert-base-uncased's vocab.txt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
    return path
