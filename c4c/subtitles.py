"""Subtitles from a segmented CaptionResult: one cue per segment, the segment's winning caption.

SRT is composed with the `srt` library (timestamps, numbering and blank-line rules); WebVTT is the same
cues with the `WEBVTT` header and `.` before the milliseconds (W3C WebVTT, section 4), written here,
since its cue syntax is those two lines. A result without segments gives one cue for the whole video.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from .errors import InputError
from .result import CaptionResult

__all__ = ["check_path", "cues", "to_srt", "to_vtt", "write_subtitles"]


def cues(result: CaptionResult) -> list[tuple[float, float, str]]:
    """(start s, end s, text) per segment, in time order."""
    if result.segments is None:
        return [(0.0, float(result.video_info.get("duration_s", 0.0)), result.caption)]
    return [(s.start_s, s.end_s, s.caption) for s in result.segments]


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" would read as a timing line in WebVTT.
    return " ".join(text.split()).replace("-->", "->") or "..."


def to_srt(result: CaptionResult) -> str:
    import srt
    return srt.compose([srt.Subtitle(index=k + 1, start=timedelta(seconds=a), end=timedelta(seconds=b),
                                     content=_one_line(text)) for k, (a, b, text) in enumerate(cues(result))])


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def to_vtt(result: CaptionResult) -> str:
    blocks = [f"{_vtt_time(a)} --> {_vtt_time(b)}\n{_one_line(text).replace('&', '&amp;').replace('<', '&lt;')}"
              for a, b, text in cues(result)]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n"


def check_path(path: str | Path) -> Path:
    """InputError unless `path` ends in .srt or .vtt and its folder exists."""
    path = Path(path)
    if path.suffix.lower() not in (".srt", ".vtt"):
        raise InputError(f"{path}: subtitle files end in .srt or .vtt")
    if not path.parent.is_dir():
        raise InputError(f"{path}: the folder {path.parent} does not exist")
    return path


def write_subtitles(result: CaptionResult, path: str | Path) -> Path:
    """Write `result` as .srt or .vtt, by the file's suffix."""
    path = check_path(path)
    path.write_text(to_srt(result) if path.suffix.lower() == ".srt" else to_vtt(result), encoding="utf-8")
    return path
