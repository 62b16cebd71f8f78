"""Captioning on a busy host: c4c's single-threaded workers against one intra-op-parallel loop.

    python benchmarks/threads.py [--runs 3]

Five real-size random-weight decoders (the `pipeline.py` zoo), beam 5, 20 tokens, on random (20, 512)
features; each case idle, then with one busy process (`while True: pass`) competing for a core.
Cases: c4c's `beam_search_many` (decoders' steps interleaved over one-thread workers), and the
decoders one after another on the model's own KV-cached modules with 1 and with 2 intra-op threads.
A 2-thread op waits at a barrier for its slowest thread, so losing a core to another process stalls
it; independent one-thread workers just share what is left.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline as bench  # noqa: E402  (benchmarks/pipeline.py: the real-size random zoo)

from c4c.captioning.model import prepare_video  # noqa: E402
from c4c.captioning.decoding import _beam_search_eager, beam_search_many  # noqa: E402
from c4c.zoo import Zoo  # noqa: E402


def cases(models, inputs) -> dict:
    def c4c():
        beam_search_many(models, [v for v, _ in inputs], [m for _, m in inputs], beam=5, max_words=20,
                         suppress_eos=True)

    def eager(threads):
        def run():
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for m, (v, mask) in zip(models, inputs):
                    _beam_search_eager(m, v, mask, beam=5, max_words=20, suppress_eos=True)
            finally:
                torch.set_num_threads(before)
        return run

    return {"c4c: 2 one-thread workers": c4c, "decoders in turn, 1 thread": eager(1),
            "decoders in turn, 2 threads": eager(2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="timed runs per case (median)")
    args = ap.parse_args(argv)
    zoo_dir, _ = bench.prepare(bench.BenchConfig())
    zoo = Zoo(zoo_dir, device="cpu")
    models = [zoo.decoders[n] for n in zoo.names]
    feats = torch.randn(20, zoo.backbone.embed_dim, generator=torch.Generator().manual_seed(0))
    inputs = [prepare_video(feats, m.cfg) for m in models]
    todo = cases(models, inputs)
    for run in todo.values():
        run()  # warm-up: weight packing, allocator
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(1.0)
            for name, run in todo.items():
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - t)
                print(f"{'1 core busy' if busy else 'idle':<12} {name:<30} {statistics.median(times):6.2f} s", flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
