"""`python -m c4c extract`: 1-fps frame embeddings of many videos into one features file.

    python -m c4c extract --backbone B.safetensors --out feats.pickle videos/        # a folder
    python -m c4c extract --backbone B.safetensors --out feats.pickle "clips/*.mp4"  # a glob
    python -m c4c extract --backbone B.safetensors --out feats.npz list.txt          # a list file
    python -m c4c extract --backbone B.safetensors --out train.npz --synth train     # rendered directly
    python -m c4c extract ... --out part0.npz --shard 0/4    # machine 1 of 4 (each its own --out)


The work is done by `c4c.features.extract` (its docstring: output layout, resuming, errors, shards).

Exit codes (as `python -m c4c caption --out`): 0 every video of the selection has features; 2 some
videos failed (now or in an earlier run), or bad arguments; 130 interrupted (rerun to continue).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError

__all__ = ["add_parser", "run"]


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


def run(args) -> int:
    import warnings

    import torch

    from ..features.extract import Interrupted, extract, file_items, summary, synth_items
    from ..video.inputs import parse_shard
    from ..vision.backbone import Backbone

    if bool(args.inputs) == bool(args.synth):
        raise InputError("give either video files/folders/globs or --synth SPLIT (not both, not neither)")
    if args.max_frames < 1 or args.threads < 1 or (args.n is not None and args.n < 1):
        raise InputError("--max-frames, --threads and --n must be at least 1")
    if Path(args.out).suffix.lower() not in (".pickle", ".pkl", ".npz"):
        raise InputError(f"--out {args.out}: use a .pickle, .pkl or .npz file name")
    shard = parse_shard(args.shard)
    items = (synth_items(args.synth, args.n, args.max_frames, shard) if args.synth
             else file_items(args.inputs, args.max_frames, shard))
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
