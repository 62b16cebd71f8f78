"""`python -m c4c features --backbone CKPT VIDEO --out F.npy`: per-frame CLIP features of one video.

Writes a float32 array (n_frames, E), the captioner's input, and prints n, E and the timestamps."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import InputError
from ..settings import CROPS
from ._options import add_settings_options

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("features", help="extract per-frame CLIP features of a video (.npy, float32 [n, E])",
                       description=__doc__)
    p.add_argument("video", help="video file (mp4, webm, avi, ...)")
    p.add_argument("--backbone", required=True, help="CLIP4Clip .bin, OpenAI CLIP state dict, or c4c .safetensors")
    p.add_argument("--out", required=True, help="output .npy path")
    add_settings_options(p, ("max_frames", "fps_mode"))
    p.add_argument("--crop", choices=CROPS, default="repro",
                   help="repro: square centre crop first, as the CLIP4Caption reproduction (default); c4c: CLIP4Clip")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per forward pass (default 32)")
    p.add_argument("--max-duration", type=float, default=None, help="refuse videos longer than this many seconds")
    p.add_argument("--allow-torchscript", action="store_true",
                   help="accept an OpenAI TorchScript .pt (it runs code when loaded; only for files you trust)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..vision.backbone import Backbone
    from ..video.frames import sample_frames
    from ..video.preprocess import preprocess

    if args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1 (got {args.max_frames})")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {args.batch_size})")
    out = Path(args.out)
    if out.suffix != ".npy":
        raise InputError(f"--out {out}: use a .npy file name (numpy.save appends .npy otherwise)")
    backbone = Backbone.from_file(args.backbone, device=args.device, allow_torchscript=args.allow_torchscript)
    with warnings.catch_warnings():  # the notes are printed below, once
        warnings.simplefilter("ignore")
        frames = sample_frames(args.video, max_frames=args.max_frames, fps_mode=args.fps_mode,
                               max_duration_s=args.max_duration)
    pixels = preprocess(frames.images, size=backbone.image_size, crop=args.crop)
    feats = backbone.embed(pixels, batch_size=args.batch_size).numpy().astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, feats)
    for note in frames.notes:
        print(f"note: {note}")
    print(f"{out}: {feats.shape[0]} frames x {feats.shape[1]} dims "
          f"({frames.duration_s:.2f} s at {frames.fps:.3f} fps, {args.fps_mode} sampling, {args.crop} crop)")
    print("timestamps (s): " + " ".join(f"{t:.3f}" for t in frames.timestamps))
    return 0
