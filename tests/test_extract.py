"""Feature files (reference pickle layout, npz), the extraction journal and the resumable, shardable
`extract` command, on real mp4s (written by ffmpeg) and a tiny random backbone."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from badfiles import ffmpeg

from c4c.batch import find_videos, in_shard
from c4c.errors import InputError
from c4c.features.files import load_features, save_features
from c4c.features.journal import Journal, errors_path, journal_path


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # loaded shared box: one thread is the fast choice
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    """A tiny random CLIP image tower (48-d embeddings) saved the way the zoo saves it."""
    from c4c.vision.backbone import VisionArch
    from c4c.zoo.random_zoo import _random_backbone
    arch = VisionArch(image_size=32, patch=8, width=64, layers=1, heads=1, mlp=128, embed_dim=48)
    path = tmp_path_factory.mktemp("bb") / "backbone.safetensors"
    _random_backbone(arch, torch.Generator().manual_seed(0)).save(path)
    return path


GOOD = [f"v{k:02d}" for k in range(16)]


def _mp4(path: Path, seconds: float, hue: int) -> None:
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10,hue=h={hue}", "-t", f"{seconds:g}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    """16 short real videos (different lengths and colours, so different features) and one broken file."""
    d = tmp_path_factory.mktemp("videos")
    for k, vid in enumerate(GOOD):
        _mp4(d / f"{vid}.mp4", 2 + k % 5, 23 * k)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return d


def _cli(backbone_file, out, *inputs, extra=()):
    return ["extract", "--backbone", str(backbone_file), "--out", str(out), *map(str, inputs), "--quiet",
            "--threads", "1", *extra]


@pytest.fixture(scope="module")
def reference(backbone_file, video_dir, tmp_path_factory):
    """Every good video's features from one uninterrupted run."""
    from c4c.cli import main
    out = tmp_path_factory.mktemp("ref") / "all.npz"
    assert main(_cli(backbone_file, out, video_dir / "v*.mp4")) == 0
    feats = load_features(out)
    assert sorted(feats) == GOOD
    return feats


FEATS = {"video0": np.arange(24, dtype=np.float32).reshape(3, 8), "video12": np.ones((5, 8), np.float32)}


@pytest.mark.parametrize("name", ["f.pickle", "f.pkl", "f.npz"])
def test_round_trip(tmp_path, name):
    save_features(tmp_path / name, FEATS)
    back = load_features(tmp_path / name)
    assert sorted(back) == sorted(FEATS)
    for k in FEATS:
        assert back[k].dtype == np.float32 and np.array_equal(back[k], FEATS[k])
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary files left behind


def test_pickle_is_the_reference_layout(tmp_path):
    save_features(tmp_path / "f.pickle", FEATS)
    with open(tmp_path / "f.pickle", "rb") as f:
        raw = pickle.load(f)  # what the reproduction's loader does
    assert type(raw) is dict and all(type(v) is np.ndarray for v in raw.values())
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):  # files written by other Python/numpy versions
        with open(tmp_path / "p.pickle", "wb") as f:
            pickle.dump({k: v.astype(np.float64) for k, v in FEATS.items()}, f, protocol=proto)
        assert np.array_equal(load_features(tmp_path / "p.pickle")["video0"], FEATS["video0"])


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    target = str(tmp_path / "pwned")
    with open(tmp_path / "evil.pickle", "wb") as f:
        pickle.dump({"video0": _Evil(target)}, f)
    with pytest.raises(InputError, match="not allowed"):
        load_features(tmp_path / "evil.pickle")
    assert not os.path.exists(target)


@pytest.mark.parametrize("bad", [{"v": np.zeros(4, np.float32)}, {"v": np.zeros((2, 3), np.int64)}, {1: np.zeros((2, 3))},
                                 [np.zeros((2, 3))]])
def test_wrong_content_is_refused(tmp_path, bad):
    with open(tmp_path / "bad.pickle", "wb") as f:
        pickle.dump(bad, f)
    with pytest.raises(InputError):
        load_features(tmp_path / "bad.pickle")


def test_truncated_and_unknown_files(tmp_path):
    save_features(tmp_path / "f.pickle", FEATS)
    data = (tmp_path / "f.pickle").read_bytes()
    (tmp_path / "t.pickle").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="unreadable"):
        load_features(tmp_path / "t.pickle")
    with pytest.raises(InputError, match="unknown features format"):
        save_features(tmp_path / "f.json", FEATS)


def _expected(backbone_file, frames):
    from c4c.vision.backbone import Backbone
    from c4c.video.preprocess import preprocess
    bb = Backbone.from_file(backbone_file)
    return bb.embed(preprocess(frames, bb.image_size)).numpy()


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == np.float32 and np.array_equal(a[k], b[k]), k


def test_reference_run_matches_the_pipeline_frames(backbone_file, video_dir, reference):
    from c4c.video.frames import sample_frames
    frames = sample_frames(video_dir / "v03.mp4", max_frames=20).images
    assert reference["v03"].shape == (len(frames), 48)
    assert np.allclose(reference["v03"], _expected(backbone_file, frames), atol=1e-5)
    assert not np.allclose(reference["v03"][0], reference["v04"][0])  # the videos do differ


@pytest.mark.parametrize("name", ["feats.pickle", "feats.npz"])
def test_folder_records_the_broken_video_and_resumes(tmp_path, backbone_file, video_dir, reference, name, capsys):
    from c4c.cli import main
    out = tmp_path / name
    args = _cli(backbone_file, out, video_dir)
    assert main(args) == 2  # one video failed: the batch captioner's code for an incomplete run
    captured = capsys.readouterr()
    assert "failed broken:" in captured.err and "cannot be decoded" in captured.err
    assert captured.out.strip().splitlines()[-1] == (
        f"done: 16 extracted, 0 skipped (already there), 1 failed -> {out}; reasons in {errors_path(out)}")
    _same(load_features(out), reference)
    errors = json.loads(errors_path(out).read_text())
    assert list(errors) == ["broken"] and "cannot be decoded" in errors["broken"] and "\n" not in errors["broken"]
    assert not journal_path(out).exists()  # merged and removed

    before = out.stat().st_mtime_ns, errors_path(out).stat().st_mtime_ns
    assert main(args) == 2  # the recorded failure is not retried, and still counts
    assert "0 extracted, 16 skipped (already there), 1 failed (1 in an earlier run; --retry-errors retries them)" \
        in capsys.readouterr().out
    assert (out.stat().st_mtime_ns, errors_path(out).stat().st_mtime_ns) == before  # nothing to do: untouched

    feats = load_features(out)
    del feats["v07"], feats["v11"]
    save_features(out, feats)  # as if interrupted before the last two videos; a glob without the broken file
    assert main(_cli(backbone_file, out, video_dir / "v*.mp4")) == 0
    assert "2 extracted, 14 skipped" in capsys.readouterr().out
    _same(load_features(out), reference)
    assert list(json.loads(errors_path(out).read_text())) == ["broken"]  # other ids' failures are kept


def test_retry_errors_retries_only_when_asked(tmp_path, backbone_file, video_dir, reference, capsys):
    from c4c.cli import main
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(video_dir / "v00.mp4", d / "v00.mp4")
    (d / "v05.mp4").write_bytes((video_dir / "v05.mp4").read_bytes()[:300])  # a truncated download
    (d / "list.txt").write_text("v00.mp4\nv05.mp4\n")
    out = tmp_path / "f.pickle"
    args = _cli(backbone_file, out, d / "list.txt")  # a list file, as `caption` takes
    assert main(args) == 2
    assert list(json.loads(errors_path(out).read_text())) == ["v05"]
    shutil.copy(video_dir / "v05.mp4", d / "v05.mp4")  # the complete file arrives
    assert main(args) == 2 and "(1 in an earlier run; --retry-errors" in capsys.readouterr().out
    assert sorted(load_features(out)) == ["v00"]
    assert main(args + ["--retry-errors"]) == 0
    assert "1 extracted, 1 skipped (already there), 0 failed" in capsys.readouterr().out
    _same(load_features(out), {k: reference[k] for k in ("v00", "v05")})
    assert not errors_path(out).exists()  # no failures left: no errors file


def _records(journal: Path) -> list[int]:
    """End offsets of the whole records in a journal (the first is the meta record)."""
    data, ends, off = journal.read_bytes() if journal.exists() else b"", [], 0
    while off + 16 <= len(data):
        _, nh, npay = struct.unpack_from("<4sIQ", data, off)
        if off + 16 + nh + npay + 4 > len(data):
            break
        off += 16 + nh + npay + 4
        ends.append(off)
    return ends


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_features(tmp_path, backbone_file, video_dir, reference,
                                                                      capsys):
    from c4c.cli import main
    out = tmp_path / "feats.pickle"
    args = _cli(backbone_file, out, video_dir / "v*.mp4")
    proc = subprocess.Popen([sys.executable, "-m", "c4c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(_records(journal_path(out))) < 3:  # meta + two videos journaled
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run should have been killed part-way"
    ends = _records(journal_path(out))
    assert 3 <= len(ends) < 1 + len(GOOD)
    data = journal_path(out).read_bytes()[:ends[-1]]
    with open(journal_path(out), "ab") as f:  # the worst moment to be killed: half a record written
        f.write(data[ends[-2]:ends[-2] + (ends[-1] - ends[-2]) // 2])

    assert main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"{len(GOOD) - len(ends) + 1} extracted, {len(ends) - 1} skipped (already there), 0 failed" in line
    assert "cut a torn" in line
    _same(load_features(out), reference)
    assert not journal_path(out).exists() and not errors_path(out).exists()


def test_journal_tolerates_a_torn_record_at_any_byte(tmp_path):
    out = tmp_path / "f.npz"
    meta = {"backbone": "abc", "dim": 8}
    j = Journal(out, meta)
    j.add("a", FEATS["video0"])
    j.fail("b", "cannot be decoded")
    j.add("c", FEATS["video12"])
    j.close()
    whole = journal_path(out).read_bytes()
    start = _records(journal_path(out))[-2]  # where the last record ("c") begins
    for cut in range(start, len(whole)):
        journal_path(out).write_bytes(whole[:cut])
        j = Journal(out, meta)
        assert list(j.features) == ["a"] and j.errors == {"b": "cannot be decoded"}
        assert j.truncated == cut - start and len(journal_path(out).read_bytes()) == start
        j.close()
    journal_path(out).write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))  # a flipped bit: the CRC catches it
    j = Journal(out, meta)
    assert list(j.features) == ["a"]
    j.add("c", FEATS["video12"])  # appending after the cut works
    j.close()
    j = Journal(out, meta)
    back = dict(j.arrays())
    assert list(back) == ["a", "c"]
    assert np.array_equal(back["a"], FEATS["video0"]) and np.array_equal(back["c"], FEATS["video12"])
    with pytest.raises(InputError, match="another c4c extract run"):
        Journal(out, meta)  # still open (locked) above
    j.close()
    with pytest.raises(InputError, match="another backbone"):
        Journal(out, {"backbone": "xyz", "dim": 8})  # an unfinished run of another backbone: never mixed
    (tmp_path / "g.npz.partial").write_text("my notes")
    with pytest.raises(InputError, match="not a c4c extract journal"):
        Journal(tmp_path / "g.npz", meta)


def test_shards_are_disjoint_and_cover_everything(tmp_path, backbone_file, video_dir, reference):
    from c4c.cli import main
    parts = []
    for i, name in enumerate(["s0.pickle", "s1.npz"]):  # both formats read back the same
        out = tmp_path / name
        assert main(_cli(backbone_file, out, video_dir / "v*.mp4", extra=["--shard", f"{i}/2"])) == 0
        parts.append(load_features(out))
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    _same({**parts[0], **parts[1]}, reference)
    videos = find_videos([str(video_dir / "v*.mp4")])  # the batch captioner's selection and shard rule
    assert sorted(parts[1]) == [Path(v.path).stem for v in videos if in_shard(v, 1, 2)]


def test_bad_arguments_exit_2(tmp_path, backbone_file, video_dir, capsys):
    from c4c.cli import main
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(video_dir / "v00.mp4", other / "v00.mp4")
    out = tmp_path / "f.npz"
    assert main(_cli(backbone_file, out, video_dir, other)) == 2
    assert "two videos share the id 'v00'" in capsys.readouterr().err
    assert main(_cli(backbone_file, out, video_dir, extra=["--shard", "2/2"])) == 2
    assert main(_cli(backbone_file, tmp_path / "f.json", video_dir)) == 2
    assert not out.exists() and not journal_path(out).exists()


def test_extract_synth_split_matches_the_rendered_frames(tmp_path, backbone_file):
    from c4c.cli import main
    from c4c.synth import render_seconds
    out = tmp_path / "val.npz"
    assert main(["extract", "--backbone", str(backbone_file), "--out", str(out), "--synth", "val", "--n", "3",
                 "--quiet"]) == 0
    feats = load_features(out)
    assert sorted(feats) == ["val_00000", "val_00001", "val_00002"]
    assert np.allclose(feats["val_00002"], _expected(backbone_file, render_seconds("val_00002")), atol=1e-5)


def test_extract_refuses_to_mix_backbones(tmp_path, backbone_file):
    from c4c.cli import main
    out = tmp_path / "f.pickle"
    save_features(out, {"x": np.zeros((2, 7), np.float32)})
    assert main(["extract", "--backbone", str(backbone_file), "--out", str(out), "--synth", "val", "--n", "1",
                 "--quiet"]) == 2
    assert not journal_path(out).exists()  # nothing was journaled: no file left behind


def test_ctrl_c_keeps_the_journal_and_the_function_api_resumes(tmp_path, backbone_file):
    """The function build-zoo calls: Ctrl-C (here raised by the second loader) stops without merging,
    the finished video stays in the journal, and the next call finishes the job."""
    from c4c.vision.backbone import Backbone
    from c4c.features.extract import Interrupted, extract
    from c4c.synth import render_seconds
    bb, out = Backbone.from_file(backbone_file), tmp_path / "f.npz"

    def ctrl_c():
        raise KeyboardInterrupt

    items = [("val_00000", lambda: render_seconds("val_00000")), ("val_00001", ctrl_c)]
    with pytest.raises(Interrupted) as e:
        extract(bb, items, out, save_every=500, progress=False)
    assert e.value.report.done == ["val_00000"] and e.value.report.interrupted
    assert not out.exists() and len(_records(journal_path(out))) == 2
    items[1] = ("val_00001", lambda: render_seconds("val_00001"))
    report = extract(bb, items, out, save_every=500, progress=False)
    assert report.skipped == ["val_00000"] and report.done == ["val_00001"] and not report.failed
    assert sorted(load_features(out)) == ["val_00000", "val_00001"] and not journal_path(out).exists()
