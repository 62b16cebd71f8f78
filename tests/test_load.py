"""The running app under load: memory stays flat over 50 sequential requests, and a slow request
holds one of the queue's worker slots, not the server. (Eight concurrent calls returning exactly the
sequential results is tests/test_app_api.py::test_concurrent_requests_match_sequential_ones.)"""

from __future__ import annotations

import gc
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from _app_harness import client, running_app  # noqa: E402,F401  (session fixture: the app, launched once)

SLOW_S = 8.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Ten small distinct clips, so requests miss the feature cache as well as hit it."""
    import imageio_ffmpeg
    folder = tmp_path_factory.mktemp("load")
    out = []
    for k in range(10):
        src = ["testsrc", "testsrc2", "smptebars", "rgbtestsrc", "mandelbrot"][k % 5]
        p = folder / f"clip{k}.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"{src}=size={96 + 16 * k}x{64 + 8 * k}:rate=5", "-t", str(2 + k % 4), "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-preset", "ultrafast", str(p)], check=True, timeout=60)
        out.append(p)
    return out


def test_memory_is_flat_over_50_sequential_requests(running_app, videos):
    c = client(running_app.url)
    metrics = ["cider", "bleu4", "meteor", "rouge"]

    def request(k: int) -> dict:
        return c.predict(handle_file(str(videos[k % len(videos)])), metric=metrics[k % 4], beam=1 + k % 3,
                         max_frames=2 + k % 5, api_name="/caption")

    for k in range(10):  # warm-up: caches fill, lazy imports and allocator pools settle
        request(k)
    gc.collect()
    start = rss_mb()
    samples = []
    for k in range(10, 60):
        assert request(k)["captions"]
        if k % 10 == 9:
            gc.collect()
            samples.append(round(rss_mb() - start, 1))
    print(f"RSS {start:.0f} MB after warm-up; growth every 10 requests: {samples} MB")
    assert max(samples) < 150, samples


@pytest.fixture
def slow_uploads(monkeypatch, tmp_path):
    """Two fresh clips (never in the feature cache) whose requests take SLOW_S longer while decoding:
    sample_frames is wrapped for files named slow*.mp4 (the app runs in this process)."""
    import secrets

    import imageio_ffmpeg

    import c4c.video.frames
    original = c4c.video.frames.sample_frames
    slept = []

    def sample_frames(path, *args, **kwargs):
        if Path(path).name.startswith("slow"):
            slept.append(Path(path).name)
            time.sleep(SLOW_S)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(c4c.video.frames, "sample_frames", sample_frames)
    paths = []
    for k in range(2):
        p = tmp_path / f"slow{k}.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"color=c=0x{secrets.token_hex(3)}:size=64x48:rate=5", "-t", "2", "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-preset", "ultrafast", str(p)], check=True, timeout=60)
        paths.append(p)
    yield paths
    assert len(slept) >= 1, "no request went through the slow path: the test proved nothing"


def _fast(c, running_app) -> float:
    t = time.perf_counter()
    assert c.predict(handle_file(str(running_app.videos["bars"])), beam=1, max_frames=2,
                     api_name="/caption")["captions"]
    return time.perf_counter() - t


def test_a_slow_request_holds_one_slot_not_the_server(running_app, slow_uploads):
    slow = client(running_app.url).submit(handle_file(str(slow_uploads[0])), beam=1, max_frames=2, api_name="/caption")
    time.sleep(1.0)  # the slow one is now decoding in one of the 2 worker slots
    c = client(running_app.url)
    t0 = time.perf_counter()
    latencies = [_fast(c, running_app) for _ in range(3)]
    assert not slow.done() or time.perf_counter() - t0 < SLOW_S, "fast requests should not wait for the slow one"
    assert sum(latencies) < SLOW_S, latencies
    assert slow.result(timeout=120)["captions"]
    print(f"fast requests beside a {SLOW_S:g}-s one: {[round(x, 2) for x in latencies]} s")


def test_beyond_the_concurrency_limit_requests_queue_and_then_run(running_app, slow_uploads):
    """With both slots (C4C_CONCURRENCY=2 here) busy, the next request waits in the queue, then succeeds."""
    jobs = [client(running_app.url).submit(handle_file(str(p)), beam=1, max_frames=2, api_name="/caption")
            for p in slow_uploads]
    time.sleep(1.0)
    waited = _fast(client(running_app.url), running_app)
    assert waited > SLOW_S - 2.0, f"a third request ran at once ({waited:.1f} s): the limit is not applied"
    assert all(j.result(timeout=120)["captions"] for j in jobs)
    print(f"queued behind two {SLOW_S:g}-s requests: done after {waited:.1f} s")
