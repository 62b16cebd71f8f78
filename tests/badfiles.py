"""A corpus of awkward and broken "videos", generated on the spot (nothing binary is checked in).

Each entry says what c4c must do with it: caption it ("ok"), or refuse it with one clear line that
contains `message` ("error"). `build_corpus(folder)` writes every file with the ffmpeg that
imageio-ffmpeg ships (plus a few byte-level edits for broken headers), in a few seconds on 2 cores.
Used by tests/test_robust_videos.py; run `python tests/badfiles.py DIR` to write the corpus
somewhere and print what each entry is.

Edits done at the byte level (no encoder produces these on purpose):
* `fps_zero` / `fps_absurd` / `fps_tiny`: the mp4's `mdhd` timescale (ticks per second of the video
  track) is rewritten, so the header frame rate becomes 0, ~2 million or ~0.001 fps while the frames
  stay intact. `fps_stts_zero`: every frame's duration in `stts` is set to 0 (all frames at t=0).
* `truncated`: the tail is cut off an mp4 whose index (`moov`) is at the end, so the index is lost;
  `truncated_faststart`: the index is at the front (`-movflags +faststart`) and the frame data is
  cut, so the index promises frames that are not there.
* `corrupt_middle`: a block in the middle of the frame data is overwritten with noise.

The unreadable case needs a process that permissions apply to: as root (as in CI containers) the
tests run the check in a child process as user `nobody` (setpriv), else they skip it; the
library's PermissionError path is also unit-tested with a patched open() in tests/test_frames.py.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Entry", "CORPUS", "build_corpus", "ffmpeg", "patch_mdhd_timescale", "patch_stts_zero"]


@dataclass(frozen=True)
class Entry:
    name: str                 # key; also the file's stem
    filename: str             # what the file is called (the extension is part of the test)
    expect: str               # "ok": captioned; "error": refused with a clear one-line message
    message: str = ""         # for "error": a fragment of the message (case-insensitive)
    what: str = ""            # one line: what the file is
    app: bool = False         # also sent through the running app (a representative subset: uploads cost time)
    kind: str = "file"        # "file", "dir" (a directory), "missing" (no such path)
    checks: dict = field(default_factory=dict)  # for "ok": facts sample_frames must report


def ffmpeg(*args: str, timeout: float = 120) -> None:
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=timeout, capture_output=True)


def _src(seconds: float, size: str = "64x48", rate: float = 10, source: str = "testsrc") -> list[str]:
    return ["-f", "lavfi", "-i", f"{source}:size={size}:rate={rate}" if "=" in source
            else f"{source}=size={size}:rate={rate}", "-t", f"{seconds:g}"]


_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def _boxes(data: bytes | bytearray, start: int, end: int):
    """(type, box start, payload start, box end) of the ISO-BMFF boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < head:
            return
        yield kind.decode("latin-1"), pos, pos + head, min(pos + size, end)
        pos += size


def _find(data, path: list[str]):
    """Payload (start, end) of the first box at `path` (e.g. moov/trak/mdia/mdhd)."""
    start, end = 0, len(data)
    for name in path:
        for kind, _, payload, box_end in _boxes(data, start, end):
            if kind == name:
                start, end = payload, box_end
                break
        else:
            raise ValueError(f"no {name} box")
    return start, end


def patch_mdhd_timescale(path: Path, timescale: int) -> None:
    """Rewrite the video track's ticks-per-second: the header frame rate scales with it."""
    data = bytearray(path.read_bytes())
    start, _ = _find(data, ["moov", "trak", "mdia", "mdhd"])
    version = data[start]
    offset = start + 4 + (16 if version == 1 else 8)  # version+flags, then creation/modification times
    data[offset:offset + 4] = struct.pack(">I", timescale)
    path.write_bytes(bytes(data))


def patch_stts_zero(path: Path) -> None:
    """Set every sample's duration to 0 in the video track's time-to-sample table."""
    data = bytearray(path.read_bytes())
    start, _ = _find(data, ["moov", "trak", "mdia", "minf", "stbl", "stts"])
    (count,) = struct.unpack(">I", data[start + 4:start + 8])
    for k in range(count):
        o = start + 8 + 8 * k + 4
        data[o:o + 4] = b"\0\0\0\0"
    path.write_bytes(bytes(data))


def _mp4(path: Path, seconds: float, rate: float = 10, size: str = "64x48", extra: tuple[str, ...] = ()) -> Path:
    ffmpeg(*_src(seconds, size, rate), *_X264, "-g", "10", *extra, str(path))
    return path


# ---- the builders: each writes `path` (or a sibling) and returns the path to use ------------------------

def _zero_bytes(p):
    p.write_bytes(b"")
    return p


def _text(p):
    p.write_text("<html><body>404 Not Found</body></html>\nthis is a text file, not a video\n" * 20)
    return p


def _truncated(p):
    full = _mp4(p.with_name("full_for_trunc.mp4"), 6)
    data = full.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])  # moov (at the end) is lost
    full.unlink()
    return p


def _truncated_faststart(p):
    full = _mp4(p.with_name("full_fs.mp4"), 6, extra=("-movflags", "+faststart"))
    data = full.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # index intact, second half of the frames missing
    full.unlink()
    return p


def _corrupt_middle(p):
    _mp4(p, 6)
    data = bytearray(p.read_bytes())
    start, end = _find(data, ["mdat"])
    mid = (start + end) // 2
    rng = random.Random(5)
    n = min(4096, (end - start) // 4)
    data[mid:mid + n] = bytes(rng.randrange(256) for _ in range(n))
    p.write_bytes(bytes(data))
    return p


def _png(p):
    ffmpeg(*_src(1), "-frames:v", "1", str(p))
    return p


def _png_named_mp4(p):
    png = _png(p.with_suffix(".png"))
    png.replace(p)
    return p


def _jpeg_named_mp4(p):
    jpg = p.with_suffix(".jpg")
    ffmpeg(*_src(1), "-frames:v", "1", str(jpg))
    jpg.replace(p)
    return p


def _audio(p):
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(p))
    return p


def _one_frame(p):
    return _mp4(p, 1, extra=("-frames:v", "1"))


def _short(p):
    return _mp4(p, 0.2, rate=25)


def _fps_patch(timescale: int):
    def build(p):
        _mp4(p, 3)
        patch_mdhd_timescale(p, timescale)
        return p
    return build


def _fps_stts_zero(p):
    _mp4(p, 3)
    patch_stts_zero(p)
    return p


def _vfr(p):
    # 10 frames 0.1 s apart, then 10 frames 0.5 s apart: 6 s, frame rate not constant
    ffmpeg("-f", "lavfi", "-t", "2", "-i", "testsrc=size=64x48:rate=10",  # -t on the input: 20 frames in
           "-vf", "setpts='if(lt(N,10),N*0.1,1+(N-10)*0.5)/TB'", "-fps_mode", "vfr", *_X264, str(p))
    return p


def _rotated(p):
    base = _mp4(p.with_name("unrotated.mp4"), 2, size="160x96")
    ffmpeg("-display_rotation", "90", "-i", str(base), "-c", "copy", str(p))  # display matrix, frames untouched
    base.unlink()
    return p


def _narrow(p):
    return _mp4(p, 2, size="48x64")  # decord 0.6 mis-shapes frames 48 px wide


def _gray(p):
    ffmpeg(*_src(2), "-c:v", "libx265", "-x265-params", "log-level=error", "-preset", "ultrafast", "-pix_fmt",
           "gray", str(p))
    return p


def _ten_bit(p):
    ffmpeg(*_src(2), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", str(p))
    return p


def _huge(p):
    # 8K: two frames of a flat colour (cheap to encode); decoding must downscale, not hold 8K frames
    ffmpeg(*_src(1, "7680x4320", 2, "color=c=teal"), *_X264, str(p))
    return p


def _long(p):
    # one hour at 32x32, 1 fps: 3,600 frames, ~1 MB, written in well under a second
    ffmpeg(*_src(3600, "32x32", 1), *_X264, str(p))
    return p


def _webm(p):
    ffmpeg(*_src(3), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p", str(p))
    return p


def _avi(p):
    ffmpeg(*_src(3), "-c:v", "mpeg4", str(p))
    return p


def _mkv(p):
    ffmpeg(*_src(3), *_X264, str(p))
    return p


def _ts(p):
    ffmpeg(*_src(3), *_X264, "-f", "mpegts", str(p))
    return p


def _m2ts(p):
    ffmpeg(*_src(3), *_X264, "-f", "mpegts", "-mpegts_m2ts_mode", "1", str(p))
    return p


def _raw_h264(p):
    ffmpeg(*_src(3), *_X264, "-f", "h264", str(p))
    return p


def _gif(p):
    ffmpeg(*_src(2, "96x64"), str(p))
    return p


def _secret(folder: Path) -> Path:
    """A real video outside the upload folder, which the playlists below point at."""
    outside = folder.parent / (folder.name + "-outside")
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.ts"
    if not secret.exists():
        ffmpeg(*_src(2, "96x64", source="testsrc2"), *_X264, "-f", "mpegts", str(secret))
    return secret


def _hls(p):
    # decord's FFmpeg would open this playlist and read the local file it names
    p.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{_secret(p.parent)}\n#EXT-X-ENDLIST\n")
    return p


def _hls_nul(p):
    _hls(p)
    p.write_bytes(p.read_bytes() + b"#\0\x01\x02 binary-looking tail\n")
    return p


def _ffconcat(p):
    p.write_text(f"ffconcat version 1.0\nfile {_secret(p.parent)}\n")
    return p


def _sdp(p):
    p.write_text("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 "m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
    return p


def _directory(p):
    p.mkdir()
    return p


def _missing(p):
    return p


def _unreadable(p):
    _mp4(p, 2)
    p.chmod(0)
    return p



CORPUS: list[Entry] = [
    Entry("zero_bytes", "zero_bytes.mp4", "error", "empty (0 bytes)", "a zero-byte file", app=True),
    Entry("text", "text.mp4", "error", "cannot be decoded as a video", "an HTML/text file named .mp4", app=True),
    Entry("truncated", "truncated.mp4", "error", "cannot be decoded as a video",
          "an mp4 cut at 2/3: its index (moov, at the end) is lost", app=True),
    Entry("truncated_faststart", "truncated_faststart.mp4", "ok", "", "faststart mp4 cut in half: index intact, "
          "frames missing (the decodable part is used)", app=True),
    Entry("corrupt_middle", "corrupt_middle.mp4", "ok", "", "4 KB of noise in the middle of the frame data"),
    Entry("png", "frame.png", "error", "png image, not a video", "a PNG image"),
    Entry("png_named_mp4", "png_named.mp4", "error", "png image, not a video", "a PNG image named .mp4", app=True),
    Entry("jpeg_named_mp4", "jpeg_named.mp4", "error", "jpeg image, not a video", "a JPEG image named .mp4"),
    Entry("audio_m4a", "audio.m4a", "error", "no video stream", "AAC audio only (.m4a)", app=True),
    Entry("audio_mp3", "audio.mp3", "error", "no video stream", "MP3 audio only"),
    Entry("one_frame", "one_frame.mp4", "ok", "", "a single frame", app=True, checks={"n": 1}),
    Entry("short", "short.mp4", "ok", "", "0.2 s (5 frames at 25 fps)", checks={"n": 1}),
    Entry("fps_zero", "fps_zero.mp4", "ok", "", "mdhd timescale 0: header frame rate 0"),
    Entry("fps_absurd", "fps_absurd.mp4", "ok", "", "mdhd timescale 2^31-1: header frame rate ~2 million fps",
          app=True),
    Entry("fps_tiny", "fps_tiny.mp4", "ok", "", "mdhd timescale 1: header frame rate ~0.001 fps"),
    Entry("fps_stts_zero", "fps_stts_zero.mp4", "ok", "", "every frame's duration 0 (stts)"),
    Entry("vfr", "vfr.mp4", "ok", "", "variable frame rate: 10 frames 0.1 s apart, then 10 frames 0.5 s apart",
          checks={"indices": [0, 10, 12, 14, 16, 18], "timestamps": [0, 1, 2, 3, 4, 5]}),
    Entry("rotated", "rotated.mp4", "ok", "", "160x96 stored, display matrix turns it 90 degrees", app=True,
          checks={"shape": (160, 96)}),
    Entry("narrow", "narrow.mp4", "ok", "", "48x64 portrait (decord 0.6 mis-shapes frames 48 px wide)",
          checks={"shape": (128, 96)}),
    Entry("gray", "gray.mp4", "ok", "", "HEVC monochrome (pix_fmt gray)"),
    Entry("ten_bit", "ten_bit.mp4", "ok", "", "H.264 High 10 (yuv420p10le)", app=True),
    Entry("huge_8k", "huge_8k.mp4", "ok", "", "7680x4320, 2 frames", app=True, checks={"shape": (720, 1280)}),
    Entry("long_1h", "long_1h.mp4", "ok", "", "one hour, 32x32 at 1 fps (3,600 frames)",
          checks={"n": 20, "duration_s": 3600}),
    Entry("webm_vp9", "vp9.webm", "ok", "", "WebM / VP9", app=True),
    Entry("avi_mpeg4", "mpeg4.avi", "ok", "", "AVI / MPEG-4 part 2"),
    Entry("mkv_h264", "h264.mkv", "ok", "", "Matroska / H.264"),
    Entry("mpegts", "clip.ts", "ok", "", "MPEG transport stream / H.264"),
    Entry("m2ts", "clip.m2ts", "ok", "", "Blu-ray / AVCHD transport stream (192-byte packets)"),
    Entry("raw_h264", "raw.h264", "ok", "", "raw H.264 elementary stream, no container timing"),
    Entry("gif", "animated.gif", "ok", "", "an animated GIF (decord cannot index it: read through a remux)"),
    Entry("hls_playlist", "playlist.mp4", "error", "playlist", "an HLS playlist naming a video outside the "
          "upload folder", app=True),
    Entry("hls_playlist_nul", "playlist_nul.mp4", "error", "playlist", "the same playlist with binary bytes appended"),
    Entry("ffconcat", "concat.mp4", "error", "playlist", "an ffconcat script naming a video outside the folder"),
    Entry("sdp", "stream.mp4", "error", "stream description", "an SDP file (RTP over UDP)"),
    Entry("directory", "folder.mp4", "error", "directory", "a directory named .mp4", kind="dir"),
    Entry("missing", "nowhere.mp4", "error", "no such file", "a path that does not exist", kind="missing"),
    Entry("unreadable", "unreadable.mp4", "error", "permission denied", "a file without read permission (chmod 000)"),
]

_BUILDERS: dict[str, Callable[[Path], Path]] = {
    "zero_bytes": _zero_bytes, "text": _text, "truncated": _truncated, "truncated_faststart": _truncated_faststart,
    "corrupt_middle": _corrupt_middle, "png": _png, "png_named_mp4": _png_named_mp4,
    "jpeg_named_mp4": _jpeg_named_mp4, "audio_m4a": _audio, "audio_mp3": _audio, "one_frame": _one_frame,
    "short": _short, "fps_zero": _fps_patch(0), "fps_absurd": _fps_patch(2**31 - 1), "fps_tiny": _fps_patch(1),
    "fps_stts_zero": _fps_stts_zero, "vfr": _vfr, "rotated": _rotated, "narrow": _narrow, "gray": _gray, "ten_bit": _ten_bit,
    "huge_8k": _huge, "long_1h": _long, "webm_vp9": _webm, "avi_mpeg4": _avi, "mkv_h264": _mkv, "mpegts": _ts, "m2ts": _m2ts,
    "raw_h264": _raw_h264, "gif": _gif, "hls_playlist": _hls, "hls_playlist_nul": _hls_nul, "ffconcat": _ffconcat,
    "sdp": _sdp, "directory": _directory, "missing": _missing, "unreadable": _unreadable,
}
assert set(_BUILDERS) == {e.name for e in CORPUS}


def build_corpus(folder: str | os.PathLike, names: list[str] | None = None) -> dict[str, Path]:
    """Write the corpus (or the named entries) into `folder`; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for e in CORPUS:
        if names is None or e.name in names:
            out[e.name] = _BUILDERS[e.name](folder / e.filename)
    return out


if __name__ == "__main__":
    import time
    t = time.perf_counter()
    paths = build_corpus(sys.argv[1] if len(sys.argv) > 1 else "badfiles")
    for e in CORPUS:
        print(f"{e.expect:5} {e.name:20} {paths[e.name]}  ({e.what})")
    print(f"{len(paths)} entries in {time.perf_counter() - t:.1f} s")
