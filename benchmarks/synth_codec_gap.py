"""How far apart are a backbone's features of rendered synthetic frames and of the same frames
decoded from the H.264 mp4 that users (and `examples/`) feed to the pipeline?

    python benchmarks/synth_codec_gap.py build/zoo/backbone/backbone.safetensors [--n 40]

Prints the per-frame cosine similarity between the embedding of each rendered 1-fps frame and of
the same frame decoded by decord from an mp4 written by `c4c.synth.write_mp4`, and, as a yardstick,
between frames of *different* videos. The decoders are trained on rendered-frame features
(`extract --synth`), so a gap near 1.0 means they see at inference what they saw in training.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("backbone")
    ap.add_argument("--n", type=int, default=40, help="test videos")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from c4c.vision.backbone import Backbone
    from c4c.video.frames import sample_frames
    from c4c.video.preprocess import preprocess
    from c4c.synth import make_video, sample_seconds, split_ids, write_mp4

    bb = Backbone.from_file(args.backbone)
    same, pixel_err, video_cos, first = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for vid in split_ids("test")[: args.n]:
            v = make_video(vid)
            rendered = sample_seconds(v, max_frames=20)
            path = write_mp4(v.frames, v.fps, Path(tmp) / f"{vid}.mp4")
            decoded = sample_frames(path, max_frames=20).images
            assert decoded.shape == rendered.shape, (vid, decoded.shape, rendered.shape)
            a = torch.nn.functional.normalize(bb.embed(preprocess(rendered, bb.image_size)), dim=-1)
            b = torch.nn.functional.normalize(bb.embed(preprocess(decoded, bb.image_size)), dim=-1)
            same += (a * b).sum(-1).tolist()
            video_cos.append(float(torch.nn.functional.normalize(a.mean(0), dim=0) @
                                   torch.nn.functional.normalize(b.mean(0), dim=0)))
            pixel_err.append(float(np.abs(rendered.astype(int) - decoded).mean()))
            first.append(a[0])
    first = torch.stack(first)
    other = (first @ first.T)[~torch.eye(len(first), dtype=bool)]
    print(f"{len(same)} frames of {args.n} test videos, backbone {args.backbone}")
    print(f"mean |rendered - decoded| pixel error: {np.mean(pixel_err):.2f} grey levels")
    print(f"cosine(rendered, decoded), same frame: mean {np.mean(same):.4f}  min {np.min(same):.4f}  "
          f"5th pct {np.percentile(same, 5):.4f}")
    print(f"cosine of meanP video embeddings: mean {np.mean(video_cos):.4f}  min {np.min(video_cos):.4f}")
    print(f"yardstick, first frames of different videos: mean {float(other.mean()):.4f}")


if __name__ == "__main__":
    main()
