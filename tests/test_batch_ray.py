"""The Ray Data engine on a local 2-CPU Ray: the same lines as the local engine for the same videos."""

import logging

import pytest
from batch_helpers import GOOD, by_video, lines, make_videos

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")

import c4c  # noqa: E402
from c4c.batch import Recorder, caption_local, find_videos, open_output, plan  # noqa: E402
from c4c.batch.ray_engine import caption_ray  # noqa: E402
from c4c.pipeline import CaptionSettings, Pipeline  # noqa: E402
from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo  # noqa: E402

SETTINGS = CaptionSettings(beam=2, max_frames=3)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, runtime_env={"py_modules": [c4c]})
    yield
    ray.shutdown()


def _run(engine, zoo, videos, out, settings=SETTINGS):
    output = open_output(out)
    todo, summary = plan(find_videos([str(videos)]), (0, 1), output)
    recorder = Recorder(output, summary, progress=False)
    try:
        if engine == "ray":
            return caption_ray(zoo, todo, recorder, settings, device="cpu")
        # one torch thread, as in the Ray actor: CPU kernels may sum in another order with more
        return caption_local(Pipeline.from_zoo(zoo, device="cpu", cache_size=0), todo, recorder, settings,
                             workers=0, threads=1)
    finally:
        output.close()


def test_ray_engine_writes_the_local_engines_lines(local_ray, tmp_path):
    zoo = make_random_zoo(tmp_path / "zoo", RandomZooSpec(n_decoders=3, max_words=6))
    videos = make_videos(tmp_path / "videos")
    s = _run("ray", zoo, videos, tmp_path / "ray.jsonl")
    assert (s.captioned, s.failed, s.interrupted) == (4, 1, False)
    _run("local", zoo, videos, tmp_path / "local.jsonl")
    on_ray, local = by_video(lines(tmp_path / "ray.jsonl")), by_video(lines(tmp_path / "local.jsonl"))
    assert set(on_ray) == {str(videos / n) for n in GOOD + ["corrupt.mp4"]}
    assert on_ray == local  # captions, token ids, beam scores, every metric, winner, settings, zoo
    assert on_ray[str(videos / "corrupt.mp4")]["error_type"] == "VideoError"
    s = _run("ray", zoo, videos, tmp_path / "ray.jsonl")  # resumed: nothing left
    assert s.todo == 0 and s.already_done == 4 and s.already_failed == 1


def test_ray_engine_with_segments_writes_the_local_engines_segments(local_ray, tmp_path):
    """--segments on Ray: the decode task passes the path on and the model actor decodes every second
    itself (c4c/batch/work.py); the lines must carry the segments the local engine writes."""
    from c4c.synth.cuts import write_clips
    zoo = make_random_zoo(tmp_path / "zoo", RandomZooSpec(n_decoders=3, max_words=6))
    videos = tmp_path / "videos"
    truth = write_clips(videos / "cuts.mp4", [3.0, 3.0, 3.0], seed="ray")
    make_videos(videos / "plain")  # 4 short clips without cuts, and a corrupt file
    settings = CaptionSettings(beam=2, max_frames=3, segments="auto")
    s = _run("ray", zoo, videos, tmp_path / "ray.jsonl", settings)
    assert (s.captioned, s.failed) == (5, 1)
    _run("local", zoo, videos, tmp_path / "local.jsonl", settings)
    on_ray, local = by_video(lines(tmp_path / "ray.jsonl")), by_video(lines(tmp_path / "local.jsonl"))
    assert on_ray == local
    cuts = on_ray[str(videos / "cuts.mp4")]
    assert [s["start_s"] for s in cuts["segments"]] == [0.0] + [t - 0.5 for t in truth]  # between two samples
    assert cuts["segmentation"]["mode"] == "auto" and cuts["settings"]["segments"] == "auto"
    assert all(len(r["segments"]) == 1 for v, r in on_ray.items() if "/plain/" in v and "error" not in r)
