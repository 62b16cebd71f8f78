"""`python -m c4c caption VIDEO... [--zoo DIR] [--metric M] [--beam K] [--max-frames N] [--json]`

With `--out FILE`, a batch run over folders, glob patterns or list files: one JSON line per video,
resumable, with a progress bar and a summary (`c4c.batch`; `--engine ray` for a Ray cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import C4CError, InputError
from ..result import CaptionResult
from ..settings import METRIC_NAMES
from ._options import add_settings_options, settings_from_args

HELP = "caption video files with the zoo's decoders and the leave-one-out ensemble"


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help=HELP, description=HELP)
    p.add_argument("videos", nargs="+", metavar="VIDEO",
                   help="video files (mp4, webm, avi, mkv, ...), folders (searched recursively), quoted glob "
                        "patterns ('clips/**/*.mp4') or list files (.txt: one path per line)")
    p.add_argument("--zoo", default=os.environ.get("C4C_ZOO"),
                   help="model zoo folder (default: $C4C_ZOO, else the shipped weights/demo)")
    add_settings_options(p, ("select", "metric", "scores", "beam", "max_frames", "decoders", "fps_mode", "precision", "segments",
                             "min_segment_s", "max_segment_s", "max_duration_s"))
    p.add_argument("--srt", default=None, metavar="OUT.srt",
                   help="write subtitles: one cue per segment with its winning caption (one video only)")
    p.add_argument("--vtt", default=None, metavar="OUT.vtt", help="the same cues as WebVTT (one video only)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--json", action="store_true", help="print the result JSON (one line per video)")
    b = p.add_argument_group("batch runs (need --out)")
    b.add_argument("--out", default=None, metavar="FILE",
                   help="write one JSON line per video here (resumable: a rerun skips videos already in it)")
    b.add_argument("--format", default=None, choices=["jsonl", "parquet"],
                   help="jsonl (default), or parquet: a folder of part files (needs pyarrow)")
    b.add_argument("--workers", type=int, default=None,
                   help="decoding processes running ahead of the models (local default: 1 per spare core, "
                        "at most 4; 0 = decode in the main process); with --engine ray: decoding tasks at once")
    b.add_argument("--threads", type=int, default=None,
                   help="local, on CPU: torch threads for the models (default: the cores the decoding workers leave)")
    b.add_argument("--shard", default=None, metavar="i/n",
                   help="caption only shard i of n (0 <= i < n; by a hash of each video's name, so shards "
                        "stay put as the corpus grows)")
    b.add_argument("--retry-errors", action="store_true",
                   help="retry videos recorded as failed by an earlier run (their error lines are replaced)")
    b.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (one machine) or ray (Ray Data; pip install 'ray[data]')")
    b.add_argument("--actors", type=int, default=None,
                   help="Ray only: model actors (default: one per GPU in the cluster, else 1)")
    b.add_argument("--ray-address", default=None,
                   help="Ray only: cluster to join (default: $RAY_ADDRESS, else a local Ray on this machine)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def format_table(r: CaptionResult) -> str:
    """The human-readable report of one result."""
    metrics = r.scored
    name_w = max(5, *(len(c.name) for c in r.captions))
    ground = any(c.grounding is not None for c in r.captions)
    head = (f"  {'rank':<5} {'model':<{name_w}} " + " ".join(f"{METRIC_NAMES[m]:>8}" for m in metrics)
            + (f" {'ground':>7}" if ground else "") + "  caption")
    lines = [f"{r.video}: {len(r.timestamps)} frames at "
             + ", ".join(f"{t:g}" for t in r.timestamps) + " s", head]
    for c in sorted(r.captions, key=lambda c: c.rank):
        mark = "*" if c.rank == 1 else " "
        lines.append(f"  {c.rank:<3}{mark}  {c.name:<{name_w}} "
                     + " ".join(f"{c.loo[m]:8.3f}" for m in metrics)
                     + (f" {c.grounding:7.3f}" if ground else "") + f"  {c.caption}")
    rule = f"{METRIC_NAMES[r.metric]} vote" if r.select == "consensus" else f"{r.select} rule"
    lines.append(f"  caption ({rule}): {r.caption}")
    lines.append(f"  why: {r.explain()}")
    lines.append("  timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in r.timings.items()))
    if r.segments is not None:
        lines.append(format_segments(r))
    return "\n".join(lines)


def format_segments(r: CaptionResult) -> str:
    """One line per segment: its span, its winner and caption; then gaps that could not be decoded."""
    from ..ui.timeline import clock  # the page's timeline spells times the same way
    seg = r.segmentation
    lines = [f"  segments ({seg.get('mode')}, detector {seg.get('detector')}): {len(r.segments)}"]
    for k, s in enumerate(r.segments):
        lines.append(f"  {k + 1:>4}  {clock(s.start_s)} - {clock(s.end_s)}  {len(s.timestamps):>3} frames  "
                     f"[{s.captions[s.winner].name}] {s.caption}")
    for a, b in seg.get("gaps", []):
        lines.append(f"  gap   {clock(a)} - {clock(b)}  could not be decoded (no caption)")
    return "\n".join(lines)


def _settings(args):
    return settings_from_args(args)


def _expand(args_videos: list[str]) -> list[str]:
    """Folders, patterns and list files -> their videos; plain file names stay as given, in order."""
    from ..batch import find_videos
    from ..video.inputs import LIST_EXTENSIONS, is_pattern
    out = []
    for a in args_videos:
        p = Path(a)
        if p.is_dir() or (p.is_file() and p.suffix.lower() in LIST_EXTENSIONS) or (is_pattern(a) and not p.exists()):
            out.extend(v.path for v in find_videos([a]))
        else:
            out.append(a)
    return out


def run(args) -> int:
    if args.out:
        return run_batch(args)
    given = {"--format": args.format, "--workers": args.workers, "--threads": args.threads, "--shard": args.shard,
             "--actors": args.actors,
             "--ray-address": args.ray_address}
    batch_only = [f for f, v in given.items() if v is not None] + ["--retry-errors"] * args.retry_errors \
        + ["--engine"] * (args.engine != "local")
    if batch_only:
        raise InputError(f"{', '.join(batch_only)} only apply to batch runs; add --out FILE.jsonl")
    settings = _settings(args)
    videos = _expand(args.videos)
    if (args.srt or args.vtt) and len(videos) != 1:
        raise InputError(f"--srt/--vtt write the subtitles of one video; {len(videos)} were given")
    from ..subtitles import check_path
    for out, suffix in ((args.srt, ".srt"), (args.vtt, ".vtt")):
        if out and check_path(out).suffix.lower() != suffix:
            raise InputError(f"{out}: the {suffix[1:]} subtitles need a file ending in {suffix}")
    if "meteor" in settings.computed_metrics():
        # METEOR's JVM takes longer to start than the models take to load: start it first, let them overlap.
        from ..vote.metrics import start_meteor
        start_meteor()
    from ..pipeline import Pipeline
    pipe = Pipeline.from_zoo(args.zoo, device=args.device)
    if not args.json:
        print(f"zoo: {pipe.zoo.name} ({pipe.zoo.folder}) - {pipe.zoo.description}")
    failed = 0
    for video in videos:
        try:
            result = pipe.caption(video, settings)
        except C4CError as e:  # one bad file must not cost the others their captions
            if len(videos) == 1:
                raise
            print(f"error: {e}" if str(video) in str(e) else f"error: {video}: {e}", file=sys.stderr)
            failed += 1
            continue
        print(result.to_json() if args.json else format_table(result))
        from ..subtitles import write_subtitles
        for out in (args.srt, args.vtt):
            if out:
                path = write_subtitles(result, out)
                if not args.json:
                    print(f"  subtitles: {path} ({len(result.segments or [result])} cues)")
        sys.stdout.flush()
    return 2 if failed else 0


def run_batch(args) -> int:
    from ..batch import Recorder, find_videos, open_output, parse_shard, plan
    from ..zoo import default_select, default_zoo_dir, read_manifest
    if args.json:
        raise InputError("--json prints results to the terminal; with --out they go to the file already")
    if args.srt or args.vtt:
        raise InputError("--srt/--vtt write one video's subtitles; a batch run's segments are in its --out lines")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be 0 or more, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be 1 or more, got {args.threads}")
    settings = _settings(args)
    shard = parse_shard(args.shard)
    zoo_dir = Path(args.zoo or default_zoo_dir()).resolve()  # absolute: the same string on every engine/node
    manifest = read_manifest(zoo_dir)                         # fail on a broken zoo before anything else
    settings = settings.resolve(default_select(manifest))
    settings.check([d["name"] for d in manifest["decoders"]])
    if settings.select != "consensus" and "text_tower" not in manifest:
        raise InputError(f"--select {settings.select} needs grounding, but the zoo {zoo_dir} has no text tower; "
                         "use --select consensus")
    videos = find_videos(args.videos)
    fmt = args.format or ("parquet" if args.out.endswith(".parquet") or Path(args.out).is_dir() else "jsonl")
    output = open_output(args.out, fmt, retry_errors=args.retry_errors)
    try:
        todo, summary = plan(videos, shard, output)
        shard_txt = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""
        cut = " (cut a torn last line left by a killed run)" if output.truncated else ""
        print(f"zoo: {manifest.get('name', zoo_dir.name)} ({zoo_dir}); {summary.selected} videos{shard_txt}, "
              f"{summary.selected - summary.todo} already in {args.out}{cut}, {summary.todo} to caption "
              f"[{args.engine}]", flush=True)
        recorder = Recorder(output, summary, progress=not args.no_progress)
        if not todo:
            recorder.close()
        elif args.engine == "local":
            from ..batch import caption_local
            from ..cpu import decode_processes
            from ..pipeline import Pipeline
            pipe = Pipeline.from_zoo(zoo_dir, device=args.device, cache_size=0)
            workers = decode_processes() if args.workers is None else args.workers
            caption_local(pipe, todo, recorder, settings, workers=workers, threads=args.threads)
        else:
            from ..batch.ray_engine import caption_ray
            caption_ray(zoo_dir, todo, recorder, settings, device=args.device, actors=args.actors,
                        decode_tasks=args.workers, address=args.ray_address)
    finally:
        output.close()
    print(summary.text(), flush=True)
    if summary.interrupted:
        return 130
    return 0 if summary.complete else 2
