"""`python -m c4c synth`: write synthetic clips (H.264 mp4 + captions.json) and/or annotations.

    python -m c4c synth --split test --n 8 --out examples/            # 8 diverse test clips
    python -m c4c synth --annotations build/zoo/MSRVTT_data.json      # captions of every split
    python -m c4c synth --annotations A.json --counts 60,10,10        # the tiny CI corpus
"""

from __future__ import annotations

import argparse

from ..errors import InputError

__all__ = ["add_parser", "run", "parse_counts"]


def parse_counts(text: str):
    """"3000,300,500" -> SplitCounts(train=3000, val=300, test=500)."""
    from ..synth import SplitCounts
    try:
        train, val, test = (int(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--counts wants three integers train,val,test (e.g. 5000,300,500), got {text!r}") from None
    if min(train, val, test) < 0:
        raise InputError(f"--counts must not be negative, got {text!r}")
    return SplitCounts(train, val, test)


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="generate synthetic captioned clips (mp4) or MSR-VTT style annotations",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to take clips from")
    p.add_argument("--n", type=int, default=8, help="number of clips to write with --out")
    p.add_argument("--first", action="store_true", help="take the first N ids instead of N diverse ones")
    p.add_argument("--out", help="folder for <id>.mp4 files and captions.json")
    p.add_argument("--annotations", help="write MSRVTT_data.json-style annotations of all splits here")
    p.add_argument("--counts", default="5000,300,500", help="videos per split: train,val,test")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..synth import diverse_ids, split_ids, write_annotations, write_examples
    if not args.out and not args.annotations:
        raise InputError("nothing to do: give --out DIR (clips) and/or --annotations FILE")
    counts = parse_counts(args.counts)
    if args.out:
        if args.n < 1 or args.n > counts.of(args.split):
            raise InputError(f"--n must be 1..{counts.of(args.split)} for split {args.split!r}, got {args.n}")
        ids = split_ids(args.split, counts)[:args.n] if args.first else diverse_ids(args.split, args.n, counts)
        path = write_examples(ids, args.out)
        print(f"wrote {len(ids)} clips and {path}")
    if args.annotations:
        path = write_annotations(args.annotations, counts)
        print(f"wrote {path} ({counts.train}/{counts.val}/{counts.test} videos)")
    return 0
