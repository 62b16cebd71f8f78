"""The result object round-trips through JSON and explains the vote."""

from c4c.result import CaptionResult, ModelCaption


def _result():
    caps = [ModelCaption("d1", "a red ball moves left", [5, 6, 102], -1.5, {"cider": 2.0, "bleu4": 0.5}, 1),
            ModelCaption("d2", "a red ball moves right", [5, 7, 102], -1.7, {"cider": 1.0, "bleu4": 0.4}, 2),
            ModelCaption("d3", "a red ball moves left", [5, 6, 102], -1.6, {"cider": 2.0, "bleu4": 0.5}, 3)]
    return CaptionResult(video="v.mp4", timestamps=[0.0, 1.0], frame_indices=[0, 25], captions=caps, winner=0,
                         metric="cider", tie_break="lowest index", pairwise={"cider": [[None, 1.0], [1.0, None]]},
                         idf="idf", timings={"total": 1.0}, settings={"beam": 5}, zoo={"name": "demo"})


def test_json_roundtrip_is_lossless():
    r = _result()
    back = CaptionResult.from_json(r.to_json())
    assert back == r
    assert back.caption == "a red ball moves left"


def test_explain_names_the_winner_the_runner_up_and_duplicates():
    text = _result().explain()
    assert text.startswith("d1's caption won")
    assert "2.000" in text and "d3 produced the very same caption" in text
