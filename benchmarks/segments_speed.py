"""Segmented captioning's speed and memory on a generated long video with cuts.

    python benchmarks/segments_speed.py [--minutes 10] [--size 360x640] [--fps 25] [--base-minutes M]
                                        [--zoo weights/demo] [--cli] [--sample-s 1] [--out DIR]

Writes (once; reused when present) a `--minutes` video of synthetic clips joined by hard cuts, `--fps`
frames per second, H.264 (c4c/synth/cuts.py; with `--base-minutes`, an M-minute one repeated by
ffmpeg's concat without re-encoding: rendering 2 hours of clips takes longer than captioning them), then runs `Pipeline.caption(video,
CaptionSettings(segments="auto"))` in a fresh process (with `--cli`: the command itself, `python -m
c4c caption VIDEO --segments auto --srt OUT.srt --json`) and prints wall time, the stages' seconds,
seconds per video minute, the speed relative to real time, the segments found against the true cuts,
and the process's resident memory: sampled every `--sample-s` seconds from /proc, so that growth with
the video's length shows (RSS at 25/50/75/100% of the run, the largest in each quarter, the peak).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
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
                  "duration_s": r.video_info["duration_s"]}))
"""


def _status_kb(pid: int, field: str) -> int:
    """A `VmRSS:` / `VmHWM:` line of /proc/PID/status, in KB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Direct child processes (METEOR's JVM, ffmpeg probes): their memory is the run's too."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def run_sampled(cmd: list[str], every_s: float):
    """Run `cmd` from the repository root, sampling its RSS -> (completed process, wall s, samples,
    peak RSS MB); samples are (seconds since start, the process's RSS MB, RSS MB with its children)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        samples, peak = [], 0
        while proc.poll() is None:
            own = _status_kb(proc.pid, "VmRSS:")
            kids = sum(_status_kb(c, "VmRSS:") for c in _children(proc.pid))
            peak = max(peak, _status_kb(proc.pid, "VmHWM:"))
            if own:
                samples.append((time.perf_counter() - t0, own / 1024, (own + kids) / 1024))
            time.sleep(every_s)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    return done, wall, samples, peak / 1024


def memory_report(samples: list[tuple[float, float, float]], wall: float, peak_mb: float) -> list[str]:
    """RSS at each quarter of the run and the largest in each quarter (own / with children)."""
    if not samples:
        return ["  memory: no samples (the run ended before the first one)"]
    at, top = [], []
    for q in (0.25, 0.5, 0.75, 1.0):
        before = [s for s in samples if s[0] <= q * wall] or samples[:1]
        at.append(before[-1])
        inside = [s for s in samples if (q - 0.25) * wall < s[0] <= q * wall] or before[-1:]
        top.append((max(s[1] for s in inside), max(s[2] for s in inside)))
    return [f"  RSS sampled {len(samples)} times; MB of the process (with its child processes, e.g. METEOR's JVM):",
            "    at 25/50/75/100% of the run: " + ", ".join(f"{s[1]:.0f} ({s[2]:.0f})" for s in at),
            "    largest in each quarter:     " + ", ".join(f"{a:.0f} ({b:.0f})" for a, b in top),
            f"    peak of the process (VmHWM): {peak_mb:.0f} MB"]


def write_video(path: Path, minutes: float, size: tuple[int, int], fps: float, base_minutes: float | None):
    """Write the benchmark's video; return the true cut times (s). With `base_minutes`, a shorter one is
    rendered and repeated (stream copy): each join is a cut too (a clip's end to the first clip)."""
    from c4c.synth.cuts import write_cut_video
    if not base_minutes or base_minutes >= minutes:
        return write_cut_video(path, "hard", seed="speed", size=size, fps=fps, total_s=minutes * 60)
    base = path.with_name(f"base_{base_minutes:g}min_{path.name}")
    base_truth = write_cut_video(base, "hard", seed="speed", size=size, fps=fps, total_s=base_minutes * 60)
    copies = int(round(minutes / base_minutes))
    listing = path.with_suffix(".txt")
    listing.write_text(f"file '{base.resolve()}'\n" * copies)
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(path)], check=True)
    step = base_minutes * 60
    return [round(k * step + t, 3) for k in range(copies) for t in ([0.0] if k else []) + base_truth]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", default="360x640", help="H x W (default 360x640)")
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate of the generated video (default 25)")
    ap.add_argument("--base-minutes", type=float, default=None,
                    help="render this many minutes and repeat them up to --minutes (a cheap long video)")
    ap.add_argument("--zoo", default="")
    ap.add_argument("--segments", default="auto")
    ap.add_argument("--cli", action="store_true", help="run `python -m c4c caption ... --srt` as the user would")
    ap.add_argument("--sample-s", type=float, default=1.0, help="seconds between RSS samples")
    ap.add_argument("--out", default="/tmp/c4c-segments-speed")
    args = ap.parse_args()
    h, w = (int(x) for x in args.size.split("x"))
    rate = "" if args.fps == 25 else f"_{args.fps:g}fps"
    base = f"_from{args.base_minutes:g}min" if args.base_minutes else ""
    path = Path(args.out) / f"cuts_{args.minutes:g}min_{w}x{h}{rate}{base}.mp4"
    truth_file = path.with_suffix(".json")
    if not truth_file.is_file():
        t = time.perf_counter()
        truth = write_video(path, args.minutes, (h, w), args.fps, args.base_minutes)
        truth_file.write_text(json.dumps(truth))
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB, {len(truth)} cuts) in {time.perf_counter() - t:.0f} s")
    truth = json.loads(truth_file.read_text())
    if args.cli:
        srt = path.with_suffix(".srt")
        cmd = [sys.executable, "-m", "c4c", "caption", str(path), "--segments", args.segments, "--srt", str(srt),
               "--json", "--device", "cpu"] + (["--zoo", args.zoo] if args.zoo else [])
    else:
        cmd = [sys.executable, "-c", CHILD, str(path), args.zoo, args.segments]
    out, wall, samples, peak = run_sampled(cmd, args.sample_s)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if args.cli:  # the result itself: models loaded and METEOR started inside the process's wall time
        r = {"load_s": wall - r["timings"]["total"], "caption_s": r["timings"]["total"], "timings": r["timings"],
             "spans": [[s["start_s"], s["end_s"]] for s in r["segments"]], "duration_s": r["video_info"]["duration_s"]}
    minutes = r["duration_s"] / 60
    from segments_detectors import f1, match  # noqa: E402  (same folder)
    tp, fp, fn = match([a for a, _ in r["spans"][1:]], truth)
    how = "the CLI" if args.cli else "Pipeline.caption"
    print(f"{path.name}: {r['duration_s']:.0f} s at {args.fps:g} fps, {len(truth)} true cuts; --segments "
          f"{args.segments} through {how}")
    print(f"  caption: {r['caption_s']:.1f} s wall = {r['caption_s'] / minutes:.2f} s per video minute "
          f"= {r['duration_s'] / r['caption_s']:.1f}x real time (models loaded before: {r['load_s']:.1f} s; "
          f"whole process {wall:.1f} s)")
    print("  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items()))
    print(f"  segments: {len(r['spans'])}; boundaries vs true cuts within +-1 s: {tp} correct, {fp} extra, "
          f"{fn} missed (F1 {f1(tp, fp, fn)[2]:.2f})")
    print("\n".join(memory_report(samples, wall, peak)))
    if args.cli:
        print(f"  subtitles: {srt} ({srt.read_text().count(' --> ')} cues)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
