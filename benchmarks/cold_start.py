"""Cold start: how long the first caption takes in a fresh process, and where the time goes.

    python benchmarks/cold_start.py [--video examples/test_00003.mp4] [--repeat 3] [--app]

Each measurement runs in a new Python process (nothing cached in the interpreter; the OS file cache
is warm after the first run, so the first repeat is dropped from the median when --repeat > 1).
Prints: the wall time of `python -m c4c caption VIDEO`, then one in-process breakdown (imports, zoo
load, the pipeline's own stage timings, and when torch / transformers / METEOR's JVM got loaded).
With --app, also the app's start-up (import + zoo + page built) and its first request.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter; prints one JSON line.
BREAKDOWN = r"""
import json, sys, time
t0 = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = round(time.perf_counter() - t0, 3)
import c4c.cli, c4c.cli.caption
mark("import c4c.cli.caption")
from c4c.pipeline import CaptionSettings, Pipeline
mark("import c4c.pipeline")
settings = CaptionSettings()
# What `c4c caption` does: start METEOR's JVM first only when the settings score METEOR (opt-in since
# settings.scores; older trees always scored it and have no computed_metrics).
if "meteor" in getattr(settings, "computed_metrics", lambda: ("meteor",))():
    from c4c.vote.metrics import start_meteor
    start_meteor()
    mark("METEOR JVM spawned")
pipe = Pipeline.from_zoo(None, device="cpu")
mark("zoo loaded")
loaded = {m: m in sys.modules for m in ("torch", "transformers", "gradio")}
result = pipe.caption(sys.argv[1], settings)
mark("first caption")
def meteor_started():
    for name in ("c4c.vote.metrics", "c4c.metrics"):  # the module's home after and before the redesign
        if name in sys.modules:
            return sys.modules[name].meteor_pid() is not None
    return False
print(json.dumps({"marks": marks, "loaded_at_zoo": loaded, "stages": result.timings,
                  "meteor_started": meteor_started(), "caption": result.caption,
                  "rule": getattr(result, "select", "consensus"), "scores": list(result.captions[0].loo)}))
"""

APP = r"""
import json, os, sys, time
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False"); os.environ.setdefault("HF_HUB_OFFLINE", "1")
t0 = time.perf_counter()
sys.path.insert(0, os.getcwd())
import app
t_import = time.perf_counter() - t0
pipe = app.load_pipeline()
t_zoo = time.perf_counter() - t0
demo = app.build_demo(pipe, examples=[])
t_page = time.perf_counter() - t0
from c4c.pipeline import CaptionSettings
t = time.perf_counter()
pipe.caption(sys.argv[1], CaptionSettings())
t_req = time.perf_counter() - t
print(json.dumps({"import app": round(t_import, 3), "zoo loaded + warm-up": round(t_zoo, 3),
                  "page built (start-up)": round(t_page, 3), "first request (caption)": round(t_req, 3)}))
"""


def wall(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the command and its children, METEOR's JVM included). On a shared machine
    the wall time depends on the others' load; the CPU time much less."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def median(xs: list[float]) -> float:
    return statistics.median(xs[1:] if len(xs) > 1 else xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default="examples/test_00003.mp4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--app", action="store_true", help="also time the app's start-up and first request")
    a = ap.parse_args()
    py = sys.executable
    runs = [wall([py, "-m", "c4c", "caption", a.video]) for _ in range(a.repeat)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"python -m c4c caption {a.video}: wall {median(walls):.2f} s, CPU {median(cpus):.2f} s "
          f"(runs: {', '.join(f'{w:.2f}/{c:.2f}' for w, c in runs)}; load average now "
          f"{', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())})")
    out = subprocess.run([py, "-c", BREAKDOWN, a.video], cwd=ROOT, check=True, capture_output=True, text=True)
    b = json.loads(out.stdout.strip().splitlines()[-1])
    print("in-process breakdown (s since start):")
    for k, v in b["marks"].items():
        print(f"  {k:<28} {v:6.2f}")
    print("  loaded after the zoo:        " + ", ".join(f"{k}={v}" for k, v in b["loaded_at_zoo"].items()))
    print("  pipeline stages:             " + ", ".join(f"{k} {v:.2f}" for k, v in b["stages"].items()))
    print(f"  METEOR JVM started:          {b['meteor_started']}")
    print(f"  caption:                     {b['caption']} (rule {b.get('rule')}; scores {', '.join(b.get('scores', []))})")
    if a.app:
        out = subprocess.run([py, "-c", APP, a.video], cwd=ROOT, check=True, capture_output=True, text=True)
        for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
            print(f"  app: {k:<26} {v:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
