"""Segmented captioning's speed and memory on a generated long video with cuts.

    python benchmarks/segments_speed.py [--minutes 10] [--size 360x640] [--zoo weights/demo] [--out DIR]

Writes (once; reused when present) a `--minutes` video of synthetic clips joined by hard cuts, 25 fps,
H.264 (c4c/synth/cuts.py), then runs `Pipeline.caption(video, CaptionSettings(segments="auto"))` in a
fresh process and prints wall time, the stages' seconds, seconds per video minute, the speed relative
to real time, the segments found against the true cuts, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from c4c.pipeline import CaptionSettings, Pipeline
from c4c.vote.metrics import start_meteor
start_meteor()
pipe = Pipeline.from_zoo(sys.argv[2] or None, device="cpu", cache_size=0)
t1 = time.perf_counter()
r = pipe.caption(sys.argv[1], CaptionSettings(segments=sys.argv[3]))
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "caption_s": t2 - t1, "timings": r.timings,
                  "cuts": r.segmentation["cuts_s"], "spans": [[s.start_s, s.end_s] for s in r.segments],
                  "duration_s": r.video_info["duration_s"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", default="360x640", help="H x W (default 360x640)")
    ap.add_argument("--zoo", default="")
    ap.add_argument("--segments", default="auto")
    ap.add_argument("--out", default="/tmp/c4c-segments-speed")
    args = ap.parse_args()
    from c4c.synth.cuts import write_cut_video
    h, w = (int(x) for x in args.size.split("x"))
    path = Path(args.out) / f"cuts_{args.minutes:g}min_{w}x{h}.mp4"
    truth_file = path.with_suffix(".json")
    if not truth_file.is_file():
        t = time.perf_counter()
        truth = write_cut_video(path, "hard", seed="speed", size=(h, w), total_s=args.minutes * 60)
        truth_file.write_text(json.dumps(truth))
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB, {len(truth)} cuts) in {time.perf_counter() - t:.0f} s")
    truth = json.loads(truth_file.read_text())
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), args.zoo, args.segments], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    minutes = r["duration_s"] / 60
    from segments_detectors import f1, match  # noqa: E402  (same folder)
    tp, fp, fn = match([a for a, _ in r["spans"][1:]], truth)
    print(f"{path.name}: {r['duration_s']:.0f} s, {len(truth)} true cuts; --segments {args.segments}")
    print(f"  caption: {r['caption_s']:.1f} s wall = {r['caption_s'] / minutes:.2f} s per video minute "
          f"= {r['duration_s'] / r['caption_s']:.1f}x real time (models loaded before: {r['load_s']:.1f} s)")
    print("  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items()))
    print(f"  segments: {len(r['spans'])}; boundaries vs true cuts within +-1 s: {tp} correct, {fp} extra, "
          f"{fn} missed (F1 {f1(tp, fp, fn)[2]:.2f})")
    print(f"  peak resident memory of the captioning process: {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
