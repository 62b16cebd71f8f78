"""A whole results file (`python -m c4c caption DIR --out F.jsonl`, or its Parquet folder) as the
Explore page shows it: one row per video, filters, sorting, paging, and each video's stored result.

Pure functions of the file, except for `CorpusCache` (a small in-process LRU, so that paging and
filtering a 100,000-line file does not re-read it). Nothing here runs a model.
The row's columns are described in `explore_table.py`.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..result import CaptionResult, ModelCaption
from .explore_rows import _parts, row_from_result

__all__ = ["Corpus", "Skipped", "CorpusCache", "row_from_result", "load_corpus", "load_references",
           "resolve_in", "list_results", "stored_result", "SORTABLE", "EXPLORE_DIR_ENV", "default_explore_dir"]

EXPLORE_DIR_ENV = "C4C_EXPLORE_DIR"
BASE_COLUMNS = ["line", "video", "decoder", "caption", "metric", "margin", "runner_up", "distinct", "decoders"]
GROUNDING_COLUMNS = ["grounding", "grounding_pick", "grounding_disagrees"]
REF_COLUMNS = ["ref_cider", "best_ref_cider", "best_ref_decoder", "vote_missed"]
SORTABLE = ["line", "video", "decoder", "margin", "distinct", "grounding", "ref_cider", "best_ref_cider"]
MAX_REPORTED = 50         # skipped lines listed one by one; beyond this only counted
MAX_PAGE_SIZE = 500       # rows per page: the browser table stays responsive


@dataclass(frozen=True)
class Skipped:
    line: int       # 1-based line (JSON lines) or row (Parquet) number
    reason: str


@dataclass
class Corpus:
    """One loaded results file."""
    path: Path
    table: pd.DataFrame               # one row per captioned video (the columns above) + `texts`, `captions`
    decoders: list[str]               # every decoder seen, in first-seen order
    pairwise: np.ndarray              # (N, D, D) float32: caption i scored against j alone, the selecting metric
    locate: list                      # per row: byte offset (JSON lines) or (part file, row) (Parquet)
    skipped: list[Skipped] = field(default_factory=list)   # malformed lines (first MAX_REPORTED)
    n_skipped: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (line, video, error): videos that failed
    load_s: float = 0.0
    references: str | None = None     # the references file scored against, if any

    @property
    def has_grounding(self) -> bool:
        return "grounding" in self.table.columns

    @property
    def has_references(self) -> bool:
        return "ref_cider" in self.table.columns


def default_explore_dir() -> Path:
    """The folder whose results files the page may open: $C4C_EXPLORE_DIR, else ./results."""
    return Path(os.environ.get(EXPLORE_DIR_ENV) or "results")


def resolve_in(root: str | os.PathLike, name: str | os.PathLike) -> Path:
    """`name` (relative to `root`, or absolute) as a real path inside `root`; InputError otherwise.
    Symlinks are followed first, so a link inside the folder cannot point out of it."""
    text = str(name).strip()
    if not text:
        raise InputError("no results file given; pick one from the list or upload one")
    base = Path(root).resolve()
    try:
        path = (base / text).resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links, a name too long
        raise InputError(f"{text[:80]!r}: not a usable file name") from None
    if not path.is_relative_to(base):
        raise InputError(f"{text}: outside the folder the explorer may read ({EXPLORE_DIR_ENV}); "
                         "copy the file into it or upload it")
    if not path.exists():
        raise InputError(f"{text}: no such file in the explorer's folder")
    return path


def list_results(root: str | os.PathLike, suffixes=(".jsonl", ".parquet", ".json"), limit: int = 1000) -> list[str]:
    """Results and references files under `root` (relative names, sorted; at most `limit`, so a huge
    folder cannot stall the page); Parquet folders count."""
    base = Path(root)
    if not base.is_dir():
        return []
    out = []
    for p in base.rglob("*"):
        if p.suffix.lower() in suffixes and (p.is_file() or (p.is_dir() and p.suffix.lower() == ".parquet")):
            if p.is_file() and p.parent.suffix.lower() == ".parquet":
                continue  # a part of a Parquet folder
            out.append(str(p.relative_to(base)))
            if len(out) >= limit:
                break
    return sorted(out)


def _pairwise(d: dict, n: int) -> np.ndarray | None:
    """The selecting metric's (n, n) pairwise matrix as float32 (None on the diagonal -> NaN)."""
    mat = (d.get("pairwise") or {}).get(d["metric"])
    if not isinstance(mat, list) or len(mat) != n:
        return None
    try:
        sub = np.array(mat, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return sub if sub.shape == (n, n) else None


def _records(path: Path):
    """(line number, locator, raw JSON text or None, reason) for every record of a results file."""
    if path.is_dir() or path.suffix.lower() == ".parquet":
        yield from _parquet_records(path)
        return
    with open(path, "rb") as f:
        offset = 0
        for n, raw in enumerate(f, 1):
            here, offset = offset, offset + len(raw)
            if raw.strip():
                yield n, here, raw, None


def _parquet_records(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading Parquet results needs pyarrow: pip install pyarrow") from None
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    n = 0
    for part in parts:
        try:
            t = pq.read_table(part, columns=["video", "error", "error_type", "result"]).to_pydict()
        except Exception as e:  # a torn or foreign part: one reported problem, the other parts still load
            n += 1
            yield n, None, None, f"{part.name}: unreadable Parquet part ({type(e).__name__})"
            continue
        for k, res in enumerate(t["result"]):
            n += 1
            if res is None:
                err = {"video": t["video"][k], "error": t["error"][k] or "", "error_type": t["error_type"][k]}
                yield n, (part, k), json.dumps(err), None
            else:
                yield n, (part, k), res, None


def load_corpus(path: str | os.PathLike, references: str | os.PathLike | None = None) -> Corpus:
    """Read a results file: every result becomes a row; error records (videos that failed) are
    listed in `failed`; a line that is not JSON or not a result is skipped and reported by number."""
    t0 = time.perf_counter()
    path = Path(path)
    rows, mats, locate, skipped, failed = [], [], [], [], []
    n_skipped = 0
    index: dict[str, int] = {}

    def skip(n: int, reason: str) -> None:
        nonlocal n_skipped
        n_skipped += 1
        if len(skipped) < MAX_REPORTED:
            skipped.append(Skipped(n, reason))

    # The cyclic GC would walk the growing heap of row dicts again and again; nothing made here
    # forms a cycle, so it is paused while reading.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:  # gradio depends on orjson: 3.6x faster than json here (5,000 result lines: 0.08 s vs 0.30 s)
        from orjson import loads
    except ImportError:
        loads = json.loads
    try:
        for n, where, raw, problem in _records(path):
            if problem:
                skip(n, problem)
                continue
            try:
                d = loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                skip(n, f"not valid JSON ({e.msg if hasattr(e, 'msg') else 'not UTF-8'})")
                continue
            if isinstance(d, dict) and "error" in d and "captions" not in d:
                failed.append((n, str(d.get("video", "?")), str(d.get("error"))))
                continue
            try:
                parts = _parts(d)
                built = [(row_from_result(part), part) for part in parts]
            except (ValueError, KeyError, TypeError) as e:
                skip(n, f"not a c4c result: {e}")
                continue
            for row, part in built:  # one row per video, or per segment where the result has segments
                for name in row["names"]:
                    index.setdefault(name, len(index))
                row["line"] = n
                if part is not d:
                    row["segment"] = part["segment"]
                rows.append(row)
                # Only the selecting metric's matrix is kept; the parsed result is dropped at once.
                mats.append((tuple(index[name] for name in row["names"]), _pairwise(part, len(row["names"]))))
                locate.append(where)
    except OSError as e:
        raise InputError(f"{path.name}: cannot be read ({e.strerror or type(e).__name__})") from None
    finally:
        if gc_was_on:
            gc.enable()
    size = len(index)
    pairwise = np.full((len(rows), size, size), np.nan, dtype=np.float32)
    for k, (ids, m) in enumerate(mats):
        if m is None:
            continue
        if ids == tuple(range(size)):  # the usual case: every decoder, in first-seen order
            pairwise[k] = m
        else:
            pairwise[k][np.ix_(ids, ids)] = m
    del mats
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=BASE_COLUMNS + ["names", "captions"])
    table["texts"] = [" \n ".join(c).lower() for c in table["captions"]]  # the text search's haystack
    if "grounding" in table.columns and table["grounding"].isna().all():
        table = table.drop(columns=GROUNDING_COLUMNS)
    corpus = Corpus(path=path, table=table, decoders=list(index), pairwise=pairwise, locate=locate,
                    skipped=skipped, n_skipped=n_skipped, failed=failed)
    if references:
        _score_references(corpus, load_references(references))
        corpus.references = Path(references).name
    corpus.load_s = time.perf_counter() - t0
    return corpus


def load_references(path: str | os.PathLike) -> dict[str, list[str]]:
    """Video id (the file name's stem) -> reference captions, from an MSR-VTT `MSRVTT_data.json`
    ({"sentences": [{"video_id", "caption"}]}) or an examples `captions.json` ({file: {"captions"}})."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path.name}: not a readable JSON references file ({type(e).__name__})") from None
    refs: dict[str, list[str]] = {}
    if isinstance(data, dict) and isinstance(data.get("sentences"), list):
        for s in data["sentences"]:
            if isinstance(s, dict) and "video_id" in s and "caption" in s:
                refs.setdefault(Path(str(s["video_id"])).stem, []).append(str(s["caption"]))
    elif isinstance(data, dict):
        for key, v in data.items():
            caps = v.get("captions") if isinstance(v, dict) else v
            if isinstance(caps, list) and caps:
                refs[Path(key).stem] = [str(c) for c in caps]
    if not refs:
        raise InputError(f"{path.name}: no reference captions found; expected MSR-VTT's 'sentences' "
                         "or {video: {'captions': [...]}}")
    return refs


def _score_references(corpus: Corpus, refs: dict[str, list[str]]) -> None:
    """Add ref_cider, best_ref_cider and best_ref_decoder for the rows whose video has references."""
    from ..vote.metrics import sentence_scores
    t = corpus.table
    keys = [Path(v.replace("\\", "/")).stem for v in t["video"]]
    hit = [k for k, key in enumerate(keys) if key in refs]
    ref_c = np.full(len(t), np.nan)
    best_c = np.full(len(t), np.nan)
    best_d = [""] * len(t)
    if hit:
        hyps, rlist, owner = [], [], []
        for k in hit:
            for cap in t["captions"].iat[k]:
                hyps.append(cap)
                rlist.append(refs[keys[k]])
                owner.append(k)
        # One call: CIDEr-D's document frequencies come from the references of the scored videos.
        scores = sentence_scores("cider", rlist, hyps)
        pos = 0
        for k in hit:
            n = len(t["captions"].iat[k])
            s = scores[pos:pos + n]
            pos += n
            names = t["names"].iat[k]
            win = names.index(t["decoder"].iat[k])
            best = max(range(n), key=lambda i: (s[i], -i))
            ref_c[k], best_c[k], best_d[k] = s[win], s[best], names[best]
    t["ref_cider"], t["best_ref_cider"], t["best_ref_decoder"] = ref_c, best_c, best_d
    t["vote_missed"] = best_c > ref_c + 1e-9  # False where there are no references (NaN compares False)


def _lenient(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def stored_result(corpus: Corpus, line: int) -> CaptionResult:
    """The full result recorded at `line`, read back from the file (never recomputed). Fields this
    version does not know (e.g. a newer schema's grounding) are dropped for the single-video view."""
    hits = np.flatnonzero(corpus.table["line"].to_numpy() == int(line))
    if not len(hits):
        raise InputError(f"{corpus.path.name}: no result at line {line}")
    where = corpus.locate[int(hits[0])]
    if isinstance(where, tuple):
        import pyarrow.parquet as pq
        part, k = where
        raw = pq.read_table(part, columns=["result"]).column("result")[k].as_py()
    else:
        with open(corpus.path, "rb") as fh:
            fh.seek(where)
            raw = fh.readline()
    d = json.loads(raw)
    d.pop("caption", None)
    for key in ("segments", "segmentation"):  # the single-video view shows the whole video's vote
        d.pop(key, None)
    d = _lenient(CaptionResult, d)
    d.pop("schema", None)
    d["captions"] = [ModelCaption(**_lenient(ModelCaption, c)) for c in d["captions"]]
    return CaptionResult(**d)


class CorpusCache:
    """Loaded corpora by (file, size, mtime, references): paging and filtering reuse the parse, and
    a file that changes on disk is read again. Small: each 100,000-video corpus holds ~100 MB."""

    def __init__(self, max_items: int = 3):
        self.max_items = max_items
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: Path, references: Path | None):
        def stamp(p: Path):
            s = p.stat()
            if p.is_dir():  # a Parquet folder: its parts' sizes and times
                parts = sorted(p.glob("part-*.parquet"))
                return (str(p), tuple((q.name, q.stat().st_size, q.stat().st_mtime_ns) for q in parts))
            return (str(p), s.st_size, s.st_mtime_ns)
        return stamp(path), stamp(references) if references else None

    def get(self, path: str | os.PathLike, references: str | os.PathLike | None = None) -> Corpus:
        path, references = Path(path).resolve(), Path(references).resolve() if references else None
        key = self._key(path, references)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        corpus = load_corpus(path, references)  # outside the lock: one slow file must not block the others
        with self._lock:
            self._items[key] = corpus
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return corpus
