"""Videos per minute of `python -m c4c caption DIR --out F` on this machine.

    python benchmarks/batch_throughput.py [--zoo DIR] [--videos 16] [--seconds 10] [--workers 0 1 2] [--ray]

Writes `--videos` synthetic clips (moving blocks, `--size`, 25 fps, H.264) to a temporary folder and
captions them with default settings (beam 5, up to 20 frames) through each engine / worker count;
without --zoo, a random-weight zoo at the default small size (`c4c.random_zoo`). The first video of
run pays for loading the models (and, once per process, METEOR's JVM): each row gives the total, the
time to the first line, and the steady rate after it. The load average shows how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clips(folder: Path, n: int, seconds: float, size: tuple[int, int], fps: int = 25) -> list[Path]:
    from c4c.synth.writer import write_mp4
    rng = np.random.default_rng(0)
    w, h = size
    out = []
    for k in range(n):
        t = int(seconds * fps)
        frames = np.empty((t, h, w, 3), np.uint8)
        frames[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        colours = rng.integers(0, 256, (t // fps + 1, 3), dtype=np.uint8)  # the block changes colour each second
        bw, bh = w // 6, h // 6
        for i in range(t):
            x, y = (i * 4 + 13 * k) % (w - bw), (i * 2 + 7 * k) % (h - bh)
            frames[i, y:y + bh, x:x + bw] = colours[i // fps]
        out.append(write_mp4(frames, fps, folder / f"clip{k:03d}.mp4"))
    return out


class _Timed:
    """Wraps a Recorder: remembers when each video's line was written."""

    def __init__(self, recorder):
        self.recorder, self.times = recorder, []

    def __getattr__(self, name):
        return getattr(self.recorder, name)

    def result(self, line, record):
        self.recorder.result(line, record)
        self.times.append(time.perf_counter())

    def error(self, record):
        self.recorder.error(record)
        self.times.append(time.perf_counter())


def run(engine: str, zoo: Path, videos: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """(seconds in all, seconds to the first line, steady videos/min after it) for one run."""
    from c4c.batch import Recorder, caption_local, find_videos, open_output, plan
    from c4c.pipeline import CaptionSettings, Pipeline
    settings = CaptionSettings()
    output = open_output(out)
    todo, summary = plan(find_videos([str(videos)]), (0, 1), output)
    t = time.perf_counter()
    try:
        rec = _Timed(Recorder(output, summary, progress=False))
        if engine == "ray":
            from c4c.batch_ray import caption_ray
            caption_ray(zoo, todo, rec, settings, device="cpu", decode_tasks=workers or None)
        else:  # model loading counts: it is part of what a run costs
            caption_local(Pipeline.from_zoo(zoo, device="cpu", cache_size=0), todo, rec, settings, workers=workers)
    finally:
        output.close()
    first, last = rec.times[0] - t, rec.times[-1] - t
    return last, first, 60 * (len(rec.times) - 1) / (last - first) if len(rec.times) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default=None, help="zoo folder (default: a random zoo at the default small size)")
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ray", action="store_true", help="also run the Ray engine (local Ray on this machine)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.zoo:
            zoo = Path(a.zoo)
        else:
            from c4c.random_zoo import make_random_zoo
            zoo = make_random_zoo(tmp / "zoo")
        w, h = (int(x) for x in a.size.split("x"))
        make_clips(tmp / "videos", a.videos, a.seconds, (w, h))
        print(f"zoo {zoo}; {a.videos} clips of {a.seconds:g} s at {a.size}; {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}")
        configs = [("local", n) for n in a.workers] + ([("ray", 0)] if a.ray else [])
        print(f"{'engine':<18} {'total':>8} {'first line':>11} {'then':>14}")
        for k, (engine, n) in enumerate(configs):
            total, first, rate = run(engine, zoo, tmp / "videos", tmp / f"run{k}.jsonl", n)
            label = f"local, workers {n}" if engine == "local" else "ray, 1 actor"
            print(f"{label:<18} {total:7.1f}s {first:10.1f}s {rate:7.1f} videos/min   "
                  f"= {60 * a.videos / total:.1f} videos/min overall (load average {os.getloadavg()[0]:.1f})", flush=True)

if __name__ == "__main__":
    main()
