"""Frame embeddings of many videos into one features file, resumable (the engine of `c4c extract`).

The output F maps video id (file stem, or synthetic id) -> float32 (n_frames, D), in the reference's
pickle layout (`.pickle`) or as `.npz` (see c4c/features/files.py); two files with the same stem are
refused. Inputs are found as `c4c caption` finds them (folders, quoted globs, .txt lists).

Resumable: each finished video is appended to the journal F.partial and fsync'ed, so a killed run
loses at most the video in flight; a rerun of the same command skips the ids already in F or the
journal (a torn last record is cut away) and, when it is done, merges the journal into F atomically
and deletes it. A journal left by another backbone, crop or max_frames is refused, never mixed
in. Only ids are kept in memory during a run; the merge reads and writes an .npz one video at a
time, a .pickle (one pickled dict) whole. A video that cannot be read is skipped and recorded with a
one-line reason in F.errors.json; reruns skip it too unless retry_errors is set. A shard i/n
takes the videos whose name hashes to shard i (the batch captioner's rule), so n machines extract
disjoint parts.
"""


from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import C4CError, InputError

__all__ = ["extract", "ExtractReport", "Interrupted", "summary", "synth_items", "file_items"]


@dataclass
class ExtractReport:
    out: Path | None = None
    done: list[str] = field(default_factory=list)          # extracted in this run
    skipped: list[str] = field(default_factory=list)       # already in the output file or its journal
    failed: dict[str, str] = field(default_factory=dict)   # id -> one-line reason: this run's and earlier ones
    failed_before: list[str] = field(default_factory=list)  # ids of `failed` recorded earlier, not retried
    truncated: int = 0                                     # bytes of a torn journal record cut away
    interrupted: bool = False


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `extract`: the journal keeps the finished videos; `report` says how far it got."""

    def __init__(self, report: ExtractReport):
        super().__init__("interrupted")
        self.report = report


def _stored(out: Path) -> tuple[set[str], set[int]]:
    """Ids and feature widths already in `out` (an .npz is read one array at a time)."""
    from .files import iter_features
    ids, dims = set(), set()
    if out.exists():
        for vid, arr in iter_features(out):
            ids.add(vid)
            dims.add(arr.shape[1])
    return ids, dims


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())  # one line, whatever the decoder said
    return text if isinstance(e, C4CError) else f"{type(e).__name__}: {text}"


def extract(backbone, items: Sequence[tuple[str, Callable[[], np.ndarray]]], out, save_every: int | None = None,
            crop: str = "c4c", progress: bool = True, retry_errors: bool = False,
            settings: dict | None = None) -> ExtractReport:
    """Embed the frames of each (video id, frames loader) not yet in `out`; each video is journaled as
    it finishes and the journal is merged into `out` at the end (see the module docstring).

    A loader returns uint8 [n, H, W, 3] frames or raises (C4CError: a bad video); its failure is
    recorded in the errors file and reported in `failed`. `settings` (e.g. {"max_frames": 20}) must
    match an unfinished run's for it to be resumed. `save_every` is accepted for old callers and
    ignored: every video is saved. Ctrl-C raises `Interrupted` (its `.report`) without merging."""
    from tqdm import tqdm

    from .files import FEATURE_SUFFIXES
    from .journal import Journal, merge, read_errors
    from ..video.preprocess import preprocess

    out = Path(out)
    if out.suffix.lower() not in FEATURE_SUFFIXES:
        raise InputError(f"--out {out}: use a .pickle, .pkl or .npz file name")
    meta = {"backbone": backbone.fingerprint, "dim": backbone.embed_dim, "crop": crop, **(settings or {})}
    journal = Journal(out, meta)
    try:
        have, dims = _stored(out)
        if dims and dims != {backbone.embed_dim}:
            raise InputError(f"{out} holds {sorted(dims)}-d features but this backbone gives {backbone.embed_dim}-d; "
                             "use another --out (features of different backbones must not mix)")
        earlier = {**read_errors(out), **journal.errors}
        report = ExtractReport(out=out, truncated=journal.truncated)
        todo, seen = [], set()
        for vid, load in items:
            if vid in seen:
                continue
            seen.add(vid)
            if vid in have or vid in journal.features:
                report.skipped.append(vid)
            elif vid in earlier and not retry_errors:
                report.failed[vid] = earlier[vid]
                report.failed_before.append(vid)
            else:
                todo.append((vid, load))
        tty = sys.stderr.isatty()
        bar = tqdm(todo, desc="extract", unit="video", file=sys.stderr, disable=not progress, dynamic_ncols=True,
                   mininterval=0.5 if tty else 15.0)
        try:
            for vid, load in bar:
                try:
                    pixels = preprocess(load(), size=backbone.image_size, crop=crop)
                except Exception as e:  # noqa: BLE001 - one bad video must not stop the run; it is recorded
                    if not isinstance(e, C4CError):
                        tqdm.write(f"unexpected error on {vid}:\n{traceback.format_exc()}", file=sys.stderr)
                    report.failed[vid] = _reason(e)
                    journal.fail(vid, report.failed[vid])
                    tqdm.write(f"failed {vid}: {report.failed[vid]}", file=sys.stderr)
                    bar.set_postfix(failed=len(report.failed) - len(report.failed_before), refresh=False)
                    continue
                journal.add(vid, backbone.embed(pixels).numpy().astype(np.float32))  # (n_frames, D)
                report.done.append(vid)
        except KeyboardInterrupt:
            report.interrupted = True
            raise Interrupted(report) from None
        finally:
            bar.close()
        # Failures of ids that now have features are gone; the others (any id, any run) stay.
        errors = {vid: r for vid, r in {**earlier, **journal.errors}.items()
                  if vid not in have and vid not in journal.features}
        if journal.features or journal.errors or not out.exists() or errors != read_errors(out):
            merge(out, journal, errors)
        # else nothing new: `out` and the errors file stay untouched, and closing drops the empty journal
    finally:
        journal.close()
    return report


def summary(report: ExtractReport, shard: tuple[int, int] = (0, 1)) -> str:
    """The one line printed at the end of a run."""
    from .journal import errors_path, journal_path
    where = f"{report.out}" + (f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else "")
    text = (f"{'interrupted' if report.interrupted else 'done'}: {len(report.done)} extracted, "
            f"{len(report.skipped)} skipped (already there), {len(report.failed)} failed")
    if report.failed_before:
        text += f" ({len(report.failed_before)} in an earlier run; --retry-errors retries them)"
    if report.truncated:
        text += f"; cut a torn {report.truncated}-byte record off the journal"
    if report.interrupted:
        return f"{text}; finished videos are kept in {journal_path(report.out)}: rerun the same command to continue"
    return f"{text} -> {where}" + (f"; reasons in {errors_path(report.out)}" if report.failed else "")


def synth_items(split: str, n: int | None, max_frames: int, shard: tuple[int, int]):
    """(id, frames loader) of the shard's videos of a synthetic split, rendered on demand."""
    from ..video.inputs import VideoInput, in_shard
    from ..synth import SplitCounts, render_seconds, split_ids
    ids = split_ids(split, SplitCounts()) if n is None else [f"{split}_{i:05d}" for i in range(n)]
    return [(vid, lambda vid=vid: render_seconds(vid, max_frames))
            for vid in ids if in_shard(VideoInput(vid, vid), *shard)]  # the id is the name hashed


def file_items(inputs: Sequence[str], max_frames: int, shard: tuple[int, int]):
    """(file stem, frames loader) of the shard's videos; a stem shared by two files is an error for
    every shard (decided on the whole list, so all machines agree)."""
    from ..video.inputs import find_videos, in_shard, video_key
    from ..video.frames import sample_frames
    videos = find_videos(list(inputs))
    by_id: dict[str, str] = {}
    for v in videos:
        vid = Path(v.path).stem
        if vid in by_id and by_id[vid] != video_key(v.path):
            raise InputError(f"two videos share the id {vid!r}: {by_id[vid]} and {v.path}; ids are file stems")
        by_id[vid] = video_key(v.path)
    return [(Path(v.path).stem, lambda p=v.path: sample_frames(p, max_frames=max_frames).images)
            for v in videos if in_shard(v, *shard)]
