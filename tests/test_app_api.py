"""The app launched for real and called through gradio_client's `/caption` endpoint: the result JSON,
the controls, bad uploads that must not take the server down, and concurrent requests that must not
change each other's results."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from _app_harness import MAX_DURATION_S, client, running_app  # noqa: E402,F401  (fixture)
from c4c.result import CaptionResult  # noqa: E402


def caption(app, video: str, **kw) -> dict:
    return client(app.url).predict(handle_file(str(app.videos[video])), api_name="/caption", **kw)


def comparable(d: dict) -> dict:
    """A result without what legitimately varies between identical requests (timings)."""
    return {k: v for k, v in d.items() if k != "timings"}


def test_one_named_endpoint(running_app):
    api = client(running_app.url).view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/caption", "/explore"]  # /explore: the Explore page (test_app_explore.py)
    params = [p["parameter_name"] for p in api["named_endpoints"]["/caption"]["parameters"]]
    assert params == ["video", "metric", "beam", "max_frames", "decoders", "segments", "select", "scores"]


def test_segments_through_the_api(running_app):
    d = caption(running_app, "bars", beam=1, max_frames=4, segments="every:2")
    r = CaptionResult.from_dict(d)
    assert [(s.start_s, s.end_s) for s in r.segments] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert all(s.caption for s in r.segments) and r.segmentation["mode"] == "every:2"
    assert caption(running_app, "bars", beam=1)["segments"] is None  # the default: one caption
    with pytest.raises(Exception, match="segments"):
        caption(running_app, "bars", beam=1, segments="every:zero")


def test_caption_example_video(running_app):
    # The README's call, but for the URL and the file.
    from gradio_client import Client
    client = Client(running_app.url)
    d = client.predict(handle_file(str(running_app.videos["bars"])), metric="cider", beam=5, max_frames=20,
                       api_name="/caption")
    r = CaptionResult.from_dict(d)  # the API returns exactly the result object's JSON
    assert r.video == "bars.mp4"  # the file's name, not the server's temp path
    assert r.timestamps == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and len(r.frame_indices) == 6
    assert [c.name for c in r.captions] == running_app.decoders
    assert all(c.caption for c in r.captions)
    assert all(set(c.loo) == {"cider", "bleu4", "rouge"} for c in r.captions)  # METEOR is opt-in (scores)
    assert r.metric == "cider" and r.settings["beam"] == 5
    scores = [c.loo["cider"] for c in r.captions]
    assert scores[r.winner] == max(scores)
    assert sorted(c.rank for c in r.captions) == list(range(1, len(r.captions) + 1))
    assert r.captions[r.winner].rank == 1 and d["caption"] == r.captions[r.winner].caption
    assert set(r.pairwise) == {"cider", "bleu4", "rouge"} and len(r.pairwise["cider"]) == len(r.captions)
    assert r.explain().startswith(f"{r.winner_name}'s caption won")
    assert {"decode", "backbone", "captioning", "ensemble", "total"} <= set(r.timings)


def test_controls_are_honoured(running_app):
    chosen = running_app.decoders[1:4]
    d = caption(running_app, "bars", metric="rouge", beam=2, max_frames=3, decoders=chosen, scores=["meteor"])
    assert [c["name"] for c in d["captions"]] == chosen
    assert set(d["captions"][0]["loo"]) == {"rouge", "meteor"} and d["select"] == "consensus"  # auto, no tower
    assert d["metric"] == "rouge" and d["settings"]["beam"] == 2
    assert d["timestamps"] == [0.0, 2.0, 5.0]  # 6 s at 1 fps, 3 kept uniformly
    scores = [c["loo"]["rouge"] for c in d["captions"]]
    assert scores[d["winner"]] == max(scores)


@pytest.mark.parametrize("video, kw, message", [
    ("empty", {}, "empty (0 bytes)"),
    ("text", {}, "cannot be decoded as a video"),
    ("long", {}, f"over the limit of {MAX_DURATION_S:g} s"),
    ("bars", {"decoders": "first two"}, "at least 3 decoders"),
    ("bars", {"metric": "spice"}, "spice"),
    ("bars", {"select": "grounding"}, "no text tower"),  # the harness zoo has none: consensus only, and why
    ("bars", {"scores": ["spice"]}, "spice"),  # Gradio checks the choices before c4c does
])
def test_bad_input_gives_a_clear_message_and_the_server_keeps_serving(running_app, video, kw, message):
    from gradio_client.exceptions import AppError
    if kw.get("decoders") == "first two":
        kw = {"decoders": running_app.decoders[:2]}
    with pytest.raises(AppError) as e:
        caption(running_app, video, **kw)
    assert message in str(e.value)
    assert "/tmp" not in str(e.value)  # the user's file name, never the server's paths
    assert caption(running_app, "pattern", beam=1)["captions"]  # still serving


def test_upload_over_the_size_cap_is_refused(running_app, tmp_path):
    import httpx
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 * 2**20))  # 2 MB > the 1 MB cap (C4C_MAX_UPLOAD_MB)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks first
        client(running_app.url).predict(handle_file(str(big)), api_name="/caption")
    with open(big, "rb") as f:  # and the server refuses it from any other client
        r = httpx.post(running_app.url + "gradio_api/upload", files={"files": ("big.mp4", f, "video/mp4")}, timeout=60)
    assert r.status_code == 413, r.text
    assert caption(running_app, "pattern", beam=1)["captions"]


def test_concurrent_requests_match_sequential_ones(running_app):
    names = running_app.decoders
    calls = [("bars", dict(metric="cider", beam=2)), ("pattern", dict(metric="bleu4", beam=1)),
             ("bars", dict(metric="meteor", beam=3, max_frames=4)), ("pattern", dict(metric="rouge", beam=2)),
             ("bars", dict(metric="rouge", beam=1, decoders=names[:3])), ("pattern", dict(metric="cider", beam=3)),
             ("bars", dict(metric="bleu4", beam=2, max_frames=2)), ("pattern", dict(metric="meteor", beam=1))]
    one_by_one = [comparable(caption(running_app, v, **kw)) for v, kw in calls]
    clients = [client(running_app.url) for _ in calls]  # eight users at once
    jobs = [c.submit(handle_file(str(running_app.videos[v])), api_name="/caption", **kw)
            for c, (v, kw) in zip(clients, calls)]
    at_once = [comparable(j.result(timeout=300)) for j in jobs]
    for k, (seq, conc) in enumerate(zip(one_by_one, at_once)):
        assert conc == seq, f"call {k} ({calls[k]}) differs when run concurrently"
    assert len({(d["metric"], tuple(d["timestamps"])) for d in at_once}) > 4  # the calls really differ
