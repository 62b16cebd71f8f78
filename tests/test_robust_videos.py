"""The bad-video corpus (tests/badfiles.py) through every layer: the library (`sample_frames`,
`Pipeline.caption`), the CLI (`python -m c4c caption`), and the running app (a representative subset,
through gradio_client). Each file is either captioned or refused with one clear line; nothing
crashes, hangs, prints native noise, leaves temporary files, or reads a file outside the upload.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from _app_harness import running_app  # noqa: F401  (session fixture: the app, launched once)
from badfiles import CORPUS, Entry, build_corpus
from c4c.cli import main as cli_main
from c4c.errors import VideoError
from c4c.video.frames import sample_frames
from c4c.pipeline import CaptionSettings, Pipeline
from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo

REPO = Path(__file__).resolve().parents[1]
BY_NAME = {e.name: e for e in CORPUS}
# The unreadable file needs a process that permissions apply to (see test_unreadable_file_as_another_user).
LOCAL = [e for e in CORPUS if e.name != "unreadable"]


def _ids(entries):
    return [e.name for e in entries]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    t = time.perf_counter()
    paths = build_corpus(tmp_path_factory.mktemp("badfiles") / "upload")
    assert time.perf_counter() - t < 120, "the corpus should generate in seconds"
    return paths


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return make_random_zoo(tmp_path_factory.mktemp("zoo") / "zoo", RandomZooSpec(n_decoders=3, max_words=4))


@pytest.fixture(scope="module")
def pipe(zoo) -> Pipeline:
    return Pipeline.from_zoo(zoo, device="cpu", cache_size=0)


def _remux_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("c4c-remux-*")}


def _check_ok(e: Entry, f) -> None:
    assert f.images.dtype == np.uint8 and f.images.ndim == 4 and f.images.shape[-1] == 3
    assert 1 <= len(f.indices) == len(f.timestamps) == f.images.shape[0] <= 20
    assert f.indices == sorted(set(f.indices)) and all(0 <= i < f.n_frames_total for i in f.indices)
    assert f.timestamps == sorted(f.timestamps) and f.timestamps[0] == 0.0
    assert min(f.images.shape[1:3]) <= 720  # huge frames arrive downscaled
    c = e.checks
    if "n" in c:
        assert len(f.indices) == c["n"]
    if "shape" in c:
        assert f.images.shape[1:3] == c["shape"]
    if "duration_s" in c:
        assert f.duration_s == pytest.approx(c["duration_s"])
    if "indices" in c:
        assert f.indices == c["indices"] and f.timestamps == pytest.approx(c["timestamps"], abs=0.01)


# ---- library --------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", LOCAL, ids=_ids(LOCAL))
def test_library(entry, corpus, pipe, capfd):
    path = corpus[entry.name]
    before = _remux_dirs()
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes (downscaling, fps fallback) are checked in SampledFrames.notes
        if entry.expect == "ok":
            _check_ok(entry, sample_frames(path))
            r = pipe.caption(path, CaptionSettings(beam=1, max_frames=4))
            assert len(r.captions) == 3 and 1 <= len(r.timestamps) <= 4
        else:
            with pytest.raises(VideoError) as e:
                sample_frames(path)
            msg = str(e.value)
            assert entry.message.lower() in msg.lower(), msg
            assert "\n" not in msg and str(path) in msg and len(msg) < 400, msg
            assert not re.search(r"\.cc:\d+|\[\d\d:\d\d:\d\d\]|0x[0-9a-f]{6,}", msg), f"native noise in: {msg}"
            with pytest.raises(VideoError, match=re.escape(msg)):
                pipe.caption(path, CaptionSettings(beam=1, max_frames=4))
    assert capfd.readouterr().err == ""  # FFmpeg / decord said nothing on the terminal
    assert _remux_dirs() == before  # temporary remux folders are gone, also after errors


def test_duration_cap_refuses_before_decoding(corpus):
    t = time.perf_counter()
    with pytest.raises(VideoError, match="3600.0 s long, over the limit of 300 s"):
        sample_frames(corpus["long_1h"], max_duration_s=300)
    assert time.perf_counter() - t < 10


def test_long_and_huge_videos_have_bounded_cost(corpus):
    """A 1-hour video: only max_frames frames are decoded (time); an 8K one: decoded downscaled (memory)."""
    # Peak RSS of the decoding alone: /proc/self/clear_refs "5" resets the high-water mark (Linux).
    code = ("import sys, time, warnings; warnings.simplefilter('ignore')\n"
            "from c4c.video.frames import sample_frames\n"
            "import decord, numpy\n"
            "def kb(field):\n"
            "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(field))\n"
            "base = kb('VmRSS:'); open('/proc/self/clear_refs', 'w').write('5')\n"
            "t = time.perf_counter(); f = sample_frames(sys.argv[1], max_frames=int(sys.argv[2]))\n"
            "print(time.perf_counter() - t, (kb('VmHWM:') - base) / 1024, len(f.indices))")
    costs = {}
    for name, cap in (("long_1h", 20), ("huge_8k", 20)):
        out = subprocess.run([sys.executable, "-c", code, str(corpus[name]), str(cap)], cwd=REPO, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 0, out.stderr
        seconds, grown_mb, n = out.stdout.split()
        costs[name] = (float(seconds), float(grown_mb), int(n))
    print("cost (s, peak RSS growth MB, frames):", costs)
    assert costs["long_1h"][2] == 20 and costs["long_1h"][0] < 30
    # 8K: decoded at 1280x720 (~3 MB a frame); a full-size decode first used to cost ~600 MB
    assert costs["huge_8k"][1] < 400


def test_frames_over_the_pixel_limit_are_refused_before_decoding(corpus, monkeypatch):
    """A tiny file can declare 16K frames (a flat 16K frame compresses to a few hundred KB); the header
    size is checked before anything is decoded. (Writing a real one costs ~1 GB: simulated here.)"""
    import c4c.video.frames
    decoded = []
    monkeypatch.setattr(c4c.video.frames, "_probe_size", lambda path: (15360, 8640))
    monkeypatch.setattr(c4c.video.frames, "_batch", lambda *a: decoded.append(a) or (None, RuntimeError("decoded")))
    with pytest.raises(VideoError, match=r"frames of 15360x8640 \(133 megapixels\) are over the limit of 67"):
        sample_frames(corpus["mkv_h264"])
    assert decoded == []


def test_stream_header_parsing():
    """The frame size read off `ffmpeg -i` (it decides the decode-time downscale, before any decoding)."""
    from c4c.video.probe import _parse_size
    head = "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n  Duration: 00:00:02.00\n"
    video = ("  Stream #0:{k}[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), "
             "{w}x{h} [SAR 1:1 DAR 16:9], 62 kb/s, 30 fps, 30 tbr, 15360 tbn (default){extra}\n")
    assert _parse_size(head + video.format(k=0, w=3840, h=2160, extra="")) == (3840, 2160)
    turned = video.format(k=0, w=3840, h=2160, extra="") + "    Side data:\n      Display Matrix: rotation of -90.00 degrees\n"
    assert _parse_size(head + turned) == (2160, 3840)  # decord returns the frames turned upright
    cover = video.format(k=0, w=600, h=600, extra=" (attached pic)")
    assert _parse_size(head + cover + video.format(k=1, w=1920, h=1080, extra="")) == (1920, 1080)
    upside = video.format(k=0, w=640, h=360, extra="") + "      displaymatrix: rotation of 180.00 degrees\n"
    assert _parse_size(head + upside) == (640, 360)
    assert _parse_size(head + "  Stream #0:0: Audio: aac (LC), 44100 Hz, stereo\n") is None
    assert _parse_size("") is None


@pytest.fixture
def world_readable_dir():
    d = Path(tempfile.mkdtemp(prefix="c4c-perm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unreadable_file_as_another_user(world_readable_dir, zoo):
    """chmod 000 only stops a process without CAP_DAC_OVERRIDE: as root, the check runs as `nobody`,
    through the library and the CLI's entry point (which hashes the file for the feature cache first)."""
    p = build_corpus(world_readable_dir, ["unreadable"])["unreadable"]
    shutil.copytree(zoo, world_readable_dir / "zoo")
    (world_readable_dir / "zoo").chmod(0o755)
    for f in (world_readable_dir / "zoo").iterdir():
        f.chmod(0o644)  # safetensors writes 0600
    code = ("import sys, warnings\nwarnings.simplefilter('ignore')\n"
            "from c4c.video.frames import sample_frames\nfrom c4c.errors import VideoError\nfrom c4c.cli import main\n"
            "try:\n    sample_frames(sys.argv[1])\nexcept VideoError as e:\n    print('VideoError:', e)\n"
            "print('exit', main(['caption', sys.argv[1], '--zoo', sys.argv[2]]))\n")
    cmd = [sys.executable, "-c", code, str(p), str(world_readable_dir / "zoo")]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested here "
                        "(tests/test_frames.py covers the error path with a patched open())")
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(world_readable_dir)})
    if "Permission denied" in out.stderr and "VideoError" not in out.stdout:
        pytest.skip(f"user nobody cannot run this interpreter: {out.stderr.strip()[-200:]}")
    lines = out.stdout.splitlines()
    assert lines[0].startswith("VideoError:") and "permission denied" in lines[0], (out.stdout, out.stderr)
    assert lines[-1] == "exit 2" and "Traceback" not in out.stderr, out.stderr
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0] == f"error: {p}: permission denied; make the file readable", out.stderr


# ---- CLI ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", LOCAL, ids=_ids(LOCAL))
def test_cli_entry_point(entry, corpus, zoo, capfd):
    """`python -m c4c caption FILE` per entry, in-process (c4c.cli.main): exit 0 and a result, or exit 2
    and exactly one `error:` line on stderr."""
    path = corpus[entry.name]
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli_main(["caption", str(path), "--zoo", str(zoo), "--json", "--beam", "1", "--max-frames", "4"])
    out, err = capfd.readouterr()
    if entry.expect == "ok":
        assert rc == 0 and err == "", err
        r = json.loads(out)
        assert r["video"] == str(path) and len(r["captions"]) == 3
    else:
        assert rc == 2 and out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        # a folder argument means "every video in it" to the CLI: this one holds none
        fragment = "no video files in this folder" if entry.kind == "dir" else entry.message
        assert fragment.lower() in lines[0].lower(), lines[0]


def test_cli_process_over_the_whole_corpus(corpus, zoo):
    """One real `python -m c4c caption` over every file: a JSON line per captioned file, an error line
    per refused one, the run goes on after each bad file, no traceback."""
    entries = [e for e in LOCAL if e.kind != "dir"]
    p = subprocess.run([sys.executable, "-W", "ignore", "-m", "c4c", "caption", *(str(corpus[e.name]) for e in entries),
                        "--zoo", str(zoo), "--json", "--beam", "1", "--max-frames", "4"], cwd=REPO, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    captioned = [json.loads(line)["video"] for line in p.stdout.splitlines()]
    assert captioned == [str(corpus[e.name]) for e in entries if e.expect == "ok"]
    errors = p.stderr.splitlines()
    bad = [e for e in entries if e.expect == "error"]
    assert len(errors) == len(bad), p.stderr
    for e, line in zip(bad, errors):
        assert line.startswith(f"error: {corpus[e.name]}") and e.message.lower() in line.lower(), line


# ---- app ----------------------------------------------------------------------------------------

APP = [e for e in CORPUS if e.app]


@pytest.fixture(scope="module")
def app_client(running_app):
    from _app_harness import client
    return client(running_app.url)


@pytest.mark.parametrize("entry", APP, ids=_ids(APP))
def test_app(entry, corpus, running_app, app_client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    path = corpus[entry.name]
    if entry.expect == "ok":
        d = app_client.predict(handle_file(str(path)), beam=1, max_frames=4, api_name="/caption")
        assert d["video"] == path.name and len(d["captions"]) == len(running_app.decoders)
        assert all(c["caption"] for c in d["captions"])
    else:
        with pytest.raises(AppError) as e:
            app_client.predict(handle_file(str(path)), beam=1, max_frames=4, api_name="/caption")
        msg = str(e.value)
        assert entry.message.lower() in msg.lower() and path.name in msg, msg
        assert "/tmp" not in msg and "gradio" not in msg.lower(), msg  # no server paths
    # the server keeps serving
    assert app_client.predict(handle_file(str(running_app.videos["pattern"])), beam=1, max_frames=2,
                              api_name="/caption")["captions"]


def test_app_serves_no_file_outside_the_upload_area(corpus, running_app):
    """A request naming a server path (not an upload) is refused, and /file= serves nothing outside."""
    import httpx
    secret = corpus["hls_playlist"].parent.parent / "upload-outside" / "secret.ts"
    assert secret.is_file()
    def call(http, path: str) -> str:
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "cider", 1, 2, running_app.decoders, "none",
                            "consensus", ["cider"]]}
        r = http.post("gradio_api/call/caption", json=payload)
        assert r.status_code == 200, r.text
        return http.get(f"gradio_api/call/caption/{r.json()['event_id']}").text

    with httpx.Client(base_url=running_app.url, timeout=60) as http:
        with open(running_app.videos["pattern"], "rb") as f:  # the same request with an upload works
            uploaded = http.post("gradio_api/upload", files={"files": ("pattern.mp4", f, "video/mp4")}).json()[0]
        assert "event: complete" in call(http, uploaded) and "captions" in call(http, uploaded)
        stream = call(http, str(secret))
        assert "event: error" in stream and "captions" not in stream, stream[:500]
        for url in (f"gradio_api/file={secret}", "gradio_api/file=/etc/passwd", f"file={secret}"):
            assert http.get(url).status_code in (403, 404), url
