"""Shared by the batch tests: a folder of tiny generated videos (one of them corrupt) and result
comparison without timings."""

import json
from pathlib import Path

import numpy as np

from c4c.synth.writer import write_mp4

GOOD = ["a.mp4", "b.mp4", "sub/c.mp4", "sub/d.mp4"]


def make_videos(folder: Path) -> Path:
    """4 short H.264 clips (2-4 s, 64x48, a moving white block on a coloured ground, 2 in a subfolder),
    a corrupt .mp4, and files a folder walk must ignore."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(GOOD):
        n = 10 * (2 + k % 3)                       # 10 fps: 2, 3, 4, 2 s
        frames = np.empty((n, 48, 64, 3), np.uint8)
        frames[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        for i in range(n):
            x = (i * 3 + 7 * k) % 56
            frames[i, 10 + 5 * k:20 + 5 * k, x:x + 8] = 255
        write_mp4(frames, 10, folder / name)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + rng.bytes(2000))
    (folder / "notes.md").write_text("not a video\n")
    (folder / ".hidden.mp4").write_bytes(b"never looked at")
    return folder


def lines(path: Path) -> list[dict]:
    """Every line of a JSONL output, parsed (fails on a broken line)."""
    return [json.loads(ln) for ln in Path(path).read_text(encoding="utf-8").splitlines()]


def strip(record: dict) -> dict:
    """A result or error record without what legitimately differs between runs (the timings)."""
    return {k: v for k, v in record.items() if k != "timings"}


def by_video(records: list[dict]) -> dict[str, dict]:
    return {r["video"]: strip(r) for r in records}
