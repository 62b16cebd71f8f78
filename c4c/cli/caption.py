"""`python -m c4c caption VIDEO... [--zoo DIR] [--metric M] [--beam K] [--max-frames N] [--json]`"""

from __future__ import annotations

import os
import sys

from ..errors import C4CError
from ..result import METRIC_NAMES, CaptionResult

HELP = "caption video files with the zoo's decoders and the leave-one-out ensemble"


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help=HELP, description=HELP)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (mp4, webm, avi, mkv, ...)")
    p.add_argument("--zoo", default=os.environ.get("C4C_ZOO"),
                   help="model zoo folder (default: $C4C_ZOO, else the shipped weights/demo)")
    p.add_argument("--metric", default="cider", choices=list(METRIC_NAMES),
                   help="metric whose leave-one-out score picks the winner (default: cider = CIDEr-D)")
    p.add_argument("--beam", type=int, default=5, help="beam width, 1 = greedy (default 5)")
    p.add_argument("--max-frames", type=int, default=20, help="frames (1 per second) fed to the decoders (default 20)")
    p.add_argument("--decoders", default=None, help="comma-separated decoder names (default: all)")
    p.add_argument("--fps-mode", default="exact", choices=["exact", "reference"],
                   help="frame times: exact seconds, or the reference code's integer-truncated fps")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--json", action="store_true", help="print the result JSON (one line per video)")
    p.set_defaults(func=run)


def format_table(r: CaptionResult) -> str:
    """The human-readable report of one result."""
    metrics = [r.metric] + [m for m in METRIC_NAMES if m != r.metric]
    name_w = max(5, *(len(c.name) for c in r.captions))
    head = f"  {'rank':<5} {'model':<{name_w}} " + " ".join(f"{METRIC_NAMES[m]:>8}" for m in metrics) + "  caption"
    lines = [f"{r.video}: {len(r.timestamps)} frames at "
             + ", ".join(f"{t:g}" for t in r.timestamps) + " s", head]
    for c in sorted(r.captions, key=lambda c: c.rank):
        mark = "*" if c.rank == 1 else " "
        lines.append(f"  {c.rank:<3}{mark}  {c.name:<{name_w}} "
                     + " ".join(f"{c.loo[m]:8.3f}" for m in metrics) + f"  {c.caption}")
    lines.append(f"  caption ({METRIC_NAMES[r.metric]} vote): {r.caption}")
    lines.append(f"  why: {r.explain()}")
    lines.append("  timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in r.timings.items()))
    return "\n".join(lines)


def run(args) -> int:
    from ..pipeline import CaptionSettings, Pipeline
    decoders = tuple(d.strip() for d in args.decoders.split(",")) if args.decoders else None
    settings = CaptionSettings(metric=args.metric, beam=args.beam, max_frames=args.max_frames,
                               decoders=decoders, fps_mode=args.fps_mode)
    pipe = Pipeline.from_zoo(args.zoo, device=args.device)
    if not args.json:
        print(f"zoo: {pipe.zoo.name} ({pipe.zoo.folder}) - {pipe.zoo.description}")
    failed = 0
    for video in args.videos:
        try:
            result = pipe.caption(video, settings)
        except C4CError as e:  # one bad file must not cost the others their captions
            if len(args.videos) == 1:
                raise
            print(f"error: {video}: {e}", file=sys.stderr)
            failed += 1
            continue
        print(result.to_json() if args.json else format_table(result))
        sys.stdout.flush()
    return 2 if failed else 0
