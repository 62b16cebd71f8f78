"""`python -m c4c evaluate`: the paper's Table 1 for a zoo on a split of captioned videos.

    python -m c4c evaluate --zoo weights/demo --features build/zoo/features_test.npz \\
        --annotations build/zoo/MSRVTT_data.json [--split test] [--beam 5] [--json]

Rows: each decoder, the leave-one-out ensemble under each selecting metric, the oracle (best
decoder caption per video in hindsight) and the most-frequent-training-caption baseline; B@4,
METEOR, ROUGE-L, CIDEr-D x100 with the reference conventions (docs/reference.md 4). On synthetic clips a second
table gives each row's attribute accuracies (colour, shape, event with direction, size, both objects
of two-object clips; c4c.synth.parse) and an attribute oracle (any decoder right).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a zoo's decoders, ensemble, oracle and baseline on a split",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", help="model zoo folder (default: the shipped weights/demo)")
    p.add_argument("--features", required=True, help="frame features of the split's videos (.pickle or .npz)")
    p.add_argument("--annotations", required=True, help="MSRVTT_data.json-style captions (refs and splits)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--beam", type=int, default=5, help="beam width (1 = greedy)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--tune-select", action="store_true",
                   help="tune the combined selection rule's w on this split (use --split val) and store it in the "
                        "zoo's manifest ('selection'); needs a zoo with a text tower")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..errors import InputError
    from ..train.evaluate import evaluate_zoo
    from ..zoo import default_zoo_dir
    if args.beam < 1:
        raise InputError(f"--beam must be >= 1, got {args.beam}")
    torch.set_num_threads(max(1, args.threads))
    log = (lambda s: print(s, file=sys.stderr)) if not args.quiet else None
    zoo_dir = args.zoo or default_zoo_dir()
    tune = {} if args.tune_select else None
    if tune is not None:
        from ..zoo import read_manifest
        if "text_tower" not in read_manifest(zoo_dir):
            raise InputError(f"--tune-select needs a zoo with a text tower; {zoo_dir} has none")
    ev = evaluate_zoo(zoo_dir, args.features, args.annotations, split=args.split,
                      beam=args.beam, progress=not args.quiet, log=log, tune=tune)
    print(json.dumps(ev.to_json(), indent=2) if args.json else ev.table())
    if tune:
        from ..zoo import read_manifest, write_manifest
        m = read_manifest(zoo_dir)
        m.pop("format", None)
        write_manifest(zoo_dir, {**m, "selection": tune})
        print(f"selection: w = {tune['combined_weight']:g} ({tune['tuned_on']}); {args.split} CIDEr-D per rule "
              f"{tune['val_cider']}; stored in {zoo_dir}/manifest.json", file=sys.stderr)
    return 0
