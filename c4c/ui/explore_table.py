"""The Explore table's rows: which columns a corpus has, the filters, sorting, paging and the JSON
payload of the `/explore` API (the loading and caching of results files are in `explore.py`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .explore import BASE_COLUMNS, GROUNDING_COLUMNS, MAX_PAGE_SIZE, MAX_REPORTED, REF_COLUMNS, SORTABLE, Corpus

__all__ = ["table_columns", "Filters", "apply_filters", "sort_rows", "page_rows", "explore_payload"]


def table_columns(corpus: Corpus) -> list[str]:
    """The columns a row shows: segments, grounding and references only when the file has them."""
    base = BASE_COLUMNS[:2] + ["segment"] + BASE_COLUMNS[2:] if "segment" in corpus.table.columns else BASE_COLUMNS
    return base + (GROUNDING_COLUMNS if corpus.has_grounding else []) \
        + (REF_COLUMNS if corpus.has_references else [])


@dataclass(frozen=True)
class Filters:
    """What the table keeps; every filter is off by default."""
    decoder: str = ""                 # only videos this decoder won ("" = any)
    all_agree: bool = False           # only videos whose decoders all wrote the same caption
    vote_vs_grounding: bool = False   # only videos where grounding alone would pick another caption
    vote_missed: bool = False         # only videos where another decoder's caption matched the references better
    margin_below: float | None = None  # only videos won by less than this (a close vote)
    search: str = ""                  # only videos where some decoder's caption contains this text


def apply_filters(corpus: Corpus, f: Filters) -> pd.DataFrame:
    t = corpus.table
    keep = np.ones(len(t), dtype=bool)
    if f.decoder:
        keep &= (t["decoder"] == f.decoder).to_numpy()
    if f.all_agree:
        keep &= (t["distinct"] == 1).to_numpy()
    if f.vote_vs_grounding:
        if not corpus.has_grounding:
            raise InputError("this results file has no grounding scores, so vote and grounding cannot disagree")
        keep &= t["grounding_disagrees"].fillna(False).astype(bool).to_numpy()
    if f.vote_missed:
        if not corpus.has_references:
            raise InputError("choose a references file to find the videos where the vote missed a better caption")
        keep &= t["vote_missed"].to_numpy(dtype=bool)
    if t.empty:  # no rows: nothing to compare (an empty column has no string dtype for .str)
        return t
    if f.margin_below is not None:
        keep &= (t["margin"] < f.margin_below).to_numpy()
    if f.search.strip():
        keep &= t["texts"].str.contains(f.search.strip().lower(), regex=False).to_numpy()
    return t[keep]


def sort_rows(t: pd.DataFrame, by: str = "line", descending: bool = False) -> pd.DataFrame:
    """Stable sort; missing values last either way. `line` keeps the file's order."""
    if by not in t.columns:
        raise InputError(f"cannot sort by {by!r}; choose one of {', '.join(c for c in SORTABLE if c in t.columns)}")
    return t.sort_values(by, ascending=not descending, kind="stable", na_position="last")


def page_rows(t: pd.DataFrame, page: int = 1, size: int = 50) -> tuple[pd.DataFrame, int, int]:
    """(the rows of 1-based `page`, the page shown after clamping, the number of pages)."""
    size = max(1, min(int(size), MAX_PAGE_SIZE))
    pages = max(1, math.ceil(len(t) / size))
    page = min(max(1, int(page)), pages)
    return t.iloc[(page - 1) * size: page * size], page, pages


def _json_value(v):
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(v) else round(float(v), 4)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def explore_payload(corpus: Corpus, f: Filters = Filters(), sort_by: str = "line", descending: bool = False,
                    page: int = 1, page_size: int = 50) -> dict:
    """What `/explore` returns: one page of rows (JSON objects) and how the file was read."""
    kept = sort_rows(apply_filters(corpus, f), sort_by, descending)
    shown, page, pages = page_rows(kept, page, page_size)
    cols = table_columns(corpus)
    rows = [{c: _json_value(v) for c, v in zip(cols, rec)} for rec in shown[cols].itertuples(index=False)]
    return {"file": corpus.path.name, "videos": len(corpus.table), "matched": len(kept), "page": page,
            "pages": pages, "page_size": max(1, min(int(page_size), MAX_PAGE_SIZE)), "columns": cols,
            "rows": rows, "decoders": corpus.decoders, "metrics": sorted(set(corpus.table["metric"])), "has_grounding": corpus.has_grounding,
            "references": corpus.references, "skipped": [vars(s) for s in corpus.skipped],
            "skipped_total": corpus.n_skipped,
            "failed": [{"line": n, "video": v, "error": e} for n, v, e in corpus.failed[:MAX_REPORTED]],
            "failed_total": len(corpus.failed), "load_s": round(corpus.load_s, 3)}
