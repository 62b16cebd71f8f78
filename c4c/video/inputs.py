"""Which videos a batch run covers: folders, globs and list files expanded to one list of paths
(the same list for the same arguments), and the i-th of n shards of that list.

A shard is chosen by a hash of each video's name (its path relative to the folder or list it came
from), not by its position in the list, so adding or removing videos never moves the others to
another shard: n machines can each rerun their shard on a growing corpus and never caption a video
twice or skip one."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["VIDEO_EXTENSIONS", "LIST_EXTENSIONS", "VideoInput", "find_videos", "parse_shard", "in_shard",
           "is_pattern", "video_key"]

# What a folder walk picks up; anything else in the folder (notes, thumbnails, ...) is ignored.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv",
                    ".3gp", ".ogv")
# A file argument with one of these endings is a list of videos, one path per line ('#' comments).
LIST_EXTENSIONS = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class VideoInput:
    path: str    # the path as it is opened and recorded in the output's "video" field
    name: str    # path relative to the folder / list it was found in: what the shard hash sees


def is_pattern(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def video_key(path: str) -> str:
    """What makes two spellings of a path the same video when resuming (`videos/a.mp4` = `./videos/a.mp4`)."""
    return os.path.abspath(path)


def _walk(folder: Path) -> list[VideoInput]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if not f.startswith(".") and f.lower().endswith(VIDEO_EXTENSIONS):
                p = Path(root) / f
                found.append(VideoInput(str(p), p.relative_to(folder).as_posix()))
    return sorted(found, key=lambda v: v.name)


def _read_list(list_file: Path) -> list[VideoInput]:
    # Relative entries are relative to the list file's folder, so a list travels with its videos.
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{list_file}: cannot read this list of videos ({e}); give a UTF-8 text file") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line) if os.path.isabs(line) else list_file.parent / line
            out.append(VideoInput(str(p), line))
    return out


def find_videos(args: list[str]) -> list[VideoInput]:
    """Expand folders (recursively, video extensions only, sorted), glob patterns (`**` allowed,
    sorted), list files (.txt/.lst/.list, in their order) and plain file names into one list, in the
    order of `args`, each video once (its first appearance).

    A plain file that does not exist is kept, so the run records it as a failed video; a folder or
    pattern that finds nothing is an error, since it almost always means a wrong path."""
    found: list[VideoInput] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            hits = _walk(p)
            if not hits:
                raise InputError(f"{arg}: no video files in this folder (looked for {', '.join(VIDEO_EXTENSIONS)})")
        elif p.is_file() and p.suffix.lower() in LIST_EXTENSIONS:
            hits = _read_list(p)
        elif is_pattern(arg) and not p.exists():
            files = sorted(f for f in glob.glob(arg, recursive=True) if os.path.isfile(f))
            if not files:
                raise InputError(f"{arg}: no files match this pattern; check the path (quote it so the shell leaves it to c4c)")
            hits = [VideoInput(f, f) for f in files]
        else:
            hits = [VideoInput(arg, arg)]
        found.extend(hits)
    unique: dict[str, VideoInput] = {}
    for v in found:
        unique.setdefault(video_key(v.path), v)
    return list(unique.values())


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; None -> (0, 1), the whole corpus."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected i/n, e.g. 0/4 for the first of four shards") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text!r}: needs n >= 1 and 0 <= i < n (shards are numbered from 0)")
    return i, n


def in_shard(v: VideoInput, i: int, n: int) -> bool:
    """Whether shard i of n owns this video: a stable hash of its name, so membership never depends
    on which other videos exist."""
    if n == 1:
        return True
    h = int.from_bytes(hashlib.sha1(v.name.encode("utf-8")).digest()[:8], "big")
    return h % n == i
