"""`python -m c4c build-zoo`: rebuild the default model zoo from nothing (data, backbone, features,
vocab, IDF, five decoders, evaluation, manifest).

    python -m c4c build-zoo --out weights/demo                 # full: ~41 min on 2 CPU cores (measured)
    python -m c4c build-zoo --out /tmp/zoo --size tiny         # the CI version: a few minutes

Resumable: stages whose outputs exist are skipped; --force redoes all, --redo STAGE that stage and
everything after it. Intermediate files go to --work (default build/zoo, or build/zoo-tiny).
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from ..train.build_zoo import STAGES
    p = sub.add_parser("build-zoo", help="rebuild the demo model zoo from nothing (synthetic data -> weights)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="weights/demo", help="zoo folder to write (default weights/demo)")
    p.add_argument("--size", choices=("full", "tiny"), default="full", help="full zoo or the tiny CI build")
    p.add_argument("--work", help="folder for intermediate files (default build/zoo[-tiny])")
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--redo", action="append", default=[], choices=STAGES, metavar="STAGE",
                   help=f"redo this stage and the later ones ({', '.join(STAGES)}); repeatable")
    p.add_argument("--workers", type=int, help="decoders trained in parallel (default: 5 full, 2 tiny)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for the single-process stages")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import replace

    import torch

    from ..train.build_zoo import RECIPES, build_zoo
    from ..errors import InputError
    recipe = RECIPES[args.size]
    if args.workers is not None:
        if args.workers < 1:
            raise InputError(f"--workers must be >= 1, got {args.workers}")
        recipe = replace(recipe, workers=args.workers)
    torch.set_num_threads(max(1, args.threads))
    work = args.work or ("build/zoo" if args.size == "full" else "build/zoo-tiny")
    manifest = build_zoo(args.out, work, recipe, size=args.size, force=args.force, redo=tuple(args.redo),
                         progress=not args.quiet)
    print(f"zoo written to {args.out} ({len(manifest['decoders'])} decoders, "
          f"build {manifest['build']['seconds']:.0f} s)")
    return 0
