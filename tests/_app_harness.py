"""The running app that test_app_api.py and test_app_browser.py share (one launch per test session).

A tiny random-weights zoo (c4c.zoo.random_zoo) stands in for weights/demo so the tests do not depend on
training; every file still goes through the real loaders, so the app runs the real code paths.
Videos are generated with the ffmpeg that imageio-ffmpeg ships."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # else gradio_client looks up the Hub

DECODERS = 4
REPO = Path(__file__).resolve().parents[1]
# Another zoo (e.g. weights/demo, for the README screenshot): its page then offers the repo's examples/.
TEST_ZOO = os.environ.get("C4C_TEST_ZOO")
MAX_UPLOAD_MB = 1.0
MAX_DURATION_S = 8.0


@dataclass
class RunningApp:
    url: str
    videos: dict[str, Path]   # name -> file: "bars" (6 s), "pattern" (4 s), "long" (10 s), "empty", "text"
    zoo: Path
    demo: object
    decoders: list[str]
    examples: list[Path]      # what the page offers, in order
    explore_dir: Path | None = None  # the Explore page's allowed folder (empty at start)


def make_video(path: Path, seconds: float, source: str = "testsrc", size: str = "160x120", rate: int = 10) -> Path:
    """An h264 mp4 of one of ffmpeg's built-in test patterns."""
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"{source}=size={size}:rate={rate}", "-t", str(seconds), "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", str(path)], check=True, timeout=120)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def running_app(tmp_path_factory) -> RunningApp:
    import app
    from c4c.pipeline import Pipeline
    from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo
    from c4c.ui.service import AppConfig, warm_up

    root = tmp_path_factory.mktemp("app")
    # sep_bias < 0: random decoders then write full-length, different captions, so the vote is not a tie.
    zoo = Path(TEST_ZOO) if TEST_ZOO else make_random_zoo(
        root / "zoo", RandomZooSpec(n_decoders=DECODERS, sep_bias=-2.0, max_words=6))
    vids = root / "videos"
    vids.mkdir()
    videos = {"bars": make_video(vids / "bars.mp4", 6), "pattern": make_video(vids / "pattern.mp4", 4, "testsrc2"),
              "long": make_video(vids / "long.mp4", MAX_DURATION_S + 2, "smptebars", "64x48", 5)}
    (vids / "empty.mp4").write_bytes(b"")
    (vids / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    videos.update(empty=vids / "empty.mp4", text=vids / "text.mp4")

    os.environ["GRADIO_EXAMPLES_CACHE"] = str(root / "examples-cache")  # never the repo's .gradio/
    pipeline = Pipeline.from_zoo(zoo, device="cpu")
    warm_up(pipeline)
    config = AppConfig(max_upload_mb=MAX_UPLOAD_MB, max_duration_s=MAX_DURATION_S, concurrency=2)
    examples = [videos["bars"], videos["pattern"]]
    if TEST_ZOO and app.example_videos():
        examples = app.example_videos()  # the page as `python app.py` shows it
    explore_dir = root / "explore"
    explore_dir.mkdir()
    demo = app.build_demo(pipeline, config, examples=examples, explore_dir=explore_dir)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_kwargs(config))
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", videos, zoo, demo, list(pipeline.zoo.names), examples,
                         explore_dir)
    finally:
        demo.close()


def client(url: str):
    from gradio_client import Client
    return Client(url, verbose=False, download_files=False)
