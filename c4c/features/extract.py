"""`python -m c4c extract`: 1-fps frame embeddings of many videos into one features file.

    python -m c4c extract --backbone B.safetensors --out feats.pickle videos/        # a folder
    python -m c4c extract --backbone B.safetensors --out feats.pickle "clips/*.mp4"  # a glob
    python -m c4c extract --backbone B.safetensors --out feats.npz list.txt          # a list file
    python -m c4c extract --backbone B.safetensors --out train.npz --synth train     # rendered directly
    python -m c4c extract ... --out part0.npz --shard 0/4    # machine 1 of 4 (each its own --out)

The output F maps video id (file stem, or synthetic id) -> float32 (n_frames, D), in the reference's
pickle layout (`.pickle`) or as `.npz` (see c4c/features_io.py); two files with the same stem are
refused. Inputs are found as `python -m c4c caption` finds them (folders, quoted globs, .txt lists).

Resumable: each finished video is appended to the journal F.partial and fsync'ed, so a killed run
loses at most the video in flight; a rerun of the same command skips the ids already in F or the
journal (a torn last record is cut away) and, when it is done, merges the journal into F atomically
and deletes it. A journal left by another --backbone, --crop or --max-frames is refused, never mixed
in. Only ids are kept in memory during a run; the merge reads and writes an .npz one video at a
time, a .pickle (one pickled dict) whole. A video that cannot be read is skipped and recorded with a
one-line reason in F.errors.json; reruns skip it too unless --retry-errors is given. --shard i/n
takes the videos whose name hashes to shard i (the batch captioner's rule), so n machines extract
disjoint parts.

Exit codes (as `python -m c4c caption --out`): 0 every video of the selection has features; 2 some
videos failed (now or in an earlier run), or bad arguments; 130 interrupted (rerun to continue).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import C4CError, InputError

__all__ = ["add_parser", "run", "extract", "ExtractReport", "Interrupted"]


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
    from ..features_io import iter_features
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

    from ..features_io import FEATURE_SUFFIXES
    from ..features_journal import Journal, merge, read_errors
    from ..preprocess import preprocess

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
    from ..features_journal import errors_path, journal_path
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


def add_parser(sub) -> None:
    p = sub.add_parser("extract", help="1-fps CLIP features of many videos into one .pickle/.npz (resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="video files, folders (searched recursively), quoted glob patterns "
                   "or list files (.txt: one path per line)")
    p.add_argument("--synth", choices=("train", "val", "test"), help="render this synthetic split instead")
    p.add_argument("--n", type=int, help="with --synth: the first N videos of the split (default: all of it)")
    p.add_argument("--backbone", required=True, help="image tower weights (c4c .safetensors, CLIP4Clip .bin, ...)")
    p.add_argument("--out", required=True, help="output .pickle (reference layout) or .npz")
    p.add_argument("--max-frames", type=int, default=20, help="at most N frames per video, picked uniformly")
    p.add_argument("--crop", choices=("c4c", "repro"), default="c4c", help="preprocessing crop (default c4c, "
                   "as the captioning pipeline)")
    p.add_argument("--shard", default=None, metavar="i/n", help="extract only shard i of n (0 <= i < n; by a hash "
                   "of each video's name, as `caption --shard`); give each shard its own --out")
    p.add_argument("--retry-errors", action="store_true",
                   help="retry the videos recorded as failed in OUT.errors.json by an earlier run")
    p.add_argument("--save-every", type=int, default=None, help=argparse.SUPPRESS)  # obsolete: every video is saved
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _synth_items(split: str, n: int | None, max_frames: int, shard: tuple[int, int]):
    from ..batch.inputs import VideoInput, in_shard
    from ..synth import SplitCounts, render_seconds, split_ids
    ids = split_ids(split, SplitCounts()) if n is None else [f"{split}_{i:05d}" for i in range(n)]
    return [(vid, lambda vid=vid: render_seconds(vid, max_frames))
            for vid in ids if in_shard(VideoInput(vid, vid), *shard)]  # the id is the name hashed


def _file_items(inputs: Sequence[str], max_frames: int, shard: tuple[int, int]):
    """(file stem, frames loader) of the shard's videos; a stem shared by two files is an error for
    every shard (decided on the whole list, so all machines agree)."""
    from ..batch.inputs import find_videos, in_shard, video_key
    from ..frames import sample_frames
    videos = find_videos(list(inputs))
    by_id: dict[str, str] = {}
    for v in videos:
        vid = Path(v.path).stem
        if vid in by_id and by_id[vid] != video_key(v.path):
            raise InputError(f"two videos share the id {vid!r}: {by_id[vid]} and {v.path}; ids are file stems")
        by_id[vid] = video_key(v.path)
    return [(Path(v.path).stem, lambda p=v.path: sample_frames(p, max_frames=max_frames).images)
            for v in videos if in_shard(v, *shard)]


def run(args) -> int:
    import warnings

    import torch

    from ..backbone import Backbone
    from ..batch.inputs import parse_shard

    if bool(args.inputs) == bool(args.synth):
        raise InputError("give either video files/folders/globs or --synth SPLIT (not both, not neither)")
    if args.max_frames < 1 or args.threads < 1 or (args.n is not None and args.n < 1):
        raise InputError("--max-frames, --threads and --n must be at least 1")
    if Path(args.out).suffix.lower() not in (".pickle", ".pkl", ".npz"):
        raise InputError(f"--out {args.out}: use a .pickle, .pkl or .npz file name")
    shard = parse_shard(args.shard)
    items = (_synth_items(args.synth, args.n, args.max_frames, shard) if args.synth
             else _file_items(args.inputs, args.max_frames, shard))
    torch.set_num_threads(args.threads)
    backbone = Backbone.from_file(args.backbone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-video decoder notes; failures are recorded and reported
        try:
            report = extract(backbone, items, args.out, crop=args.crop, progress=not args.quiet,
                             retry_errors=args.retry_errors, settings={"max_frames": args.max_frames})
        except Interrupted as e:
            print(summary(e.report, shard), flush=True)
            return 130
    print(summary(report, shard), flush=True)
    return 2 if report.failed else 0
