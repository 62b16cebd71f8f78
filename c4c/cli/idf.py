"""`python -m c4c idf CAPTIONS --out idf.json[.gz]`: count CIDEr-D document frequencies.

CAPTIONS is an MSR-VTT-style `MSRVTT_data.json` ({"videos": [{"video_id", ...}], "sentences":
[{"video_id", "caption"}]}; one document per video, in the json order of "videos") or a plain text
file with one caption per line (each line its own document, or blocks separated by blank lines
with --group-by-blank-lines). Captions are used as they are: no lower-casing, whitespace-split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..vote.idf import IdfTable

__all__ = ["add_parser", "run", "read_documents", "SPLITS"]

# MSR-VTT caption split by the json order of "videos" (reference.md 2.7): train / val / test
SPLITS = {"train": (0, 6513), "val": (6513, 7010), "test": (7010, 10000)}


def add_parser(sub) -> None:
    p = sub.add_parser("idf", help="count CIDEr-D document frequencies over reference captions", description=__doc__.split("\n\n")[1])
    p.add_argument("captions", type=Path, help="MSRVTT_data.json-style file, or a text file of one caption per line")
    p.add_argument("--out", type=Path, required=True, help="where to write the table (.json, or .json.gz to compress)")
    p.add_argument("--split", choices=["all", *SPLITS], default="all", help="MSR-VTT json: which videos by json order (train = first 6,513); default all")
    p.add_argument("--videos", type=int, default=None, metavar="N", help="json: use only the first N videos (after --split)")
    p.add_argument("--group-by-blank-lines", action="store_true", help="text file: blank-line-separated blocks are one document each")
    p.add_argument("--source", default=None, help="provenance text stored in the table (default: file name and selection)")
    p.set_defaults(func=run)


def _read_json(path: Path, obj: object, split: str, videos: int | None) -> tuple[list[list[str]], str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("videos"), list) or not isinstance(obj.get("sentences"), list):
        raise InputError(f"{path} is JSON but not MSRVTT_data.json-style: it needs lists \"videos\" and \"sentences\"")
    try:
        ids = [v["video_id"] for v in obj["videos"]]
        pairs = [(s["video_id"], s["caption"]) for s in obj["sentences"]]
    except (KeyError, TypeError) as e:
        raise InputError(f"{path}: every video needs \"video_id\" and every sentence \"video_id\" and \"caption\" ({e!r} missing)") from None
    what = f"{path.name}"
    if split != "all":
        lo, hi = SPLITS[split]
        if len(ids) < hi:
            raise InputError(f"{path} has {len(ids)} videos; the MSR-VTT {split} split needs videos {lo}..{hi - 1} by json order (use --videos N instead)")
        ids = ids[lo:hi]
        what += f" {split} split (videos {lo}..{hi - 1} by json order)"
    if videos is not None:
        if videos < 1:
            raise InputError(f"--videos must be at least 1, got {videos}")
        ids = ids[:videos]
        what += f" first {len(ids)} videos"
    if not all(isinstance(v, (str, int)) for v in ids) or len(set(ids)) != len(ids):
        raise InputError(f"{path}: video_id values must be distinct strings")
    captions: dict[object, list[str]] = {v: [] for v in ids}
    for vid, cap in pairs:
        if not isinstance(cap, str):
            raise InputError(f"{path}: caption of {vid!r} is not a string: {cap!r}")
        if isinstance(vid, (str, int)) and vid in captions:
            captions[vid].append(cap)
    docs = [captions[v] for v in ids if captions[v]]
    if len(docs) < len(ids):
        what += f"; {len(ids) - len(docs)} videos without captions skipped"
    return docs, what


def _read_text(path: Path, text: str, group: bool) -> tuple[list[list[str]], str]:
    lines = [ln.strip() for ln in text.splitlines()]
    if not group:
        return [[ln] for ln in lines if ln], f"{path.name} (one document per line)"
    docs: list[list[str]] = [[]]
    for ln in lines:
        if ln:
            docs[-1].append(ln)
        elif docs[-1]:
            docs.append([])
    return [d for d in docs if d], f"{path.name} (blank-line-separated documents)"


def read_documents(path: Path, split: str = "all", videos: int | None = None, group_by_blank_lines: bool = False) -> tuple[list[list[str]], str]:
    """Documents (one list of captions each) from CAPTIONS, and a description of what was taken."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"captions file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path} as UTF-8 text ({e})") from None
    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} looks like JSON but does not parse: {e}") from None
        return _read_json(Path(path), obj, split, videos)
    if split != "all" or videos is not None:
        raise InputError(f"--split and --videos apply to MSRVTT_data.json-style files; {path} is plain text")
    return _read_text(Path(path), text, group_by_blank_lines)


def run(args: argparse.Namespace) -> int:
    docs, what = read_documents(args.captions, args.split, args.videos, args.group_by_blank_lines)
    if not docs:
        raise InputError(f"no captions found in {args.captions} ({what})")
    table = IdfTable.from_captions(docs, source=args.source or what)
    table.save(args.out)
    n_caps = sum(len(d) for d in docs)
    print(f"{args.out}: {table.n_docs} documents, {n_caps} captions, {len(table)} distinct 1-4-grams; source: {table.source}")
    return 0
