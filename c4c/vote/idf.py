"""Document frequencies for CIDEr-D, stored with a model zoo.

coco-caption's CIDEr-D takes its IDF from the reference sets passed in the same call; on the
captions of one video that gives log(1) - log(1) = 0 for every n-gram (docs/reference.md 6), so the ensemble scores against document frequencies counted once over a
corpus (e.g. the training captions) and saved beside the decoders.

A document is the list of reference captions of one video; an n-gram (n = 1..4) counts once
per document however often it occurs in it, as `CiderScorer.compute_doc_freq` does. Tokens are
whitespace-split after strip, with no case change (the reference evaluation does not lower-case).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import InputError

__all__ = ["IdfTable", "ngram_counts", "MAX_N"]

MAX_N = 4  # CIDEr-D uses 1..4-grams
_FORMAT = "c4c-idf"
_VERSION = 1

Ngram = tuple[str, ...]


def ngram_counts(text: str, n: int = MAX_N) -> dict[Ngram, int]:
    """Term frequencies of the 1..n-grams of `text` (whitespace tokens), in coco-caption's
    `precook` order (all unigrams, then bigrams, ...): CIDEr-D sums in this order."""
    words = text.split()
    counts: dict[Ngram, int] = {}
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            g = tuple(words[i : i + k])
            counts[g] = counts.get(g, 0) + 1
    return counts


class IdfTable:
    """Document frequency of every 1..4-gram over `n_docs` reference sets, and where they came from.

    Immutable: `df` is a read-only mapping from an n-gram (tuple of tokens) to the number of
    documents containing it; n-grams not in it have df 0, which CIDEr-D treats as df 1
    (idf = log(n_docs)).
    """

    __slots__ = ("_df", "_n_docs", "_source")

    def __init__(self, df: Mapping[Ngram, int], n_docs: int, source: str = "") -> None:
        if not isinstance(n_docs, int) or isinstance(n_docs, bool) or n_docs < 1:
            raise InputError(f"an IDF table needs at least one document, got n_docs={n_docs!r}")
        df = dict(df)
        for gram, count in df.items():
            # CIDEr-D needs 1 <= df <= n_docs, else an idf turns negative
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= n_docs:
                raise InputError(f"document frequency of {' '.join(map(str, gram))!r} is {count!r}, must be an integer in 1..n_docs={n_docs}")
        object.__setattr__(self, "_df", df)
        object.__setattr__(self, "_n_docs", n_docs)
        object.__setattr__(self, "_source", str(source))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("IdfTable is immutable")

    def __reduce__(self):
        return (IdfTable, (self._df, self._n_docs, self._source))

    def __repr__(self) -> str:
        return f"IdfTable(n_docs={self._n_docs}, ngrams={len(self._df)}, source={self._source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdfTable):
            return NotImplemented
        return (self._n_docs, self._source, self._df) == (other._n_docs, other._source, other._df)

    __hash__ = None  # compared by contents; hashing a large table is never what a caller wants

    @property
    def df(self) -> Mapping[Ngram, int]:
        """n-gram -> number of documents containing it (read-only view)."""
        return MappingProxyType(self._df)

    @property
    def n_docs(self) -> int:
        """Number of documents (videos) counted."""
        return self._n_docs

    @property
    def source(self) -> str:
        """Provenance, free text: which captions, which split."""
        return self._source

    @classmethod
    def from_captions(cls, docs: Iterable[Iterable[str]], source: str = "") -> IdfTable:
        """Count document frequencies over `docs`, one list of reference captions per video."""
        df: dict[Ngram, int] = {}
        n_docs = 0
        for doc in docs:
            if isinstance(doc, str):
                raise InputError("IdfTable.from_captions wants one list of captions per video, got a bare string")
            n_docs += 1
            seen: set[Ngram] = set()
            for caption in doc:
                seen.update(ngram_counts(caption))
            for g in seen:
                df[g] = df.get(g, 0) + 1
        if n_docs == 0:
            raise InputError("no documents to count IDF over: give at least one video's captions")
        return cls(df=df, n_docs=n_docs, source=source)

    @property
    def log_n_docs(self) -> float:
        """coco-caption's `ref_len`: log of the number of documents."""
        return math.log(float(self.n_docs))

    def doc_freq(self, ngram: Ngram) -> int:
        """Documents containing `ngram` (0 when unseen)."""
        return self._df.get(ngram, 0)

    def __len__(self) -> int:
        """Number of distinct n-grams."""
        return len(self._df)

    def __bool__(self) -> bool:
        return True  # a table is a table even when it holds no n-grams (`if idf:` must not be False)

    def describe(self) -> str:
        """One line for reports: what this IDF is and how big."""
        src = self.source or "unknown source"
        return f"CIDEr-D IDF over {self.n_docs} documents ({len(self)} distinct 1-{MAX_N}-grams) from {src}"

    def to_json_dict(self) -> dict:
        """Plain JSON form: n-grams as space-joined strings, sorted for byte-stable files."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "n_docs": self.n_docs,
            "source": self.source,
            "df": {" ".join(g): c for g, c in sorted(self._df.items())},
        }

    def save(self, path: str | Path) -> Path:
        """Write JSON (gzip-compressed when the name ends in .gz). Returns the path."""
        path = Path(path)
        data = json.dumps(self.to_json_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".gz"):
            # mtime=0 so the same table always gives the same bytes (checksums in manifests)
            with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(data)
        else:
            path.write_bytes(data)
        return path

    @classmethod
    def load(cls, path: str | Path) -> IdfTable:
        """Read a table written by `save` (.json or .json.gz)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
                raw = gzip.decompress(raw)
            obj = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise InputError(f"IDF file not found: {path}") from None
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"IDF file {path} is not readable JSON ({e}); rebuild it with `python -m c4c idf`") from None
        return cls._from_json_dict(obj, path)

    @classmethod
    def _from_json_dict(cls, obj: object, where: object) -> IdfTable:
        if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
            raise InputError(f"{where} is not a c4c IDF table (no \"format\": \"{_FORMAT}\"); build one with `python -m c4c idf`")
        if obj.get("version") != _VERSION:
            raise InputError(f"{where}: IDF table version {obj.get('version')!r} is not supported (expected {_VERSION})")
        n_docs, df_in, source = obj.get("n_docs"), obj.get("df"), obj.get("source", "")
        if not isinstance(n_docs, int) or isinstance(n_docs, bool) or n_docs < 1:
            raise InputError(f"{where}: n_docs must be a positive integer, got {n_docs!r}")
        if not isinstance(df_in, dict) or not isinstance(source, str):
            raise InputError(f"{where}: \"df\" must be an object of n-gram -> count and \"source\" a string")
        df: dict[Ngram, int] = {}
        for key, count in df_in.items():
            gram = tuple(key.split(" "))
            if not 1 <= len(gram) <= MAX_N or "" in gram:
                raise InputError(f"{where}: bad n-gram key {key!r} (1-{MAX_N} tokens joined by single spaces)")
            df[gram] = count
        try:
            return cls(df=df, n_docs=n_docs, source=source)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
