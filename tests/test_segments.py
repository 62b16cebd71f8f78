"""Segmented captioning (issue 15): settings, span planning, the embedding rule, subtitles, the result's
schema, and whole runs over generated videos with known cuts (a small random zoo)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from c4c.errors import InputError
from c4c.result import CaptionResult
from c4c.settings import CaptionSettings, parse_segments
from c4c.subtitles import to_srt, to_vtt
from c4c.video.scenes import embedding_cuts, every_cuts, plan_segments


def test_parse_segments_and_settings_checks():
    assert parse_segments("none") == ("none", None) and parse_segments("AUTO") == ("auto", None)
    assert parse_segments("every:2.5") == ("every", 2.5)
    for bad in ("every:0", "every:x", "every:", "every:inf", "scenes", ""):
        with pytest.raises(InputError, match="segments"):
            CaptionSettings(segments=bad).check([])
    with pytest.raises(InputError, match="min_segment_s"):
        CaptionSettings(segments="auto", min_segment_s=10, max_segment_s=5).check([])
    with pytest.raises(InputError, match="max_segment_s"):
        CaptionSettings(max_segment_s=0).check([])
    CaptionSettings(segments="every:30").check([])


def test_plan_segments_keeps_the_stronger_of_close_cuts_and_splits_long_spans():
    cuts = [(5.0, 2.0), (6.0, 9.0), (0.5, 50.0), (19.5, 50.0), (12.0, 3.0)]
    # 0.5 and 19.5 are within 2 s of the ends; 5.0 is within 2 s of the stronger 6.0
    assert plan_segments(cuts, 20.0, 2, None) == [(0.0, 6.0), (6.0, 12.0), (12.0, 20.0)]
    assert plan_segments(cuts, 20.0, 2, 4) == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.0), (12.0, 16.0),
                                               (16.0, 20.0)]
    # every second a cut: the minimum length caps how many survive
    spans = plan_segments([(t + 0.5, 1.0) for t in range(30)], 31.0, 3, None)
    assert all(b - a >= 3 for a, b in spans) and spans[0][0] == 0 and spans[-1][1] == 31.0
    assert plan_segments([], 0.6, 2, 60) == [(0.0, 0.6)]                      # a sub-second video: one span
    assert plan_segments([(1.0, math.inf)], 1.5, 2, None) == [(0.0, 1.0), (1.0, 1.5)]  # forced cuts stay
    assert every_cuts(10.0, 3) == [(3, math.inf), (6, math.inf), (9, math.inf)]
    assert every_cuts(9.0, 3) == [(3, math.inf), (6, math.inf)]


def test_embedding_rule_finds_a_jump_and_ignores_slow_drift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=64), rng.normal(size=64)
    drift = rng.normal(size=(20, 64)) * 0.01
    feats = np.stack([a + 0.02 * t * b if t < 12 else b + 0.02 * t * a for t in range(20)]) + drift
    cuts = embedding_cuts(feats, [float(t) for t in range(20)])
    assert [c for c, _ in cuts] == [11.5]
    assert embedding_cuts(np.tile(a, (10, 1)), [float(t) for t in range(10)]) == []  # a still video


def _result_dict(segments):
    from c4c.result import ModelCaption, Segment
    cap = lambda text: ModelCaption(name="d1", caption=text, token_ids=[1], beam_score=-1.0,
                                    loo={"cider": 0.5}, rank=1)
    segs = None if segments is None else [
        Segment(start_s=a, end_s=b, timestamps=[a], frame_indices=[int(a * 25)], captions=[cap(text)], winner=0,
                tie_break="first", pairwise={"cider": [[None]]}) for a, b, text in segments]
    return CaptionResult(video="v.mp4", timestamps=[0.0], frame_indices=[0], captions=[cap("the whole video")],
                         winner=0, metric="cider", tie_break="first", pairwise={"cider": [[None]]}, idf="x",
                         timings={}, settings={}, zoo={}, video_info={"duration_s": 7.5}, segments=segs)


def test_result_schema_2_round_trips_and_schema_1_still_loads():
    r = _result_dict([(0.0, 3.5, "a red circle"), (3.5, 7.5, "a blue square\n\nmoves --> left")])
    d = json.loads(r.to_json())
    assert d["schema"] == "c4c.result/3" and d["segments"][1]["caption"].startswith("a blue square")
    assert CaptionResult.from_json(r.to_json()) == r
    old = json.loads(_result_dict(None).to_json())
    old["schema"] = "c4c.result/1"
    del old["segments"], old["segmentation"]
    loaded = CaptionResult.from_dict(old)
    assert loaded.segments is None and loaded.caption == "the whole video"
    with pytest.raises(ValueError, match="schema"):
        CaptionResult.from_dict({**old, "schema": "c4c.result/9"})


def test_subtitles_one_cue_per_segment():
    r = _result_dict([(0.0, 3.5, "a red circle"), (3.5, 3725.25, "a <b> square\n\nmoves --> left")])
    assert to_srt(r) == ("1\n00:00:00,000 --> 00:00:03,500\na red circle\n\n"
                         "2\n00:00:03,500 --> 01:02:05,250\na <b> square moves -> left\n\n")
    assert to_vtt(r) == ("WEBVTT\n\n00:00:00.000 --> 00:00:03.500\na red circle\n\n"
                         "00:00:03.500 --> 01:02:05.250\na &lt;b> square moves -> left\n")
    assert to_srt(_result_dict(None)).startswith("1\n00:00:00,000 --> 00:00:07,500\nthe whole video")


# ---- whole runs: a small random zoo on generated videos --------------------------------------------------------

@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from c4c.pipeline import Pipeline
    from c4c.zoo.random_zoo import make_random_zoo
    return Pipeline.from_zoo(make_random_zoo(tmp_path_factory.mktemp("zoo")), device="cpu")


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    from c4c.synth.cuts import write_cut_video
    path = tmp_path_factory.mktemp("v") / "hard.mp4"
    return path, write_cut_video(path, "hard", seed="t", n_clips=3, size=(96, 128), fps=10)


def _check_spans(r, min_s=None):
    segs = r.segments
    assert segs[0].start_s == 0 and segs[-1].end_s == pytest.approx(r.video_info["duration_s"], abs=1e-3)
    for s, nxt in zip(segs, segs[1:]):
        assert s.end_s == nxt.start_s
    for s in segs:
        assert s.timestamps and all(s.start_s <= t < s.end_s for t in s.timestamps)
        assert len(s.timestamps) <= r.settings["max_frames"] and 0 <= s.winner < len(s.captions)
        if min_s:
            assert s.end_s - s.start_s >= min_s


def test_auto_segments_share_embeddings_and_keep_the_whole_video_caption(pipe, cut_video):
    path, truth = cut_video
    plain = pipe.caption(path, CaptionSettings(beam=1, max_frames=4))
    seg = pipe.caption(path, CaptionSettings(beam=1, max_frames=4, segments="auto", min_segment_s=2))
    _check_spans(seg, 2)
    # the top level is the unsegmented result: same frames, same captions
    assert seg.frame_indices == plain.frame_indices and [c.caption for c in seg.captions] == [
        c.caption for c in plain.captions]
    assert seg.segmentation["mode"] == "auto" and seg.segmentation["seconds_decoded"] == seg.segmentation["seconds"]
    assert CaptionResult.from_json(seg.to_json()) == seg


def test_batched_segments_get_the_captions_each_gets_alone(pipe):
    from c4c.segments import caption_many
    rng = np.random.default_rng(1)
    feats = [rng.normal(size=(n, pipe.zoo.backbone.embed_dim)).astype(np.float32) for n in (1, 5, 3, 12)]
    settings = CaptionSettings(beam=3)
    batched = list(caption_many(pipe, feats, settings, batch=3))
    for f, (_names, hyps, texts, outcome) in zip(feats, batched):
        _, alone_hyps, alone_texts, alone = pipe.caption_features(f, settings)
        assert texts == alone_texts and [h.ids for h in hyps] == [h.ids for h in alone_hyps]
        assert outcome.winner == alone.winner


def test_every_seconds_and_a_max_frames_cap(pipe, cut_video):
    path, _ = cut_video
    r = pipe.caption(path, CaptionSettings(beam=1, max_frames=2, segments="every:3"))
    _check_spans(r)
    assert [s.start_s for s in r.segments] == [3.0 * k for k in range(len(r.segments))]
    assert all(len(s.timestamps) <= 2 for s in r.segments)


def test_static_and_one_second_videos_give_one_segment(pipe, tmp_path):
    from c4c.synth.cuts import write_cut_video
    still = tmp_path / "still.mp4"
    write_cut_video(still, "static", size=(96, 128), fps=10, total_s=8)
    r = pipe.caption(still, CaptionSettings(beam=1, max_frames=3, segments="auto"))
    assert len(r.segments) == 1 and r.segmentation["cuts_s"] == []
    one = tmp_path / "one.mp4"
    write_cut_video(one, "static", size=(96, 128), fps=10, total_s=1)
    r = pipe.caption(one, CaptionSettings(beam=1, segments="auto"))
    assert [(s.start_s, s.end_s, s.timestamps) for s in r.segments] == [(0.0, 1.0, [0.0])]


def test_cli_writes_srt_and_vtt(pipe, cut_video, tmp_path):
    path, _ = cut_video
    srt, vtt = tmp_path / "out.srt", tmp_path / "out.vtt"
    cmd = [sys.executable, "-m", "c4c", "caption", str(path), "--zoo", str(pipe.zoo.folder), "--beam", "1",
           "--segments", "every:4", "--srt", str(srt), "--vtt", str(vtt), "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "segments (every:4" in out.stdout and srt.read_text().startswith("1\n00:00:00,000 --> 00:00:04,000\n")
    assert vtt.read_text().startswith("WEBVTT\n\n00:00:00.000 --> 00:00:04.000\n")
    bad = subprocess.run(cmd[:-4] + ["--srt", str(tmp_path / "x.txt")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and ".srt or .vtt" in bad.stderr


def test_batch_lines_carry_the_segments(pipe, cut_video, tmp_path):
    path, _ = cut_video
    out = tmp_path / "run.jsonl"
    cmd = [sys.executable, "-m", "c4c", "caption", str(path), "--zoo", str(pipe.zoo.folder), "--beam", "1",
           "--segments", "every:5", "--out", str(out), "--workers", "1", "--no-progress", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = json.loads(out.read_text().splitlines()[0])
    r = CaptionResult.from_dict({k: v for k, v in line.items() if k in CaptionResult.__dataclass_fields__})
    assert r.video == str(path) and [s.start_s for s in r.segments] == [5.0 * k for k in range(len(r.segments))]


def test_page_timeline_and_subtitle_downloads(pipe, cut_video):
    """The app's request with segments, its render and a chosen row, without a browser (the functions
    behind the page's events, found by name on the built Blocks)."""
    pytest.importorskip("gradio")
    import app
    from c4c.ui.service import AppConfig
    path, _ = cut_video
    demo = app.build_demo(pipe, AppConfig(), examples=[])
    fns = {f.fn.__name__: f.fn for f in demo.fns.values()}
    result, thumbs, seg_thumbs = fns["caption"](str(path), "cider", 1, 4, list(pipe.zoo.names), "every:4",
                                                progress=lambda *a, **k: None)
    r = CaptionResult.from_dict(result)
    n = len(r.segments)
    assert n >= 3 and len(seg_thumbs) == n
    out = fns["render"](result, thumbs, seg_thumbs)
    (box, summary, rows, gallery, srt, vtt) = out[8:14]
    assert box["visible"] is True and f"{n} segments" in summary
    assert [row[1] for row in rows][:3] == ["0:00.0", "0:04.0", "0:08.0"] and len(gallery) == n
    assert open(srt).read().startswith("1\n00:00:00,000 --> 00:00:04,000\n") and open(vtt).read().startswith("WEBVTT")

    class Row:  # what Gradio passes for a click on table row 1
        index = [1, 5]
    title, table, heat = fns["show_segment"](result, Row())
    assert title.startswith("**Segment 2** (0:04.0 - 0:08.0") and heat is not None
    assert list(table.data["Caption"]) and set(table.data["Caption"]) <= {c.caption for c in r.segments[1].captions}
    plain = fns["render"](fns["caption"](str(path), "cider", 1, 4, list(pipe.zoo.names), "none",
                                         progress=lambda *a, **k: None)[0], thumbs)
    assert plain[8]["visible"] is False and plain[12] is None
