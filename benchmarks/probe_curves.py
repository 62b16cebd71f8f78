"""Plot the backbone's held-out probe curves (read-out accuracy against training steps and frames seen)
from one or more `backbone_train.json` files written by `python -m c4c train backbone` / build-zoo.

    python benchmarks/probe_curves.py build/zoo/backbone/backbone_train.json --out docs/backbone-probes.png

Each file gives one line per probe target; the x axis is the optimiser step (frames seen = step x
batch_videos x frames_per_video, printed in the legend). Prints the table it plots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", help="backbone_train.json files")
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for path in args.reports:
        rep = json.loads(Path(path).read_text())
        cfg, hist = rep["config"], rep["history"]
        per_step = cfg["batch_videos"] * cfg["frames_per_video"]
        m = rep["model"]
        label = f"{m['image_size']} px / patch {m['patch']}, {cfg['steps']} steps x {per_step} frames"
        steps = [h["step"] for h in hist]
        print(f"{path}: {label}")
        print(f"{'step':>6} {'frames':>8} {'shape':>6} {'colour':>7} {'patch':>6} {'pos px':>7} {'turn':>5} {'R@1':>5}")
        for h in hist:
            p = h["probe"]
            print(f"{h['step']:>6} {h['step'] * per_step:>8} {p['shape']:>6.1f} {p['colour']:>7.1f} "
                  f"{p.get('patch', float('nan')):>6.1f} {p['pos_px']:>7.1f} {p['turn_deg']:>5.0f} {h['t2v_r1']:>5.1f}")
        for key, name in (("shape", "shape"), ("colour", "colour"), ("patch", "patch shape")):
            axes[0].plot(steps, [h["probe"].get(key) for h in hist], marker="o", label=f"{name} ({label})")
        axes[1].plot(steps, [h["probe"]["pos_px"] for h in hist], marker="o", label="position error (px)")
        axes[1].plot(steps, [h["probe"]["radius_px"] for h in hist], marker="o", label="radius error (px)")
        axes[2].plot(steps, [h["probe"]["turn_deg"] for h in hist], marker="o", label="orientation error (deg)")
        axes[2].plot(steps, [h["t2v_r1"] for h in hist], marker="o", label="val text-to-video R@1 (%)")
    axes[0].set(title="held-out read-out accuracy (%)", xlabel="step", ylim=(0, 100))
    axes[0].axhline(20, color="grey", lw=0.8, ls=":")
    axes[1].set(title="held-out geometry error (base px)", xlabel="step")
    axes[2].set(title="orientation (90 = chance) and retrieval", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
