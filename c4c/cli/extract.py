"""`python -m c4c extract`: 1-fps frame embeddings of many videos into one features file.

    python -m c4c extract --backbone B.safetensors --out feats.pickle videos/        # a folder
    python -m c4c extract --backbone B.safetensors --out feats.pickle "clips/*.mp4"  # a glob
    python -m c4c extract --backbone B.safetensors --out train.npz --synth train     # rendered directly

The output maps video id (file stem, or synthetic id) -> float32 (n_frames, D), in the reference's
pickle layout (`.pickle`) or as `.npz` (see c4c/features_io.py). Extraction resumes: ids already in
--out are skipped, and the file is rewritten atomically every --save-every videos. A video that
cannot be read is reported and skipped; the exit code is then 1 (0 when every video worked).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import C4CError, InputError

__all__ = ["add_parser", "run", "extract", "ExtractReport", "video_files", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv")


@dataclass
class ExtractReport:
    done: list[str] = field(default_factory=list)        # extracted in this run
    skipped: list[str] = field(default_factory=list)     # already in the output file
    failed: dict[str, str] = field(default_factory=dict)  # id -> one-line reason


def video_files(inputs: Sequence[str]) -> list[Path]:
    """Files from paths, folders (their video files, recursively) and glob patterns, sorted, unique."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES
                          and not f.name.startswith("."))
        elif p.is_file():
            out.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(f"{item}: no such file, folder or matching files")
            out += matches
    seen, unique = {}, []
    for f in out:
        if f.stem in seen and seen[f.stem] != f.resolve():
            raise InputError(f"two videos share the id {f.stem!r}: {seen[f.stem]} and {f}; ids are file stems")
        if f.stem not in seen:
            seen[f.stem] = f.resolve()
            unique.append(f)
    return unique


def extract(backbone, items: Sequence[tuple[str, Callable[[], np.ndarray]]], out: str | os.PathLike,
            save_every: int = 200, crop: str = "c4c", progress: bool = True) -> ExtractReport:
    """Embed the frames of each (video id, frames loader) not yet in `out` and save to `out`.

    A loader returns uint8 [n, H, W, 3] frames or raises C4CError (reported, skipped)."""
    from tqdm import tqdm

    from ..features_io import load_features, save_features
    from ..preprocess import preprocess

    out = Path(out)
    feats = load_features(out) if out.exists() else {}
    dims = {a.shape[1] for a in feats.values()}
    if dims and dims != {backbone.embed_dim}:
        raise InputError(f"{out} holds {sorted(dims)}-d features but this backbone gives {backbone.embed_dim}-d; "
                         "use another --out (features of different backbones must not mix)")
    report = ExtractReport(skipped=[vid for vid, _ in items if vid in feats])
    todo = [(vid, load) for vid, load in items if vid not in feats]
    unsaved = 0
    for vid, load in tqdm(todo, desc="extract", unit="video", disable=not progress, mininterval=1.0):
        try:
            pixels = preprocess(load(), size=backbone.image_size, crop=crop)
        except C4CError as e:
            report.failed[vid] = str(e)
            tqdm.write(f"skipped {vid}: {e}", file=sys.stderr)
            continue
        feats[vid] = backbone.embed(pixels).numpy().astype(np.float32)
        report.done.append(vid)
        unsaved += 1
        if unsaved >= save_every:
            save_features(out, feats)
            unsaved = 0
    if unsaved or not out.exists():
        save_features(out, feats)
    return report


def add_parser(sub) -> None:
    p = sub.add_parser("extract", help="1-fps CLIP features of many videos into one .pickle/.npz (resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="video files, folders or glob patterns")
    p.add_argument("--synth", choices=("train", "val", "test"), help="render this synthetic split instead")
    p.add_argument("--n", type=int, help="with --synth: the first N videos of the split (default: all of it)")
    p.add_argument("--backbone", required=True, help="image tower weights (c4c .safetensors, CLIP4Clip .bin, ...)")
    p.add_argument("--out", required=True, help="output .pickle (reference layout) or .npz")
    p.add_argument("--max-frames", type=int, default=20, help="at most N frames per video, picked uniformly")
    p.add_argument("--crop", choices=("c4c", "repro"), default="c4c", help="preprocessing crop (default c4c, "
                   "as the captioning pipeline)")
    p.add_argument("--save-every", type=int, default=200, help="rewrite the output every N videos")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _synth_items(split: str, n: int | None, max_frames: int):
    from ..synth import SplitCounts, render_seconds, split_ids
    ids = split_ids(split, SplitCounts()) if n is None else [f"{split}_{i:05d}" for i in range(n)]
    return [(vid, lambda vid=vid: render_seconds(vid, max_frames)) for vid in ids]


def _file_items(files: Sequence[Path], max_frames: int):
    from ..frames import sample_frames
    return [(f.stem, lambda f=f: sample_frames(f, max_frames=max_frames).images) for f in files]


def run(args) -> int:
    import warnings

    import torch

    from ..backbone import Backbone

    if bool(args.inputs) == bool(args.synth):
        raise InputError("give either video files/folders/globs or --synth SPLIT (not both, not neither)")
    if args.max_frames < 1 or args.save_every < 1 or (args.n is not None and args.n < 1):
        raise InputError("--max-frames, --save-every and --n must be at least 1")
    if Path(args.out).suffix.lower() not in (".pickle", ".pkl", ".npz"):
        raise InputError(f"--out {args.out}: use a .pickle, .pkl or .npz file name")
    torch.set_num_threads(args.threads)
    items = (_synth_items(args.synth, args.n, args.max_frames) if args.synth
             else _file_items(video_files(args.inputs), args.max_frames))
    backbone = Backbone.from_file(args.backbone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-video decoder notes; failures are reported below
        report = extract(backbone, items, args.out, args.save_every, args.crop, progress=not args.quiet)
    print(f"{args.out}: {len(report.done)} extracted, {len(report.skipped)} already there, "
          f"{len(report.failed)} failed")
    return 1 if report.failed else 0
