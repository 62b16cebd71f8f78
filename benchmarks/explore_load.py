"""How long the Explore page takes to open a large results file: writes N result lines shaped like
`caption --out`'s (5 decoders, all four metrics' leave-one-out scores and pairwise matrices, token
ids, timings; ~6 KB a line, as the shipped zoo's lines), plus a few malformed lines, then times
the first load, a cached reload, a filter + sort + page, and reading one stored result back.

    python benchmarks/explore_load.py [--lines 100000] [--template results.jsonl] [--keep FILE]

With --template, the lines are copies of a real results file's lines (video names made unique).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from c4c.result import METRIC_NAMES  # noqa: E402
from c4c.ui.explore import CorpusCache, stored_result  # noqa: E402
from c4c.ui.explore_table import Filters, explore_payload  # noqa: E402

WORDS = "a the blue red green star circle square diamond is moving to left right up down bouncing".split()


def synthetic_result(k: int, rng: random.Random, n_dec: int = 5) -> dict:
    caps = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))) for _ in range(n_dec)]
    if rng.random() < 0.3:
        caps = [caps[0]] * n_dec  # some videos where every decoder agrees
    loo = [{m: rng.random() * (10 if m == "cider" else 1) for m in METRIC_NAMES} for _ in caps]
    winner = max(range(n_dec), key=lambda i: loo[i]["cider"])
    return {"video": f"clips/video_{k:06d}.mp4", "timestamps": [float(t) for t in range(20)],
            "frame_indices": [t * 25 for t in range(20)],
            "captions": [{"name": f"d{i + 1}", "caption": c, "token_ids": [rng.randrange(30522) for _ in range(14)],
                          "beam_score": -rng.random() * 10, "loo": loo[i], "rank": 0} for i, c in enumerate(caps)],
            "winner": winner, "metric": "cider", "tie_break": "highest cider; ties: lower index",
            "pairwise": {m: [[None if i == j else rng.random() for j in range(n_dec)] for i in range(n_dec)]
                         for m in METRIC_NAMES},
            "idf": "zoo", "timings": {"decode": 0.1, "backbone": 0.5, "captioning": 1.0, "ensemble": 0.05, "total": 1.7},
            "settings": {"beam": 5, "max_frames": 20, "metric": "cider", "device": "cpu"},
            "zoo": {"name": "demo", "description": "benchmark"}, "video_info": {"fps": 25.0}, "schema": "c4c.result/1",
            "caption": caps[winner]}


def write_file(path: Path, lines: int, template: Path | None) -> None:
    rng = random.Random(0)
    real = [json.loads(x) for x in template.read_text().splitlines() if x.strip()] if template else None
    with open(path, "w") as f:
        for k in range(lines):
            if k % 20_000 == 7:
                f.write('{"video": "torn.mp4", "captions": [\n')  # a malformed line every 20,000
                continue
            if real:
                d = dict(real[k % len(real)])
                d["video"] = f"clips/{k:06d}_{Path(d['video']).name}"
            else:
                d = synthetic_result(k, rng)
            f.write(json.dumps(d) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--template", type=Path, default=None, help="a real results file whose lines are copied")
    ap.add_argument("--keep", type=Path, default=None, help="write the generated file here and keep it")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="c4c-explore-bench-"))
    path = args.keep or folder / "results.jsonl"
    t0 = time.perf_counter()
    write_file(path, args.lines, args.template)
    print(f"wrote {args.lines} lines, {path.stat().st_size / 2**20:.0f} MB, in {time.perf_counter() - t0:.1f} s")

    cache = CorpusCache()
    t0, c0 = time.perf_counter(), time.process_time()
    corpus = cache.get(path)
    first, cpu = time.perf_counter() - t0, time.process_time() - c0
    # CPU seconds beside wall seconds: on a shared machine the wall time includes waiting for a core.
    print(f"first load: {first:.2f} s wall, {cpu:.2f} s CPU ({len(corpus.table)} videos, {corpus.n_skipped} "
          f"malformed lines skipped, first at line {corpus.skipped[0].line if corpus.skipped else '-'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    t0 = time.perf_counter()
    cache.get(path)
    print(f"cached reload: {(time.perf_counter() - t0) * 1000:.1f} ms")
    t0 = time.perf_counter()
    p = explore_payload(corpus, Filters(), "line", False, 1, 50)
    print(f"first page, unfiltered: {(time.perf_counter() - t0) * 1000:.1f} ms ({p['pages']} pages of 50)")
    t0 = time.perf_counter()
    p = explore_payload(corpus, Filters(margin_below=0.5, search="blue star"), "margin", True, 3, 50)
    print(f"filter (margin < 0.5 and text 'blue star') + sort by margin + page 3: "
          f"{(time.perf_counter() - t0) * 1000:.1f} ms ({p['matched']} rows match)")
    t0 = time.perf_counter()
    r = stored_result(corpus, int(corpus.table["line"].iat[-1]))
    print(f"one stored result read back (last line): {(time.perf_counter() - t0) * 1000:.1f} ms ({r.video})")
    print(f"table memory: {corpus.table.memory_usage(deep=True).sum() / 2**20:.0f} MB, "
          f"pairwise array {corpus.pairwise.nbytes / 2**20:.0f} MB")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
