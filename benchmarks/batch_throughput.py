"""Videos per minute of `python -m c4c caption DIR --out F` on this machine.

    python benchmarks/batch_throughput.py [--zoo DIR] [--videos 30] [--seconds 10] [--workers 0 1 2]
                                          [--threads N] [--ray] [--clips DIR]

Writes `--videos` synthetic clips (moving blocks, `--size`, 25 fps, H.264) to a temporary folder and
captions them with default settings (beam 5, up to 20 frames) through each engine / worker count;
without --zoo, a random-weight zoo at the default small size (`c4c.zoo.random_zoo`), or at real size. The first video of
run pays for loading the models; METEOR's JVM is started before the local runs (its start-up is
printed once; a Ray actor starts its own). Each row gives the total, the time to the first line, the
steady rate after it, and (local runs) CPU seconds per video over all processes of the run: on an
idle machine, cores * 60 / that is the rate to expect. The load average shows how busy the machine was.
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


def _cpu() -> float:
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def run(engine: str, zoo: Path, videos: Path, out: Path, workers: int,
        threads: int | None = None) -> tuple[float, float, float, float]:
    """(seconds in all, seconds to the first line, steady videos/min after it, CPU seconds) for one run."""
    from c4c.batch import Recorder, caption_local, find_videos, open_output, plan
    from c4c.pipeline import CaptionSettings, Pipeline
    settings = CaptionSettings()
    output = open_output(out)
    todo, summary = plan(find_videos([str(videos)]), (0, 1), output)
    t, cpu = time.perf_counter(), _cpu()
    try:
        rec = _Timed(Recorder(output, summary, progress=False))
        if engine == "ray":
            from c4c.batch.ray_engine import caption_ray
            caption_ray(zoo, todo, rec, settings, device="cpu", decode_tasks=workers or None)
        else:  # model loading counts: it is part of what a run costs
            caption_local(Pipeline.from_zoo(zoo, device="cpu", cache_size=0), todo, rec, settings, workers=workers,
                          threads=threads)
    finally:
        output.close()
    first, last = rec.times[0] - t, rec.times[-1] - t
    rate = 60 * (len(rec.times) - 1) / (last - first) if len(rec.times) > 1 else float("nan")
    return last, first, rate, _cpu() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default=None, help="zoo folder (default: a random zoo at the default small size)")
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2], help="local runs to make (decoding workers); none: only Ray")
    ap.add_argument("--real-size", action="store_true",
                    help="random zoo at real size instead: ViT-B/32, 5 decoders 768 wide (TE 1 + TD 3), 30,522 words")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of local runs (default: auto)")
    ap.add_argument("--ray", action="store_true", help="also run the Ray engine (local Ray on this machine)")
    ap.add_argument("--clips", default=None, help="keep the clips in this folder (reused when it exists)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.zoo:
            zoo = Path(a.zoo)
        else:
            from c4c.zoo.random_zoo import VIT_B32, RandomZooSpec, make_random_zoo
            spec = (RandomZooSpec(vision=VIT_B32, hidden=768, heads=12, intermediate=3072, vocab_size=30522)
                    if a.real_size else RandomZooSpec())
            zoo = make_random_zoo(tmp / "zoo", spec)
        w, h = (int(x) for x in a.size.split("x"))
        clips = Path(a.clips) if a.clips else tmp / "videos"
        if not clips.is_dir():
            make_clips(clips, a.videos, a.seconds, (w, h))
        n = len(list(clips.glob("*.mp4")))
        t = time.perf_counter()
        from c4c.vote.metrics import sentence_scores
        sentence_scores("meteor", [["a red circle moves"]], ["a red circle"])
        print(f"zoo {zoo}; {n} clips in {clips}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"METEOR start-up {time.perf_counter() - t:.1f} s")
        configs = [("local", k) for k in a.workers] + ([("ray", 0)] if a.ray else [])
        print(f"{'engine':<18} {'total':>8} {'first line':>11} {'then':>19} {'CPU/video':>10}")
        for k, (engine, nw) in enumerate(configs):
            total, first, rate, cpu = run(engine, zoo, clips, tmp / f"run{k}.jsonl", nw, a.threads)
            label = f"local, workers {nw}" if engine == "local" else "ray, 1 actor"
            cpu_txt = f"{cpu / n:9.2f}s" if engine == "local" else f"{'n/a':>10}"
            print(f"{label:<18} {total:7.1f}s {first:10.1f}s {rate:7.1f} videos/min {cpu_txt}   "
                  f"= {60 * n / total:.1f} videos/min overall (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
