"""The page's pieces as pure functions of a CaptionResult: table, highlight, banner, figures, thumbnails."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from c4c.result import METRIC_NAMES, CaptionResult, ModelCaption
from c4c.ui import figures, view

LOO = {  # winner d2 under CIDEr-D, d3 under BLEU-4: the table must follow the selecting metric
    "d1": {"cider": 0.5, "bleu4": 0.10, "meteor": 0.20, "rouge": 0.30},
    "d2": {"cider": 2.0, "bleu4": 0.20, "meteor": 0.30, "rouge": 0.40},
    "d3": {"cider": 1.0, "bleu4": 0.30, "meteor": 0.25, "rouge": 0.35},
}


def result(metric: str = "cider") -> CaptionResult:
    names = list(LOO)
    order = sorted(range(3), key=lambda i: -LOO[names[i]][metric])
    rank = {i: r + 1 for r, i in enumerate(order)}
    caps = [ModelCaption(n, f"a <b>caption</b> by {n}", [5, 102], -1.0, LOO[n], rank[i]) for i, n in enumerate(names)]
    pair = {m: [[None if i == j else 0.1 * (i + 1) + 0.01 * j for j in range(3)] for i in range(3)] for m in METRIC_NAMES}
    pair["cider"] = [[None if i == j else 3.0 * (i + j) for j in range(3)] for i in range(3)]
    return CaptionResult(video="clip.mp4", timestamps=[0.0, 1.0, 2.0], frame_indices=[0, 25, 50], captions=caps,
                         winner=order[0], metric=metric, tie_break="lowest index", pairwise=pair, idf="idf",
                         timings={"decode": 0.1, "backbone": 0.2, "captioning": 0.3, "ensemble": 0.4, "total": 1.0},
                         settings={"beam": 5, "device": "cpu"}, zoo={"name": "demo", "decoders": {}})


@pytest.mark.parametrize("metric, winner", [("cider", "d2"), ("bleu4", "d3")])
def test_table_ranks_rows_stars_the_winner_and_puts_the_selecting_metric_first(metric, winner):
    r = result(metric)
    headers, rows = view.table_headers(r), view.table_rows(r)
    assert headers[:4] == ["Rank", "Model", "Caption", METRIC_NAMES[metric]]
    assert sorted(headers[3:7]) == sorted(METRIC_NAMES.values()) and headers[7] == "Grounding"
    assert all(row[7] is None for row in rows)  # no text tower in this result
    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[0][1] == f"{view.WINNER_MARK} {winner}"
    assert sum(row[1].startswith(view.WINNER_MARK) for row in rows) == 1
    assert rows[0][3] == LOO[winner][metric]
    assert len(view.COLUMN_WIDTHS) == len(headers)


def test_styled_table_highlights_only_the_winners_row():
    r = result("bleu4")
    styled = view.styled_table(r)
    ctx = styled._compute().ctx  # (row, col) -> [(css property, value)], what Gradio's Dataframe reads
    lit = {cell for cell, props in ctx.items() if ("background-color", "#fff3b0") in props}
    assert lit == {(0, c) for c in range(len(view.table_headers(r)))}  # every cell of the first row only
    html = styled.to_html()
    assert "0.300" in html and "0.30000" not in html  # scores shown to 3 decimals


def test_banner_escapes_and_names_winner_and_metric():
    r = result()
    html = view.winner_html(r)
    assert "a &lt;b&gt;caption&lt;/b&gt; by d2" in html and "<b>d2</b>" in html and "CIDEr-D" in html
    assert view.why_markdown(r).endswith(r.explain())


def test_why_line_adds_a_readable_tie_break_only_on_ties():
    import dataclasses
    r = result()
    assert "tie" not in view.why_markdown(r)
    tied = [dataclasses.replace(c, loo={**c.loo, "cider": 1.0}) for c in r.captions]
    r = dataclasses.replace(r, captions=tied, winner=0,
                            tie_break="models 0, 1, 2 tie on cider; the sum of bleu4+meteor+rouge decides: model 0")
    text = view.why_markdown(r)
    assert text.endswith("Scores tie at the top, so: models d1, d2, d3 tie on CIDEr-D; the sum of "
                         "BLEU-4+METEOR+ROUGE-L decides: model d1.")
    # a combined rule's text carries its weight: only the model indices become names
    r = dataclasses.replace(r, select="combined", selection={"scores": [0.0, 0.0, 0.0]},
                            tie_break="tie on z(cider) + 0.75 z(grounding) and every other score; the lowest index, model 0")
    assert "z(CIDEr-D) + 0.75 z(grounding)" in view.readable_tie_break(r)
    assert view.readable_tie_break(r).endswith("the lowest index, model d1")


def test_timings_line_lists_stages_in_order():
    text = view.timings_markdown(result())
    assert text.index("decode") < text.index("backbone") < text.index("ensemble")
    assert "total 1.00 s" in text and "reused" not in text


def test_thumbnails_shrink_big_frames_and_label_time_and_index():
    big = np.zeros((2, 720, 1280, 3), np.uint8)
    thumbs = view.thumbnails(big, [0.0, 1.5], [0, 37])
    assert [t[0].shape for t in thumbs] == [(224, 398, 3)] * 2
    assert [t[1] for t in thumbs] == ["0.0 s, #0", "1.5 s, #37"]
    small = np.zeros((1, 120, 160, 3), np.uint8)
    assert view.thumbnails(small, [0.0], [0])[0][0].shape == (120, 160, 3)


def test_loo_figure_has_one_panel_per_metric_and_colours_the_winner():
    r = result("bleu4")
    fig = figures.loo_figure(r)
    axes = fig.get_axes()
    assert [ax.get_title().split(" (")[0] for ax in axes] == [METRIC_NAMES[m] for m in r.scored]
    for ax, m in zip(axes, r.scored):
        bars = ax.patches
        assert [b.get_width() for b in bars] == [c.loo[m] for c in r.captions]
        colours = [to_hex(b.get_facecolor()) for b in bars]
        assert colours[r.winner] == figures.WINNER_COLOR
        assert colours.count(figures.WINNER_COLOR) == 1
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders


def test_without_meteor_the_table_and_figure_show_the_scores_computed_and_grounding():
    import dataclasses
    r = result("rouge")
    caps = [dataclasses.replace(c, loo={m: v for m, v in c.loo.items() if m != "meteor"}, grounding=0.1 * (i + 1))
            for i, c in enumerate(r.captions)]
    r = dataclasses.replace(r, captions=caps)
    assert r.scored == ["rouge", "cider", "bleu4"]
    assert view.table_headers(r) == ["Rank", "Model", "Caption", "ROUGE-L", "CIDEr-D", "BLEU-4", "Grounding"]
    assert [len(row) for row in view.table_rows(r)] == [7, 7, 7]
    axes = [ax for ax in figures.loo_figure(r).get_axes() if ax.get_visible()]
    assert [ax.get_title().split(" (")[0] for ax in axes] == ["ROUGE-L", "CIDEr-D", "BLEU-4", "Grounding"]


def test_agreement_figure_shows_the_matrix_with_an_empty_diagonal():
    r = result()
    fig = figures.agreement_figure(r)
    ax = fig.get_axes()[0]
    data = ax.get_images()[0].get_array()
    assert data.mask.diagonal().all() and not data.mask[0, 1]
    assert data[1, 2] == pytest.approx(9.0)  # caption 1 scored against caption 2 alone
    assert ax.get_images()[0].get_clim() == (0.0, 9.0)  # CIDEr-D: scaled to the largest value
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("\u2014") == 3 and "9.00" in texts
    assert figures.agreement_figure(r, "rouge").get_axes()[0].get_images()[0].get_clim() == (0.0, 1.0)
    labels = [lab.get_text() for lab in ax.get_yticklabels()]
    assert labels[r.winner].startswith("d2") and "LOO 2.00" in labels[r.winner]


def test_zoo_markdown_says_what_the_zoo_gets_right():
    from c4c.ui.view import zoo_markdown
    attrs = {"colour": 98.4, "shape": 61.2, "event": 88.0, "all_three": 55.1, "both": 40.0}
    ev = {"n_videos": 500, "rows": [{"name": "d1", "kind": "single", "attributes": attrs},
                                    {"name": "ensemble (CIDEr-D vote)", "kind": "ensemble", "attributes": attrs}]}
    text = zoo_markdown({"name": "demo", "description": "Synthetic shapes.", "decoders": {"d1": {}}}, ev)
    assert "500 held-out test clips" in text and "shape on 61 %" in text and "40 % of two-object" in text
    assert "CIDEr-D vote" in text
    # the zoo's default rule's row when the evaluation has one (select=auto resolves to it on the page)
    ev["rows"].append({"name": "select: combined (w=0.5)", "kind": "selection", "attributes": {**attrs, "shape": 70.0}})
    text = zoo_markdown({"name": "demo", "decoders": {}}, ev, "combined")
    assert "combined rule's caption (this zoo's default)" in text and "shape on 70 %" in text
    assert "Measured" not in zoo_markdown({"name": "x", "decoders": {}}, {"rows": [{"kind": "ensemble",
                                                                                      "name": "ensemble (CIDEr-D vote)"}]})
