"""The Explore page's `/explore` endpoint, called through gradio_client on the running app: rows as
JSON, filters, sorting and paging, malformed lines reported by number, uploads, and files outside
the allowed folder refused while the server keeps serving."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from _app_harness import client, running_app  # noqa: E402,F401  (fixture)
from explore_helpers import CORPUS, fake_result, write_jsonl  # noqa: E402

PARAMS = ["results_file", "name", "references", "decoder", "all_agree", "vote_vs_grounding", "vote_missed",
          "margin_below",
          "search", "sort_by", "descending", "page", "page_size"]


def explore(app, name="results.jsonl", upload=None, **kw) -> dict:
    args = dict(results_file=handle_file(str(upload)) if upload else None, name=name, references="",
                decoder="(any)", all_agree=False, vote_vs_grounding=False, vote_missed=False, margin_below=None, search="",
                sort_by="line", descending=False, page=1, page_size=50)
    args.update(kw)
    return client(app.url).predict(**args, api_name="/explore")


@pytest.fixture(scope="module")
def files(running_app):
    d = running_app.explore_dir
    write_jsonl(d / "results.jsonl", CORPUS, {2: "{torn", 3: '{"video": "x.mp4"}'})
    (d / "refs").mkdir()
    (d / "refs" / "captions.json").write_text(json.dumps(
        {"v0.mp4": {"captions": ["a red star moves left"]}, "v2.mp4": {"captions": ["a dog runs"]}}))
    many = [fake_result(f"clips/m{k:04d}.mp4", ["a red star", "a blue star", "a red star", f"clip {k}"],
                        [1.0 + (k % 7) / 10, 1.0, 1.0 + (k % 7) / 10, 0.5]) for k in range(1200)]
    write_jsonl(d / "many.jsonl", many)
    return d


def test_explore_endpoint_signature(running_app):
    api = client(running_app.url).view_api(print_info=False, return_format="dict")
    params = [p["parameter_name"] for p in api["named_endpoints"]["/explore"]["parameters"]]
    assert params == PARAMS


def test_rows_of_a_results_file(running_app, files):
    p = explore(running_app)
    assert p["file"] == "results.jsonl" and p["videos"] == 4 and p["matched"] == 4
    assert [r["video"] for r in p["rows"]] == [d["video"] for d in CORPUS]
    assert [r["decoder"] for r in p["rows"]] == ["d1", "d1", "d3", "d2"]
    assert [r["line"] for r in p["rows"]] == [1, 2, 5, 6]  # the true line numbers around the bad lines
    assert p["rows"][0]["margin"] == 0.5 and p["rows"][1]["margin"] is None and p["rows"][1]["distinct"] == 1
    assert "grounding" not in p["rows"][0] and p["has_grounding"] is False
    assert [(s["line"], s["reason"][:14]) for s in p["skipped"]] == [(3, "not valid JSON"), (4, "not a c4c resu")]
    assert p["skipped_total"] == 2 and p["decoders"] == ["d1", "d2", "d3", "d4"] and p["metrics"] == ["cider"]


def test_filters_sorting_and_references(running_app, files):
    assert [r["line"] for r in explore(running_app, decoder="d1")["rows"]] == [1, 2]
    assert [r["line"] for r in explore(running_app, all_agree=True)["rows"]] == [2]
    assert [r["line"] for r in explore(running_app, margin_below=0.6)["rows"]] == [1, 6]
    assert [r["line"] for r in explore(running_app, search="dog")["rows"]] == [1, 5]
    assert [r["line"] for r in explore(running_app, sort_by="margin", descending=True)["rows"]] == [5, 1, 6, 2]
    p = explore(running_app, references="refs/captions.json")
    assert p["references"] == "captions.json" and "ref_cider" in p["columns"]
    assert p["rows"][2]["best_ref_decoder"] == "d2" and p["rows"][1]["ref_cider"] is None
    assert [r["line"] for r in explore(running_app, references="refs/captions.json", vote_missed=True)["rows"]] == [5]
    with pytest.raises(AppError, match="choose a references file"):
        explore(running_app, vote_missed=True)


def test_paging_a_larger_file(running_app, files):
    p = explore(running_app, "many.jsonl", page=3, page_size=250)
    assert (p["videos"], p["pages"], p["page"], len(p["rows"])) == (1200, 5, 3, 250)
    assert p["rows"][0]["line"] == 501
    last = explore(running_app, "many.jsonl", page=99, page_size=250)
    assert last["page"] == 5 and len(last["rows"]) == 200
    close = explore(running_app, "many.jsonl", margin_below=0.25, sort_by="margin")
    # the margin over the best different caption (d2's) is (k % 7) / 10
    assert close["matched"] == sum(k % 7 < 3 for k in range(1200)) and close["rows"][0]["margin"] == 0.0


def test_upload_is_read_and_outside_files_are_refused(running_app, files, tmp_path):
    outside = write_jsonl(tmp_path / "mine.jsonl", CORPUS[:2])
    p = explore(running_app, name="", upload=outside)
    assert p["videos"] == 2 and p["rows"][1]["distinct"] == 1
    for name in ["../app/zoo/manifest.json", str(outside), "/etc/passwd", "results.jsonl/../../x.jsonl"]:
        with pytest.raises(AppError, match="outside the folder"):
            explore(running_app, name)
    with pytest.raises(AppError, match="no such file"):
        explore(running_app, "missing.jsonl")
    with pytest.raises(AppError, match="outside the folder"):
        explore(running_app, references="../../etc/passwd")
    assert explore(running_app)["videos"] == 4  # still serving


def test_readme_call(running_app, files):
    # README, "Exploring the results": positional arguments in the endpoint's order.
    page = client(running_app.url).predict(None, "results.jsonl", "", "(any)", False, False, False, 0.6, "", "margin",
                                           False, 1, 50, api_name="/explore")
    assert page["matched"] == 2 and page["rows"][0]["decoder"] == "d2" and page["skipped"][0]["line"] == 3


def test_a_server_path_posing_as_an_upload_is_refused(running_app, files, tmp_path):
    """A client that skips the upload and names a server file in the file input gets nothing from it."""
    import httpx
    secret = write_jsonl(tmp_path / "secret.jsonl", CORPUS)
    fake = {"path": str(secret), "meta": {"_type": "gradio.FileData"}, "orig_name": "secret.jsonl"}
    data = [fake, "", "", "(any)", False, False, False, 0, "", "line", False, 1, 50]
    r = httpx.post(running_app.url + "gradio_api/call/explore", json={"data": data}, timeout=60)
    assert r.status_code == 200, r.text
    events = httpx.get(running_app.url + f"gradio_api/call/explore/{r.json()['event_id']}", timeout=60).text
    assert "event: error" in events and "clips/v0.mp4" not in events, events
    assert explore(running_app)["videos"] == 4
