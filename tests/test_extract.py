"""Feature files (reference pickle layout, npz) and the resumable `extract` command."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from c4c.errors import InputError
from c4c.features_io import load_features, save_features


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # loaded shared box: one thread is the fast choice
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    """A tiny random CLIP image tower saved the way the zoo saves it."""
    from c4c.backbone import Backbone
    from c4c.train.clip_model import CLIP, ClipConfig
    torch.manual_seed(0)
    model = CLIP(ClipConfig(image_size=32, patch=8, width=64, layers=1, embed_dim=48, text_width=64, text_layers=1))
    path = tmp_path_factory.mktemp("bb") / "backbone.safetensors"
    Backbone.from_state_dict(model.vision_state_dict(), provenance="test: random init").save(path)
    return path


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    from c4c.synth import write_examples
    d = tmp_path_factory.mktemp("videos")
    write_examples(["val_00000", "val_00001", "val_00002"], d, n_captions=2)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return d


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
    from c4c.backbone import Backbone
    from c4c.preprocess import preprocess
    bb = Backbone.from_file(backbone_file)
    return bb.embed(preprocess(frames, bb.image_size)).numpy()


def test_extract_folder_resumes_and_skips_broken_files(tmp_path, backbone_file, video_dir, capsys):
    from c4c.cli import main
    from c4c.frames import sample_frames
    out = tmp_path / "feats.pickle"
    args = ["extract", "--backbone", str(backbone_file), "--out", str(out), str(video_dir), "--quiet"]
    assert main(args) == 1  # one video failed
    assert "broken" in capsys.readouterr().err
    feats = load_features(out)
    assert sorted(feats) == ["val_00000", "val_00001", "val_00002"]
    frames = sample_frames(video_dir / "val_00001.mp4", max_frames=20)
    assert feats["val_00001"].shape == (len(frames.images), 48)
    assert np.allclose(feats["val_00001"], _expected(backbone_file, frames.images), atol=1e-5)

    before = out.stat().st_mtime_ns
    assert main(args) == 1
    assert "0 extracted, 3 already there, 1 failed" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == before  # nothing to do: file untouched

    del feats["val_00002"]
    save_features(out, feats)  # as if interrupted before the last video
    assert main(args[:-2] + [str(video_dir / "val_0000[0-2].mp4"), "--quiet"]) == 0  # a glob, no broken file
    assert "1 extracted, 2 already there" in capsys.readouterr().out
    assert sorted(load_features(out)) == ["val_00000", "val_00001", "val_00002"]


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
