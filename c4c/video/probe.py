"""Opening an untrusted video file: header checks, the bundled ffmpeg's probe and remux, decord's reader.

Untrusted files. Only files that start like a binary video container reach FFmpeg: FFmpeg also reads
text formats (HLS playlists, concat scripts, SDP) that make it open *other* files, which an uploaded
"video" must never do. The frame size is read from the stream header (the bundled ffmpeg, no
decoding) so that huge frames are downscaled by the decoder and never held at full size. A file
decord cannot index (truncated, raw stream, GIF) is remuxed by ffmpeg into a temporary Matroska file
that is deleted afterwards; sampled frames that fail to decode (damaged data) are dropped, with a note.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..errors import VideoError

_DECODER_THREADS = max(1, min(4, os.cpu_count() or 1))  # bounds the full-size frames in flight

_STDERR_LOCK = threading.Lock()

_HEAD_BYTES = 2048

_PROBE_TIMEOUT_S = 30.0

_REMUX_TIMEOUT_S = 300.0

# Leading bytes of still-image formats that FFmpeg would otherwise report as "broken metadata".
_IMAGE_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}

_AUDIO_MAGIC = {b"ID3": "MP3", b"fLaC": "FLAC", b"#!AMR": "AMR", b"MAC ": "APE", b"wvpk": "WavPack"}

# ISO base media (mp4, mov, m4v, 3gp) files start with one of these boxes.
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"junk", b"styp", b"sidx", b"moof"}

# FFmpeg demuxers the bundled ffmpeg may use on an input (probe and remux): binary containers only.
_FFMPEG_FORMATS = ("mov,matroska,webm,avi,mpegts,mpeg,mpegvideo,m4v,h264,hevc,flv,asf,ogg,mxf,ivf,yuv4mpegpipe,"
                   "nut,rm,gif")

_FFMPEG_SAFE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", _FFMPEG_FORMATS]

_REENCODE = "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"

_GIVE_VIDEO = "give a video file (mp4, webm, mkv, mov, avi, ...)"


def _container(head: bytes) -> str | None:
    """The video container a file's first bytes announce, or None for anything else."""
    if head[4:8] in _ISO_BOXES:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX", b"AMV "):
        return "avi"
    if head[:1] == head[188:189] == b"\x47":  # two sync bytes, 188-byte packets
        return "mpegts"
    if head[4:5] == head[196:197] == b"\x47":  # 192-byte packets (a 4-byte time code first)
        return "m2ts"
    if head.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        return "mpeg"  # program / elementary stream, raw H.264 / HEVC (Annex B)
    for magic, kind in ((b"FLV\x01", "flv"), (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"), (b"OggS", "ogg"),
                        (b"\x06\x0e\x2b\x34", "mxf"), (b"DKIF", "ivf"), (b"YUV4MPEG2", "y4m"), (b".RMF", "rm"),
                        (b"nut/multimedia container", "nut"), (b"GIF87a", "gif"), (b"GIF89a", "gif")):
        if head.startswith(magic):
            return kind
    return None


def _not_a_video(path: Path, head: bytes) -> VideoError:
    """The error for a file that does not start like a video container: say what it looks like."""
    for magic, kind in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return VideoError(f"{path}: is a {kind} image, not a video; {_GIVE_VIDEO}")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return VideoError(f"{path}: is a WebP image, not a video; {_GIVE_VIDEO}")
    audio = next((kind for magic, kind in _AUDIO_MAGIC.items() if head.startswith(magic)), None)
    if audio is None and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        audio = "WAV"
    if audio is None and len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        audio = "MPEG audio (MP3 / AAC)"
    if audio:
        return VideoError(f"{path}: is an {audio} audio file: it has no video stream; give a file with video")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"#EXTM3U", b"ffconcat", b"<?xml", b"<MPD", b"v=0")):
        kind = "a playlist or stream description, refused because it makes FFmpeg open other files"
        return VideoError(f"{path}: cannot be decoded as a video (it is {kind}); {_GIVE_VIDEO}")
    if b"\0" not in head and sum(32 <= c < 127 or c in b"\t\r\n" for c in head) >= 0.9 * len(head):
        return VideoError(f"{path}: cannot be decoded as a video (it is a text file); {_GIVE_VIDEO}")
    return VideoError(f"{path}: cannot be decoded as a video (not a video container c4c reads: it starts with "
                      f"bytes {head[:8].hex(' ')}); give an mp4, webm, mkv, mov or avi file, or {_REENCODE}")


def _check_file(path: Path) -> None:
    """Fail early, with a clear message, on paths FFmpeg would only report cryptically, and on
    anything that does not start like a video container (see the module docstring)."""
    if not path.exists():
        raise VideoError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory; {_GIVE_VIDEO}")
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except PermissionError:
        raise VideoError(f"{path}: permission denied; make the file readable") from None
    except OSError as e:
        raise VideoError(f"{path}: cannot be read ({e.strerror or e}); check the file") from None
    if not head:
        raise VideoError(f"{path}: the file is empty (0 bytes); re-export or re-download the video")
    if _container(head) is None:
        raise _not_a_video(path, head)


@contextmanager
def _captured_stderr():
    """Capture what native code (FFmpeg, decord's C++ logging) writes to file descriptor 2, so a bad
    file yields one clean VideoError line instead of C++ log noise; the text lands in the yielded list.
    Serialised by a lock: interleaved dup2 calls from two threads could lose stderr for good."""
    log: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2: nothing to protect
            yield log
            return
        os.dup2(tmp.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            log.append(tmp.read().decode("utf-8", "replace"))


# decord / FFmpeg phrases -> what they mean for the user
_KNOWN = (
    ("broken metadata", "no usable frame count or duration in its header"),
    ("av_read_frame failed", "FFmpeg could not read its packets: truncated or corrupted"),
    ("Unable to handle EOF", "its last frames are missing or corrupted"),
    ("Error sending packet", "the decoder rejected damaged data"),
    ("Invalid frame count", "the demuxer found no frames"),
)


def _clean(text: str) -> str:
    """One short line out of a decord/FFmpeg message: no '[12:00:00] src/x.cc:83:' or '[file]' prefixes."""
    for phrase, meaning in _KNOWN:
        if phrase in text:
            return meaning
    reasons = []
    for line in text.splitlines():
        line = line.strip()
        while True:  # prefixes come stacked: "[18:28:48] /src/a.cc:292: [18:28:48] /src/b.cc:218: ..."
            new = re.sub(r"^(\[[^\]]*\]\s*)+", "", line)
            new = re.sub(r"^\S+\.(cc|h|cpp|c):\d+:\s*", "", new)
            if new == line:
                break
            line = new
        if line.startswith("ERROR opening:"):
            line = line.rsplit(", ", 1)[-1]
        if line and line not in reasons:
            reasons.append(line)
    return "; ".join(reasons)[:160]


def _ffmpeg_reason(log: str) -> str | None:
    """The FFmpeg/decord complaint in a captured log, without '[mov,mp4 @ 0x..]' or path prefixes."""
    return _clean(log) or None


def _open_error(path: Path, err: BaseException, log: str = "") -> VideoError:
    text = str(err)
    if "cannot find video stream" in text:
        return VideoError(f"{path}: has no video stream (audio only?); give a file with video")
    if text.startswith("Error reading"):  # decord's message when FFmpeg cannot open the container
        why = _ffmpeg_reason(log) or "FFmpeg does not recognise it as a video container"
    else:
        why = _clean(text) or type(err).__name__
    return VideoError(f"{path}: cannot be decoded as a video ({why}); check it is a complete video "
                      f"file, or {_REENCODE}")


def _reader(path: Path, width: int = -1, height: int = -1, shown_as: Path | None = None):
    import decord
    import decord.logging
    err = None
    # FFmpeg logs only while a file is opened, into the captured stderr (its complaint becomes the
    # error's reason); at other times it is silent, because decord's decoder threads run ahead of
    # get_batch and would print damaged-data warnings long after any capture has ended.
    with _captured_stderr() as log:
        decord.logging.set_level(decord.logging.ERROR)
        try:
            # An absolute path: FFmpeg never reads a name like "concat:a|b" or "http:..." as a protocol.
            vr = decord.VideoReader(os.path.abspath(path), ctx=decord.cpu(0), width=width, height=height,
                                    num_threads=_DECODER_THREADS)
        except (decord.DECORDError, RuntimeError, AssertionError) as e:
            err = e
        finally:
            decord.logging.set_level(decord.logging.QUIET)
    if err is not None:
        raise _open_error(shown_as or path, err, "".join(log)) from None
    return vr


def _ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform: the callers have fallbacks
        return None


_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: .*?, (\d+)x(\d+)\b.*$", re.M)


def _parse_size(text: str) -> tuple[int, int] | None:
    """(width, height) as displayed, from `ffmpeg -i` output: the first video stream's size (cover
    art skipped), swapped when its display matrix turns it by 90 degrees (decord applies that rotation)."""
    for m in _STREAM_RE.finditer(text):
        if "(attached pic)" in m[0]:
            continue
        w, h = int(m[1]), int(m[2])
        block = text[m.end():]
        nxt = re.search(r"^\s*Stream #", block, re.M)
        rot = re.search(r"rotation of (-?[\d.]+) degrees", block[:nxt.start()] if nxt else block)
        if rot and round(float(rot[1])) % 180 == 90:
            w, h = h, w
        return (w, h) if w > 0 and h > 0 else None
    return None


def _probe_size(path: Path) -> tuple[int, int] | None:
    """The displayed frame size from the stream header (bundled ffmpeg; nothing is decoded for
    common codecs), or None when that is unavailable."""
    exe = _ffmpeg_exe()
    if exe is None:
        return None
    cmd = [exe, "-hide_banner", "-nostdin", *_FFMPEG_SAFE_INPUT, "-i", "file:" + os.path.abspath(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return _parse_size(out.stderr.decode("utf-8", "replace"))


def _remux(path: Path, folder: Path, max_duration_s: float | None) -> Path | None:
    """Copy the first video stream into a Matroska file (no re-encoding): FFmpeg keeps what it can
    read of a truncated file and gives a raw stream or a GIF the index decord needs. None on failure."""
    exe = _ffmpeg_exe()
    if exe is None:
        return None
    out = folder / "remuxed.mkv"
    limit = ["-t", f"{max_duration_s + 1:g}"] if max_duration_s is not None else []  # enough to see it is over
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *_FFMPEG_SAFE_INPUT,
           "-i", "file:" + os.path.abspath(path), *limit, "-map", "0:v:0", "-c", "copy", "-f", "matroska", str(out)]
    try:
        subprocess.run(cmd, capture_output=True, timeout=_REMUX_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out.is_file() and out.stat().st_size > 0 else None


def _open(path: Path, stack: ExitStack, max_duration_s: float | None):
    """(file to decode, VideoReader, note or None): the file itself, or its remux when decord
    cannot index it (the temporary folder goes when `stack` closes)."""
    try:
        return path, _reader(path), None
    except VideoError as e:
        if "no video stream" in str(e):
            raise
        first_error = e
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="c4c-remux-")))
    remuxed = _remux(path, folder, max_duration_s)
    if remuxed is None:
        raise first_error
    try:
        vr = _reader(remuxed, shown_as=path)
    except VideoError:
        raise first_error from None
    return remuxed, vr, (f"the file could not be read as it is (truncated or damaged, or a raw stream); used the "
                         f"{len(vr)} frames FFmpeg recovered from it")
