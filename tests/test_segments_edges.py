"""Segmented captioning's edge cases (issue 15, item 6) on real files, end to end through
`Pipeline.caption` and the CLI: a cut in the first or the last second, a cut every second, and a file
whose middle cannot be decoded. Videos are short 128x96 clips at 10 fps (c4c/synth/cuts.py)."""

import subprocess
import sys

import pytest
from badfiles import _find

from c4c.pipeline import CaptionSettings
from c4c.synth.cuts import write_clips
from c4c.video.stream import decode_seconds


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from c4c.pipeline import Pipeline
    from c4c.zoo.random_zoo import make_random_zoo
    return Pipeline.from_zoo(make_random_zoo(tmp_path_factory.mktemp("zoo")), device="cpu")


def _auto(pipe, path, min_s=2):
    return pipe.caption(path, CaptionSettings(beam=1, max_frames=4, segments="auto", min_segment_s=min_s))


def _spans(r):
    return [(s.start_s, s.end_s) for s in r.segments]


def _covers(r):
    """Segments tile [0, duration) and each one's frames lie inside it."""
    segs = r.segments
    assert segs[0].start_s == 0 and segs[-1].end_s == pytest.approx(r.video_info["duration_s"], abs=1e-3)
    assert all(a.end_s == b.start_s for a, b in zip(segs, segs[1:]))
    assert all(s.timestamps and all(s.start_s <= t < s.end_s for t in s.timestamps) for s in segs)


def test_a_cut_in_the_first_second_is_found_and_merged_into_the_first_segment(pipe, tmp_path):
    path = tmp_path / "first.mp4"
    assert write_clips(path, [0.4, 4.6, 4.0], seed="first") == [0.4, 5.0]
    r = _auto(pipe, path)
    _covers(r)
    # The 1-fps samples see the first cut between 0 s and 1 s (reported at 0.5 s); a segment of under
    # min_segment_s (2 s) cannot start there, so the first clip's frame belongs to the first segment.
    assert r.segmentation["cuts_s"] == [0.5, 4.5]
    assert _spans(r) == [(0.0, 4.5), (4.5, 9.0)] and r.segments[0].timestamps[0] == 0.0


def test_a_cut_in_the_last_second_is_merged_into_the_last_segment(pipe, tmp_path):
    path = tmp_path / "last.mp4"
    assert write_clips(path, [4.5, 4.0, 0.8], seed="last") == [4.5, 8.5]
    r = _auto(pipe, path)
    _covers(r)
    assert r.video_info["duration_s"] == pytest.approx(9.3)
    assert r.segmentation["cuts_s"] == [4.5, 8.5]
    assert _spans(r) == [(0.0, 4.5), (4.5, 9.3)] and r.segments[-1].timestamps[-1] == 9.0  # the last clip's frame
    # A last clip shorter than the gap to the final 1-fps sample is never seen: one segment, no error.
    short = tmp_path / "last_unseen.mp4"
    write_clips(short, [6.2, 0.5], seed="last")  # the cut at 6.2 s: after the last sample (6 s)
    r = _auto(pipe, short)
    assert r.segmentation["cuts_s"] == [] and _spans(r) == [(0.0, 6.7)]


@pytest.mark.parametrize("min_s", [2, 3])
def test_a_cut_every_second_gives_segments_of_about_the_minimum_length(pipe, tmp_path, min_s):
    path = tmp_path / "montage.mp4"
    # A seed whose consecutive clips all differ over most of the picture (at least 65% of it), so that
    # every cut is plain at 1 fps.
    truth = write_clips(path, [1.0] * 16, seed="montage6")
    r = _auto(pipe, path, min_s)
    _covers(r)
    # Every cut is found, between the two samples around it (before `dense_cuts`, only 1 of the 15
    # was, and the montage was one 16-s segment) ...
    assert all(any(abs(c - (t - 0.5)) < 0.01 for c in r.segmentation["cuts_s"]) for t in truth)
    # ... and the minimum length caps them: no span under min_s, none as long as two of them
    lengths = [b - a for a, b in _spans(r)]
    assert min(lengths) >= min_s and max(lengths) < 2 * min_s
    assert len(r.segments) >= 16 // min_s - 2


def _zero_hole(path, start: float, length: float) -> None:
    """Overwrite a share of the frame data (mdat) with zero bytes, as a download or copy that never
    arrived leaves it; with a keyframe every second, the decoder rejects what lies in the hole."""
    data = bytearray(path.read_bytes())
    s, e = _find(data, ["mdat"])
    a = s + int((e - s) * start)
    b = a + int((e - s) * length)
    data[a:b] = bytes(b - a)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def holed(tmp_path_factory):
    path = tmp_path_factory.mktemp("holed") / "holed.mp4"
    write_clips(path, [5.0] * 4, seed="holed", gop=10)
    _zero_hole(path, 0.5, 0.1)
    return path


def test_undecodable_middle_of_a_real_file_is_a_gap_and_the_rest_is_captioned(pipe, holed):
    with pytest.warns(UserWarning, match="could not be decoded"):
        r = _auto(pipe, holed)
    gaps = r.segmentation["gaps"]
    assert len(gaps) == 1 and 5 < gaps[0][0] < gaps[0][1] < 19, gaps
    a, b = gaps[0]
    assert r.segmentation["uncaptioned"] == [[a, b]]
    assert r.segmentation["seconds_decoded"] == r.segmentation["seconds"] - (b - a)
    assert any(s.end_s == a for s in r.segments) and any(s.start_s == b for s in r.segments)
    assert r.segments[0].start_s == 0 and r.segments[-1].end_s == 20.0
    assert all(not (a <= t < b) and (s.end_s <= a or s.start_s >= b) for s in r.segments for t in s.timestamps)
    assert r.segmentation["cuts_s"][:2] == [4.5, 9.5]  # the cuts before the hole still count
    assert any("could not be decoded" in n for n in r.video_info["notes"])
    with pytest.warns(UserWarning, match="could not be decoded"):
            fixed = pipe.caption(holed, CaptionSettings(beam=1, max_frames=2, segments="every:3"))
    assert fixed.segmentation["gaps"] == gaps and fixed.segmentation["uncaptioned"][0][0] == a
    assert sum(e - s for s, e in fixed.segmentation["uncaptioned"]) == pytest.approx(b - a)


@pytest.mark.filterwarnings("ignore:.*could not be decoded")
def test_a_chunk_wholly_inside_the_hole_gives_the_same_gap(holed):
    """With 2-frame chunks, some chunk decodes nothing at all: decode_seconds' own recovery (a fresh
    reader for the next chunk) must report the very gap that the per-frame recovery does."""
    got = []
    whole = decode_seconds(holed, lambda images, indices, times: got.extend(times))
    small = decode_seconds(holed, lambda images, indices, times: None, chunk=2)
    assert small.gaps == whole.gaps and small.decoded == whole.decoded
    assert any(n.startswith("seconds ") and "could not be decoded" in n for n in small.notes)
    assert got == [t for t, ok in zip(whole.timestamps, whole.decoded) if ok]


def _seconds(clock: str) -> float:
    """'0:11.00' (the CLI's table) or '00:00:11,000' (SRT) -> 11.0"""
    parts = [float(x) for x in clock.replace(",", ".").split(":")]
    return sum(x * 60 ** k for k, x in enumerate(reversed(parts)))


def test_cli_reports_the_gap_and_subtitles_skip_it(pipe, holed, tmp_path):
    srt = tmp_path / "holed.srt"
    cmd = [sys.executable, "-m", "c4c", "caption", str(holed), "--zoo", str(pipe.zoo.folder), "--beam", "1",
           "--segments", "auto", "--srt", str(srt), "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    gap = [ln.split() for ln in out.stdout.splitlines() if ln.strip().startswith("gap")]
    assert len(gap) == 1 and " ".join(gap[0][4:]) == "could not be decoded (no caption)"
    a, b = _seconds(gap[0][1]), _seconds(gap[0][3])
    cues = [[_seconds(t) for t in cue.split("\n")[1].split(" --> ")] for cue in srt.read_text().strip().split("\n\n")]
    assert len(cues) >= 3 and cues[0][0] == 0 and cues[-1][1] == 20.0
    assert [a, b] in [[x[1], y[0]] for x, y in zip(cues, cues[1:])]  # the one hole in the subtitles
    assert all(x[1] == y[0] for x, y in zip(cues, cues[1:]) if x[1] != a)
