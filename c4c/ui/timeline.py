"""The page's segment timeline: a row per segment (times, frames, winner, caption), its thumbnails, one
segment as a whole result (so the page's table and figures show it), and the SRT/WebVTT downloads.

Pure functions of the CaptionResult, like view.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..result import CaptionResult

__all__ = ["TIMELINE_HEADERS", "clock", "timeline_rows", "timeline_gallery", "segment_result", "segments_markdown",
           "write_subtitle_files"]

TIMELINE_HEADERS = ["#", "Start", "End", "Frames", "Winner", "Caption"]


def clock(seconds: float) -> str:
    """63.5 -> "1:03.5"; 3725 -> "1:02:05.0"."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"


def timeline_rows(r: CaptionResult) -> list[list]:
    """One row per segment, in time order, and one per gap that could not be decoded."""
    rows = [[k + 1, clock(s.start_s), clock(s.end_s), len(s.timestamps), s.captions[s.winner].name, s.caption]
            for k, s in enumerate(r.segments or [])]
    for a, b in r.segmentation.get("gaps", []):
        rows.append(["-", clock(a), clock(b), 0, "-", "(could not be decoded: no caption)"])
    return sorted(rows, key=lambda row: _seconds(row[1]))


def _seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    return sum(p * 60 ** (len(parts) - 1 - i) for i, p in enumerate(parts))


def timeline_gallery(r: CaptionResult, thumbs: dict) -> list[tuple[np.ndarray, str]]:
    """(thumbnail, "#k 0:03.5-0:07.0: caption") per segment that has a thumbnail, for gr.Gallery."""
    out = []
    for k, s in enumerate(r.segments or []):
        img = thumbs.get(k, thumbs.get(str(k)))
        if img is not None:
            out.append((np.asarray(img, dtype=np.uint8), f"#{k + 1} {clock(s.start_s)}-{clock(s.end_s)}: {s.caption}"))
    return out


def segment_result(r: CaptionResult, k: int) -> CaptionResult:
    """Segment k as a CaptionResult of its own (its captions, vote and frames), for the table and figures."""
    s = r.segments[k]
    return dataclasses.replace(r, timestamps=s.timestamps, frame_indices=s.frame_indices, captions=s.captions,
                               winner=s.winner, tie_break=s.tie_break, pairwise=s.pairwise, segments=None,
                               segmentation={}, selection={**r.selection, **s.selection})  # older files: none


def segments_markdown(r: CaptionResult, cap_s: float | None = None) -> str:
    """One line over the timeline: how many segments, how found, what was not decoded."""
    seg = r.segmentation
    text = (f"**{len(r.segments)} segments** ({seg.get('mode')}; detector: {seg.get('detector')}), from "
            f"{seg.get('seconds_decoded')} of {seg.get('seconds')} seconds decoded. Choose a row to see that "
            "segment's captions, scores and agreement below.")
    if seg.get("gaps"):
        text += f" {len(seg['gaps'])} stretch(es) could not be decoded and have no caption."
    if cap_s:
        text += f" Segmented videos may be up to {cap_s / 60:g} minutes long here."
    return text


def write_subtitle_files(r: CaptionResult, json_path: str | Path) -> tuple[Path, Path]:
    """The .srt and .vtt beside a result's JSON download (same folder, same stem)."""
    from ..subtitles import write_subtitles
    json_path = Path(json_path)
    stem = json_path.name.removesuffix(".c4c.json")
    return (write_subtitles(r, json_path.with_name(stem + ".srt")),
            write_subtitles(r, json_path.with_name(stem + ".vtt")))
