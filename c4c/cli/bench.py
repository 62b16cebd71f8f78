"""`python -m c4c bench`: the end-to-end speed benchmark (benchmarks/pipeline.py) from the CLI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import InputError

__all__ = ["add_parser", "run", "load_benchmark"]

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline.py"


def load_benchmark():
    """The benchmarks/pipeline.py module of this checkout (it lives beside the package, not in it)."""
    if not _SCRIPT.is_file():
        raise InputError(f"{_SCRIPT} not found: the benchmark ships with the source tree, not the installed "
                         "package; run it from a c4c checkout")
    name = "c4c_benchmark_pipeline"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed: c4c against a reference-style pipeline, in the same run",
                       description="Time every stage of c4c and of a reference-style CLIP4Caption pipeline on a "
                                   "generated 60-s 640x360 video with real-size random-weight models "
                                   "(ViT-B/32, 5 decoders of the reference size), medians over alternating runs.")
    p.add_argument("--max-frames", type=int, default=20, help="frames fed to the decoders (default 20)")
    p.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--keyframes", choices=("sparse", "dense"), default="sparse",
                   help="generated video: x264's default GOP (sparse) or a keyframe every second (dense)")
    p.add_argument("--work", type=Path, help="folder for the generated zoo and video (default build/bench)")
    p.add_argument("--precision", action="store_true", help="also time int8/bf16 and measure their caption agreement")
    p.add_argument("--reference-threads", type=int, help="intra-op threads of the reference-style run "
                   "(default: PyTorch's, one per core, as the reference code runs)")
    p.add_argument("--agreement-features", type=Path, default=None,
                   help="features of the shipped zoo's test split for --precision's agreement (default "
                        "build/zoo/features.npz; `python -m c4c extract --synth test` makes them)")
    p.add_argument("--tiny", action="store_true", help="tiny models and video: checks the harness, not the speed")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.runs < 1:
        raise InputError(f"--runs must be at least 1 (got {args.runs})")
    if not 1 <= args.max_frames <= 512:
        raise InputError(f"--max-frames must be between 1 and 512 (got {args.max_frames})")
    if args.reference_threads is not None and args.reference_threads < 1:
        raise InputError(f"--reference-threads must be at least 1 (got {args.reference_threads})")
    return load_benchmark().run_args(args)
