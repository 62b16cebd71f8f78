"""The Explore page's pure logic (c4c.ui.explore) and its plots: rows built from results, malformed
lines skipped by number, the allowed folder, filters, sorting, paging, Parquet, references,
grounding columns only when results carry grounding, and stored results read back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from c4c.errors import InputError
from c4c.ui import explore_figures
from c4c.ui.explore import (GROUNDING_COLUMNS, REF_COLUMNS, CorpusCache, list_results, load_corpus, resolve_in,
                            row_from_result, stored_result)
from c4c.ui.explore_table import Filters, apply_filters, explore_payload, page_rows, sort_rows, table_columns
from explore_helpers import CORPUS, fake_result, write_jsonl


@pytest.fixture
def corpus_file(tmp_path):
    return write_jsonl(tmp_path / "results.jsonl", CORPUS)


def test_rows_hold_winner_margin_and_agreement(corpus_file):
    c = load_corpus(corpus_file)
    t = c.table
    assert list(t["line"]) == [1, 2, 3, 4]
    assert list(t["decoder"]) == ["d1", "d1", "d3", "d2"]
    assert list(t["distinct"]) == [3, 1, 4, 4]
    # v0: d1 ties with d2's identical caption, so the margin is over d3, the best different caption
    assert t["margin"][0] == pytest.approx(0.5) and t["runner_up"][0] == "d3"
    assert math.isnan(t["margin"][1]) and t["runner_up"][1] == ""   # all agree: no margin
    assert t["margin"][2] == pytest.approx(2.1) and t["margin"][3] == pytest.approx(0.01)
    assert c.decoders == ["d1", "d2", "d3", "d4"] and c.pairwise.shape == (4, 4, 4)
    assert np.isnan(c.pairwise[0, 1, 1]) and c.pairwise[0, 0, 1] == pytest.approx(0.2)
    assert table_columns(c)[:4] == ["line", "video", "decoder", "caption"]
    assert not set(GROUNDING_COLUMNS + REF_COLUMNS) & set(table_columns(c))


def test_malformed_lines_are_skipped_and_reported_by_number(tmp_path):
    bad = {1: "{not json", 3: json.dumps({"video": "x.mp4", "captions": [], "winner": 0}),
           5: json.dumps([1, 2]), 6: "\xff\xfe garbage"}
    path = write_jsonl(tmp_path / "r.jsonl", CORPUS, bad)
    path.write_bytes(path.read_bytes() + b"\n\n")  # blank lines are not errors
    with open(path, "ab") as f:
        f.write(json.dumps({"video": "broken.mp4", "error": "cannot be decoded", "error_type": "VideoError"}).encode()
                + b"\n" + b'{"video": "torn.mp4", "capt')  # a torn last write
    c = load_corpus(path)
    assert len(c.table) == 4
    reasons = {s.line: s.reason for s in c.skipped}
    assert set(reasons) == {2, 4, 6, 7, 12}, reasons
    assert "not valid JSON" in reasons[2] and "not valid JSON" in reasons[12]
    assert "no 'captions' list" in reasons[4] and "not a JSON object" in reasons[6]
    assert c.n_skipped == 5
    assert c.failed == [(11, "broken.mp4", "cannot be decoded")]
    p = explore_payload(c)
    assert p["skipped_total"] == 5 and p["skipped"][0] == {"line": 2, "reason": reasons[2]}
    assert p["failed_total"] == 1
    # the rows keep their true line numbers, and stored results are read back from those lines
    assert [r["line"] for r in p["rows"]] == [1, 3, 5, 8]
    assert stored_result(c, 8).video == "clips/v3.mp4"


@pytest.mark.parametrize("bad, reason", [
    ({"video": "a.mp4", "captions": [{"name": "d1", "caption": "x", "loo": {}}], "winner": 0, "metric": "cider"},
     "leave-one-out 'cider' score"),
    ({"video": "a.mp4", "captions": [{"name": "d1", "caption": "x", "loo": {"cider": 1}}], "winner": 3,
      "metric": "cider"}, "'winner' 3"),
    ({"captions": [], "winner": 0}, "no 'video'"),
    ({"video": "a.mp4", "captions": [{"name": "d1", "caption": "x", "loo": {"cider": 1}}], "winner": 0},
     "no 'metric'"),
    ({"video": "a.mp4", "captions": [{"name": "d1", "caption": "x", "loo": {"cider": "high"}}], "winner": 0,
      "metric": "cider"}, "not a number"),
])
def test_row_builder_names_what_is_wrong(bad, reason):
    with pytest.raises(ValueError, match=reason):
        row_from_result(bad)


def test_grounding_columns_only_when_results_carry_grounding(tmp_path):
    # v0's vote picks d1; grounding alone would pick d3. v1: grounding agrees with the vote.
    recs = [fake_result("g0.mp4", ["a", "b", "c"], [2.0, 1.0, 0.5], grounding=[0.1, 0.2, 0.9]),
            fake_result("g1.mp4", ["a", "b", "c"], [2.0, 1.0, 0.5], grounding=[0.8, 0.2, 0.1])]
    row = row_from_result(recs[0])
    assert row["grounding"] == 0.1 and row["grounding_pick"] == "d3" and row["grounding_disagrees"]
    assert "grounding" not in row_from_result(CORPUS[0])
    c = load_corpus(write_jsonl(tmp_path / "g.jsonl", recs))
    assert c.has_grounding and set(GROUNDING_COLUMNS) <= set(table_columns(c))
    assert list(apply_filters(c, Filters(vote_vs_grounding=True))["video"]) == ["g0.mp4"]
    plain = load_corpus(write_jsonl(tmp_path / "p.jsonl", CORPUS))
    with pytest.raises(InputError, match="no grounding"):
        apply_filters(plain, Filters(vote_vs_grounding=True))
    assert explore_payload(c)["rows"][0]["grounding_disagrees"] is True


def test_filters(corpus_file):
    c = load_corpus(corpus_file)

    def videos(**kw):
        return [v.split("/")[-1] for v in apply_filters(c, Filters(**kw))["video"]]

    assert videos() == ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]
    assert videos(decoder="d1") == ["v0.mp4", "v1.mp4"]
    assert videos(all_agree=True) == ["v1.mp4"]
    assert videos(margin_below=0.6) == ["v0.mp4", "v3.mp4"]  # no margin (all agree) is not "below"
    assert videos(search="DOG") == ["v0.mp4", "v2.mp4"]       # any decoder's caption, case-insensitive
    assert videos(search="yellow star", decoder="d3") == ["v2.mp4"]
    assert videos(decoder="d4") == []


def test_sorting_and_paging(corpus_file):
    c = load_corpus(corpus_file)
    by_margin = sort_rows(c.table, "margin", descending=True)
    assert list(by_margin["line"]) == [3, 1, 4, 2]       # the NaN margin last
    assert list(sort_rows(c.table, "margin")["line"]) == [4, 1, 3, 2]
    with pytest.raises(InputError, match="cannot sort by"):
        sort_rows(c.table, "nonsense")
    rows, page, pages = page_rows(c.table, page=2, size=3)
    assert (page, pages, list(rows["line"])) == (2, 2, [4])
    assert page_rows(c.table, page=99, size=3)[1] == 2 and page_rows(c.table, page=0, size=3)[1] == 1
    p = explore_payload(c, Filters(), "distinct", True, 1, 2)
    assert [r["line"] for r in p["rows"]] == [3, 4] and p["pages"] == 2 and p["matched"] == 4
    assert p["rows"][0]["margin"] == 2.1 and p["columns"] == list(p["rows"][0]) and p["metrics"] == ["cider"]
    json.dumps(p, allow_nan=False)  # NaN margins become null: strict JSON


def test_allowed_folder(tmp_path):
    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    write_jsonl(root / "sub" / "a.jsonl", CORPUS)
    outside = write_jsonl(tmp_path / "secret.jsonl", CORPUS)
    (root / "link.jsonl").symlink_to(outside)
    assert resolve_in(root, "sub/a.jsonl") == (root / "sub" / "a.jsonl").resolve()
    for name in ["../secret.jsonl", str(outside), "link.jsonl", "sub/../../secret.jsonl", "/etc/passwd"]:
        with pytest.raises(InputError, match="outside the folder"):
            resolve_in(root, name)
    with pytest.raises(InputError, match="no such file"):
        resolve_in(root, "missing.jsonl")
    with pytest.raises(InputError, match="no results file"):
        resolve_in(root, " ")
    with pytest.raises(InputError, match="not a usable file name"):
        resolve_in(root, "a\0b.jsonl")
    assert list_results(root) == ["link.jsonl", "sub/a.jsonl"]
    assert len(list_results(root, limit=1)) == 1


def test_parquet_results_folder(tmp_path):
    pytest.importorskip("pyarrow")
    from c4c.batch import open_output
    from c4c.batch.output import error_record
    out = open_output(tmp_path / "res.parquet", "parquet")
    out.rows_per_part = 3  # two part files
    for d in CORPUS:
        out.append(json.dumps(d), d)
    out.append("", error_record("bad.mp4", ValueError("unreadable")))
    out.close()
    assert len(list((tmp_path / "res.parquet").glob("part-*.parquet"))) == 2
    c = load_corpus(tmp_path / "res.parquet")
    assert list(c.table["decoder"]) == ["d1", "d1", "d3", "d2"]
    assert c.failed == [(5, "bad.mp4", "unreadable")]
    assert stored_result(c, 4).video == "clips/v3.mp4"  # read back from the second part
    one = sorted((tmp_path / "res.parquet").glob("part-*.parquet"))[0]  # a single part file, e.g. uploaded
    assert list(load_corpus(one).table["video"]) == [d["video"] for d in CORPUS[:3]]
    (tmp_path / "res.parquet" / "part-zzz.parquet").write_bytes(b"PAR1 not really")
    c = load_corpus(tmp_path / "res.parquet")
    assert len(c.table) == 4 and "unreadable Parquet part" in c.skipped[0].reason


def test_references_add_cider_columns(tmp_path, corpus_file):
    refs = {"v0.mp4": {"captions": ["a red star moves left", "a red star is moving left"]},
            "v2.mp4": {"captions": ["a dog runs", "a dog is running"]}}
    c = load_corpus(corpus_file, _write(tmp_path / "refs.json", refs))
    t = c.table
    assert set(REF_COLUMNS) <= set(table_columns(c))
    assert t["ref_cider"][0] > 0 and t["best_ref_decoder"][0] == "d1"
    assert t["best_ref_decoder"][2] == "d2" and t["best_ref_cider"][2] > t["ref_cider"][2]  # the vote missed
    assert math.isnan(t["ref_cider"][1])  # no references for v1
    assert list(t["vote_missed"]) == [False, False, True, False]
    assert list(apply_filters(c, Filters(vote_missed=True))["line"]) == [3]
    # CIDEr-D's IDF comes from the scored videos' references: with one video every n-gram would be in
    # every document (IDF 0), so the MSR-VTT file names two.
    msrvtt = {"videos": [{"video_id": "v2"}, {"video_id": "v3"}],
              "sentences": [{"video_id": "v2", "caption": "a dog runs"}, {"video_id": "v3", "caption": "a star"}]}
    c2 = load_corpus(corpus_file, _write(tmp_path / "MSRVTT_data.json", msrvtt))
    assert c2.table["best_ref_decoder"][2] == "d2" and math.isnan(c2.table["ref_cider"][0])
    assert c2.table["best_ref_decoder"][3] == "d3"
    with pytest.raises(InputError, match="no reference captions"):
        load_corpus(corpus_file, _write(tmp_path / "empty.json", {"x": 1}))


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_stored_result_is_the_recorded_one_and_tolerates_new_fields(tmp_path):
    d = fake_result("new.mp4", ["a", "b", "c"], [1.0, 2.0, 0.5], grounding=[0.3, 0.2, 0.1])
    d["schema"] = "c4c.result/2"
    d["select"] = "combined"  # fields a later schema may add
    c = load_corpus(write_jsonl(tmp_path / "r.jsonl", [CORPUS[2], d]))
    r = stored_result(c, 2)
    assert r.video == "new.mp4" and r.caption == "b" and r.winner_name == "d2"
    assert stored_result(c, 1).to_dict() == CORPUS[2]
    with pytest.raises(InputError, match="no result at line 7"):
        stored_result(c, 7)


def test_cache_reuses_a_load_and_rereads_a_changed_file(corpus_file):
    cache = CorpusCache(max_items=2)
    a = cache.get(corpus_file)
    assert cache.get(corpus_file) is a
    write_jsonl(corpus_file, CORPUS[:2])
    b = cache.get(corpus_file)
    assert b is not a and len(b.table) == 2


def test_corpus_figures(tmp_path, corpus_file):
    c = load_corpus(corpus_file)
    rows = apply_filters(c, Filters())
    wins = explore_figures.wins_figure(c, rows)
    ax = wins.axes[0]
    assert [round(b.get_width()) for b in ax.patches] == [2, 1, 1, 0]  # d1 won twice, d4 never
    hist = explore_figures.margin_figure(rows)
    assert "1 video(s) where all decoders agree" in hist.axes[0].get_title()
    heat = explore_figures.mean_agreement_figure(c, rows)
    img = heat.axes[0].images[0].get_array()
    assert img.shape == (4, 4) and img[0, 1] == pytest.approx(0.2) and np.ma.is_masked(img[0, 0])
    empty = apply_filters(c, Filters(decoder="d4"))
    for fig in (explore_figures.wins_figure(c, empty), explore_figures.margin_figure(empty),
                explore_figures.mean_agreement_figure(c, empty)):
        assert "no videos match" in fig.axes[0].texts[0].get_text()


def test_a_file_with_no_results_gives_an_empty_table(tmp_path):
    c = load_corpus(write_jsonl(tmp_path / "bad.jsonl", [], {0: "nope", 1: json.dumps({"video": "v.mp4", "error": "x"})}))
    assert c.table.empty and c.n_skipped == 1 and len(c.failed) == 1
    p = explore_payload(c, Filters(search="a", margin_below=1.0), "margin", True)
    assert (p["rows"], p["pages"], p["matched"]) == ([], 1, 0)
    rows = apply_filters(c, Filters())
    for fig in (explore_figures.wins_figure(c, rows), explore_figures.margin_figure(rows),
                explore_figures.mean_agreement_figure(c, rows)):
        assert fig.axes[0].texts


def test_frames_only_from_allowed_folders_and_only_of_the_captioned_file(tmp_path):
    import dataclasses

    from _app_harness import make_video
    from c4c.video.frames import sample_frames
    from c4c.result import CaptionResult
    from c4c.ui.explore_page import ExplorePage
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    clip = make_video(allowed / "clip.mp4", 3)
    make_video(elsewhere / "far.mp4", 3)
    f = sample_frames(clip, max_frames=2)
    base = CaptionResult.from_dict(fake_result("clip.mp4", ["a", "b", "c"], [1.0, 0.5, 0.2]))
    r = dataclasses.replace(base, timestamps=f.timestamps, frame_indices=f.indices,
                            video_info={"n_frames_total": f.n_frames_total})
    page = ExplorePage(allowed)
    thumbs, note = page._frames(r)
    assert len(thumbs) == 2 and "decoded again from clip.mp4" in note
    thumbs, note = page._frames(dataclasses.replace(r, frame_indices=[0, 5]))
    assert thumbs == [] and "not the captioned file" in note
    for video in [str(elsewhere / "far.mp4"), "../elsewhere/far.mp4", "gone.mp4"]:
        thumbs, note = page._frames(dataclasses.replace(r, video=video))
        assert thumbs == [] and "not at hand" in note, video


def test_summary_warns_of_mixed_metrics(tmp_path):
    from c4c.ui.explore_page import summary_markdown
    rouge = dict(CORPUS[2], metric="rouge")
    p = explore_payload(load_corpus(write_jsonl(tmp_path / "m.jsonl", [CORPUS[0], rouge], {1: "{"})))
    assert p["metrics"] == ["cider", "rouge"]
    text = summary_markdown(p)
    assert "mixed selecting metrics" in text and "line 2: not valid JSON" in text and "2 videos" in text
    assert "mixed" not in summary_markdown(explore_payload(load_corpus(write_jsonl(tmp_path / "c.jsonl", CORPUS))))


def test_a_segmented_result_gives_a_row_per_segment(tmp_path):
    """Issue 16: one row per segment where a result has segments, each with its own vote."""
    import json

    from c4c.ui.explore import load_corpus, stored_result
    from c4c.ui.explore_table import table_columns
    whole = fake_result("long.mp4", ["a red ball moves", "a red ball moves", "a blue box grows"], [2.0, 2.0, 1.0])

    def seg(a, b, caps, cider):
        part = fake_result("x", caps, cider)
        return {"start_s": a, "end_s": b, "timestamps": [a], "frame_indices": [0], "captions": part["captions"],
                "winner": part["winner"], "tie_break": "x", "pairwise": part["pairwise"]}

    whole["segments"] = [seg(0.0, 4.0, ["a red ball moves", "a red ball moves", "a red ball rises"], [2.0, 2.0, 1.0]),
                         seg(4.0, 9.5, ["a blue box grows", "a blue box spins", "a blue box grows"], [1.0, 0.5, 3.0])]
    path = tmp_path / "seg.jsonl"
    other = fake_result("short.mp4", ["a", "b", "c"], [0.1, 0.3, 0.2])
    path.write_text(json.dumps(whole) + "\n" + json.dumps(other) + "\n")
    corpus = load_corpus(path)
    t = corpus.table
    assert len(t) == 3 and list(t["line"]) == [1, 1, 2]
    assert list(t["segment"][:2]) == ["0.0-4.0 s", "4.0-9.5 s"] and t["segment"].isna().iloc[2]
    names = [c["name"] for c in whole["captions"]]
    assert list(t["decoder"]) == [names[0], names[2], names[1]]  # each segment's own winner
    assert "segment" in table_columns(corpus)
    assert stored_result(corpus, 1).video == "long.mp4"  # choosing a segment opens its video's result
