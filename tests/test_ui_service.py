"""The app's request logic without a server: controls -> settings, upload caps, JSON downloads, the
examples cache key, and where C4C_ZOO points (folder, Hub id, offline message)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from c4c.errors import InputError, VideoError, ZooError
from c4c.ui import hub
from c4c.ui.service import AppConfig, CaptionService, ResultFiles, examples_cache, examples_cache_dir
from test_ui_figures import result


def service(n_decoders: int = 4, max_frames: int = 20, **config) -> CaptionService:
    names = [f"d{k}" for k in range(n_decoders)]
    zoo = SimpleNamespace(names=names, decoders={n: SimpleNamespace(cfg=SimpleNamespace(max_frames=max_frames))
                                                 for n in names})
    return CaptionService(SimpleNamespace(zoo=zoo), AppConfig(**config))


def test_settings_from_controls():
    s = service().settings("bleu4", 3.0, 7.0, ["d2", "d0", "d1", "d2"])
    assert (s.metric, s.beam, s.max_frames, s.decoders) == ("bleu4", 3, 7, ("d0", "d1", "d2"))
    assert s.max_duration_s == AppConfig().max_duration_s
    assert service().settings("cider", 5, 20, ["d0", "d1", "d2", "d3"]).decoders is None  # all = the default


@pytest.mark.parametrize("args, message", [
    (("spice", 5, 20, ["d0", "d1", "d2"]), "unknown metric"),
    (("cider", 2.5, 20, ["d0", "d1", "d2"]), "whole number"),
    (("cider", 5, 21, ["d0", "d1", "d2"]), "between 1 and 20"),
    (("cider", 5, 20, ["d0", "d1"]), "at least 3 decoders"),
    (("cider", 5, 20, ["d0", "d1", "dX"]), "unknown decoder"),
])
def test_bad_controls_are_input_errors(args, message):
    with pytest.raises(InputError, match=message):
        service().settings(*args)


def test_frame_cap_and_vote_size_follow_the_zoo():
    assert service(max_frames=12).max_frames_cap == 12
    assert service(n_decoders=2).min_decoders == 2  # a 2-decoder zoo can still vote with both


def test_upload_checks(tmp_path):
    svc = service(max_upload_mb=1)
    with pytest.raises(InputError, match="no video given"):
        svc.check_video(None)
    with pytest.raises(VideoError, match="did not arrive"):
        svc.check_video(tmp_path / "gone.mp4")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2**20 + 1))
    with pytest.raises(VideoError, match="over the limit of 1 MB"):
        svc.check_video(big)


def test_config_from_env():
    c = AppConfig.from_env({"C4C_MAX_UPLOAD_MB": "5", "C4C_MAX_DURATION_S": "12.5", "C4C_CONCURRENCY": "3"})
    assert (c.max_upload_mb, c.max_duration_s, c.concurrency) == (5.0, 12.5, 3)
    assert AppConfig.from_env({}) == AppConfig()
    with pytest.raises(InputError, match="C4C_MAX_UPLOAD_MB"):
        AppConfig.from_env({"C4C_MAX_UPLOAD_MB": "lots"})


def test_result_files_are_per_request_and_expire(tmp_path):
    files = ResultFiles(ttl_s=60, root=tmp_path)
    a, b = files.write(result()), files.write(result())
    assert a != b and a.name == "clip.c4c.json" and a.read_text().startswith("{")
    old = time.time() - 120
    os.utime(a.parent, (old, old))
    assert files.cleanup() == 1 and not a.exists() and b.exists()


def test_examples_cache_key_changes_with_the_zoo(tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "manifest.json").write_text("{}")
    ex = tmp_path / "a.mp4"
    ex.write_bytes(b"x")
    z = SimpleNamespace(folder=zoo)
    first = examples_cache_dir(z, [ex], base=tmp_path / "cache")
    assert first == examples_cache_dir(z, [ex], base=tmp_path / "cache")
    (zoo / "d1.safetensors").write_bytes(b"new weights")
    assert examples_cache_dir(z, [ex], base=tmp_path / "cache") != first
    before = os.environ.get("GRADIO_EXAMPLES_CACHE")
    with examples_cache(first):
        assert os.environ["GRADIO_EXAMPLES_CACHE"] == str(first)
    assert os.environ.get("GRADIO_EXAMPLES_CACHE") == before


def test_zoo_spec_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(hub.ENV_VAR, raising=False)
    assert hub.resolve_zoo() == hub.default_zoo_dir()
    assert hub.resolve_zoo(str(tmp_path)) == tmp_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    assert hub.resolve_zoo("weights/mine") == Path("weights/mine")  # a local path, even if missing
    assert hub.looks_like_repo_id("someone/c4c-zoo@v1")
    assert not hub.looks_like_repo_id("./a/b") and not hub.looks_like_repo_id("/a/b")


def test_hub_repo_offline_gives_one_clear_line(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv(hub.ENV_VAR, "nobody/no-such-c4c-zoo")
    with pytest.raises(ZooError) as e:
        hub.resolve_zoo()
    msg = str(e.value)
    assert "\n" not in msg and "cannot be reached" in msg and "nobody/no-such-c4c-zoo" in msg
