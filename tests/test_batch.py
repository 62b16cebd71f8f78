"""Batch captioning: input discovery, shards, the resumable output, the local engine against the
single-video pipeline, and a killed CLI run that resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from batch_helpers import GOOD, by_video, lines, make_videos, strip

from c4c.batch import (JsonlOutput, Recorder, VideoInput, caption_local, find_videos, in_shard, open_output,
                       parse_shard, plan)
from c4c.cli import main
from c4c.errors import InputError
from c4c.pipeline import CaptionSettings, Pipeline
from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo

SETTINGS = CaptionSettings(beam=2, max_frames=3)
CLI_SETTINGS = ["--beam", "2", "--max-frames", "3"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return make_random_zoo(tmp_path_factory.mktemp("zoo"), RandomZooSpec(n_decoders=3, max_words=6))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_videos(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def pipe(zoo):
    return Pipeline.from_zoo(zoo, device="cpu", cache_size=0)


def test_find_videos_folders_globs_lists(videos, tmp_path):
    found = [v.path for v in find_videos([str(videos)])]
    assert found == sorted(str(videos / n) for n in GOOD + ["corrupt.mp4"])  # no notes.md, no hidden file
    assert [v.name for v in find_videos([str(videos)])][-2:] == ["sub/c.mp4", "sub/d.mp4"]
    # a pattern and the folder overlap: each video once
    both = find_videos([str(videos / "sub" / "*.mp4"), str(videos)])
    assert len(both) == 5
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my corpus\n{videos / 'a.mp4'}\n\n{os.path.relpath(videos / 'sub/c.mp4', tmp_path)}\n")
    assert [os.path.abspath(v.path) for v in find_videos([str(lst)])] == [str(videos / "a.mp4"), str(videos / "sub/c.mp4")]
    assert [v.path for v in find_videos(["missing.mp4"])] == ["missing.mp4"]  # recorded as a failure later
    with pytest.raises(InputError, match="no files match"):
        find_videos([str(tmp_path / "nothing" / "*.mp4")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no video files"):
        find_videos([str(tmp_path / "empty")])


def test_shards_partition_the_corpus_and_stay_put_as_it_grows():
    corpus = [VideoInput(f"/data/v{k}.mp4", f"v{k}.mp4") for k in range(200)]
    shards = [[v for v in corpus if in_shard(v, i, 4)] for i in range(4)]
    assert sorted(v.name for s in shards for v in s) == sorted(v.name for v in corpus)
    assert all(20 < len(s) < 80 for s in shards)
    grown = corpus + [VideoInput(f"/data/new{k}.mp4", f"new{k}.mp4") for k in range(50)]
    assert [[v for v in grown if in_shard(v, i, 4) and v in corpus] for i in range(4)] == shards
    assert parse_shard("3/4") == (3, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)


def test_jsonl_output_cuts_a_torn_line_locks_and_retries_errors(tmp_path):
    out = tmp_path / "out.jsonl"
    good = [{"video": "a.mp4", "schema": "c4c.result/1"}, {"video": "b.mp4", "error": "broken", "error_type": "VideoError"}]
    out.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"video": "c.mp4", "capt')  # killed mid-write
    o = JsonlOutput(out)
    assert o.truncated > 0 and set(o.done.entries.values()) == {None, "broken"}
    with pytest.raises(InputError, match="another c4c run"):
        JsonlOutput(out)
    o.append(json.dumps({"video": "c.mp4"}), {"video": "c.mp4"})
    o.close()
    assert [r["video"] for r in lines(out)] == ["a.mp4", "b.mp4", "c.mp4"]
    o = JsonlOutput(out, retry_errors=True)  # the failed video's line goes, so its retry is its only line
    o.close()
    assert [r["video"] for r in lines(out)] == ["a.mp4", "c.mp4"]
    out.write_text('{"video": "a.mp4"}\nnot json\n{"video": "b.mp4"}\n')
    with pytest.raises(InputError, match=r"out.jsonl:2: not valid JSON"):
        JsonlOutput(out)


@pytest.fixture
def one_thread():
    # CPU kernels may sum in another order with another thread count (last-bit differences in the
    # embeddings and beam scores), so runs that must agree bit for bit use the same count.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_local_engine_with_decoding_workers_gives_the_pipelines_results(pipe, videos, tmp_path, one_thread):
    output = open_output(tmp_path / "w2.jsonl")
    todo, summary = plan(find_videos([str(videos)]), (0, 1), output)
    try:
        s2 = caption_local(pipe, todo, Recorder(output, summary, progress=False), SETTINGS, workers=2, threads=1)
    finally:
        output.close()
    assert (s2.captioned, s2.failed) == (4, 1) and not s2.complete
    r2 = lines(tmp_path / "w2.jsonl")
    assert [r["video"] for r in r2] == [v.path for v in find_videos([str(videos)])]  # input order kept
    bad = by_video(r2)[str(videos / "corrupt.mp4")]
    assert bad["error_type"] == "VideoError" and "corrupt.mp4" in bad["error"] and set(bad) == {"video", "error", "error_type"}
    for name in GOOD:  # exactly what `caption VIDEO` gives, the timings aside
        video = str(videos / name)
        assert by_video(r2)[video] == strip(pipe.caption(video, SETTINGS).to_dict())
    assert {"decode", "preprocess", "backbone", "captioning", "ensemble"} <= set(r2[0]["timings"])


def test_parquet_output_holds_the_same_results_and_resumes(pipe, videos, tmp_path, one_thread):
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow (comes with ray[data])")
    out = tmp_path / "captions.parquet"
    output = open_output(out, "parquet")
    todo, summary = plan(find_videos([str(videos / "sub"), str(videos / "corrupt.mp4")]), (0, 1), output)
    try:
        caption_local(pipe, todo, Recorder(output, summary, progress=False), SETTINGS, workers=0, threads=1)
    finally:
        output.close()
    rows = {r["video"]: r for r in pq.read_table(out).to_pylist()}
    assert set(rows) == {str(videos / n) for n in ("sub/c.mp4", "sub/d.mp4", "corrupt.mp4")}
    for video in (str(videos / "sub/c.mp4"), str(videos / "sub/d.mp4")):
        r = json.loads(rows[video]["result"])
        assert strip(r) == strip(pipe.caption(video, SETTINGS).to_dict())
        assert rows[video]["caption"] == r["caption"] and rows[video]["error"] is None
    assert rows[str(videos / "corrupt.mp4")]["error_type"] == "VideoError"
    output = open_output(out, "parquet")
    todo, summary = plan(find_videos([str(videos)]), (0, 1), output)
    output.close()
    assert [v.name for v in todo] == ["a.mp4", "b.mp4"] and summary.already_failed == 1


def test_cli_batch_arguments(zoo, videos, tmp_path, capsys):
    assert main(["caption", str(videos), "--zoo", str(zoo), "--workers", "1"]) == 2
    assert "only apply to batch runs" in capsys.readouterr().err
    assert main(["caption", str(videos), "--zoo", str(zoo), "--out", str(tmp_path / "o.jsonl"), "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()
    out = tmp_path / "shard.jsonl"
    rc = main(["caption", str(videos), "--zoo", str(zoo), "--out", str(out), "--shard", "0/3", "--workers", "0",
               "--no-progress", *CLI_SETTINGS])
    mine = [v.path for v in find_videos([str(videos)]) if in_shard(v, 0, 3)]
    assert sorted(r["video"] for r in lines(out)) == mine
    assert rc == (2 if str(videos / "corrupt.mp4") in mine else 0)
    assert "videos/min" in capsys.readouterr().out


def test_killed_run_resumes_without_losing_or_repeating_a_video(zoo, videos, tmp_path, capsys):
    out = tmp_path / "captions.jsonl"
    args = ["caption", str(videos), "--zoo", str(zoo), "--out", str(out), "--workers", "1", "--beam", "5"]
    proc = subprocess.Popen([sys.executable, "-m", "c4c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = lines(out)
    assert 1 <= len(first) < 5, "the run should have been killed part-way"
    with open(out, "ab") as f:  # the worst moment to be killed: half a line written
        f.write(b'{"video": "' + str(videos / "a.mp4").encode() + b'", "timestamps": [0.0, 1.')
    # The rerun (in this process: one Java METEOR start fewer) takes the file over at once: the
    # killed run's decoding worker must not keep its lock alive.
    assert main([*args, "--no-progress"]) == 2  # the corrupt video failed
    printed = capsys.readouterr().out
    assert "cut a torn last line" in printed and f"{len(first)} already in" in printed
    done = lines(out)  # every line parses
    assert sorted(r["video"] for r in done) == sorted(str(videos / n) for n in GOOD + ["corrupt.mp4"])
    assert done[:len(first)] == first
    assert main([*args, "--no-progress"]) == 2 and lines(out) == done  # nothing left to do
    assert "0 captioned, 0 failed" in capsys.readouterr().out
