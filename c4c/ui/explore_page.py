"""The Explore page: a results file's videos in a table (filter, sort, page), the corpus plots, and
one chosen video's stored result in the single-video view. `/explore` is its API endpoint.

The page only lays out components; the logic is in explore.py (rows, filters, paging) and
explore_figures.py (plots). A results file is opened from one allowed folder (named relative to
it), or uploaded; anything outside that folder is refused."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from ..errors import C4CError
from ..result import METRIC_NAMES
from . import explore_figures, figures, view
from .explore import SORTABLE, CorpusCache, list_results, resolve_in, stored_result
from .explore_table import Filters, apply_filters, explore_payload

__all__ = ["ExplorePage", "HEADERS"]

ANY = "(any)"
# Column key -> table header (the API's rows keep the keys).
HEADERS = {"line": "#", "video": "Video", "decoder": "Winner", "caption": "Winning caption", "metric": "Metric",
           "margin": "Margin", "runner_up": "Runner-up", "distinct": "Distinct", "decoders": "Voters",
           "grounding": "Grounding", "grounding_pick": "Grounding's pick",
           "grounding_disagrees": "Vote \u2260 grounding", "ref_cider": "CIDEr-D (refs)",
           "best_ref_cider": "Best decoder's CIDEr-D", "best_ref_decoder": "Best decoder",
           "vote_missed": "Vote missed"}
HELP = """### Explore a results file
Open a file written by `python -m c4c caption DIR --out F.jsonl` (or `--format parquet`): from the
explorer's folder (`$C4C_EXPLORE_DIR`, here `{root}`), or uploaded. One row per video: the winning decoder and caption, the
**margin** (its leave-one-out score minus the best *different* caption's: small = a close vote),
how many **distinct** captions the decoders wrote (1 = all agree), and, with a references file,
CIDEr-D against the references of the winner and of the best decoder. Click a row to see that video
as the single-video page shows it, from the stored result."""


def _error(e: C4CError) -> gr.Error:
    return gr.Error(str(e), print_exception=False)


class ExplorePage:
    """The page's handlers over one allowed folder (and, to caption the examples, the pipeline)."""

    def __init__(self, root: str | os.PathLike, pipeline=None, examples: Sequence[Path] = (),
                 video_dirs: Sequence[str | os.PathLike] = (), cache: CorpusCache | None = None):
        self.root = Path(root)
        self.pipeline = pipeline
        self.examples = [Path(e) for e in examples]
        # Folders whose videos the single-video view may decode for its frames (never any other path a
        # results file names): the explorer's folder and the examples'.
        self.video_dirs = [self.root.resolve()] + [Path(d).resolve() for d in video_dirs] \
            + sorted({e.resolve().parent for e in self.examples})
        self.cache = cache or CorpusCache()

    def _open(self, upload, name: str | None, references: str | None):
        path = Path(upload) if upload else resolve_in(self.root, name or "")
        refs = resolve_in(self.root, references) if references else None
        return self.cache.get(path, refs)

    @staticmethod
    def _filters(decoder, all_agree, vote_vs_grounding, vote_missed, margin_below, search) -> Filters:
        # Margins are never negative, so "below 0" (the browser's empty number) means no filter.
        margin = None if margin_below in (None, "") or float(margin_below) <= 0 else float(margin_below)
        return Filters(decoder="" if decoder in (None, ANY) else str(decoder), all_agree=bool(all_agree),
                       vote_vs_grounding=bool(vote_vs_grounding), vote_missed=bool(vote_missed),
                       margin_below=margin, search=search or "")

    def explore(self, results_file, name, references, decoder, all_agree, vote_vs_grounding, vote_missed,
                margin_below, search, sort_by, descending, page, page_size):
        """One page of a results file's rows (one JSON object per video) and how the file was read."""
        try:
            corpus = self._open(results_file, name, references)
            filters = self._filters(decoder, all_agree, vote_vs_grounding, vote_missed, margin_below, search)
            return explore_payload(corpus, filters, sort_by or "line", bool(descending), int(page or 1), int(page_size or 50))
        except C4CError as e:
            raise _error(e) from None

    def draw(self, payload: dict, results_file, name, references, decoder, all_agree, vote_vs_grounding,
             vote_missed, margin_below, search):
        """The table, the summary line, the three plots and the page number, for a payload."""
        corpus = self._open(results_file, name, references)
        rows = apply_filters(corpus, self._filters(decoder, all_agree, vote_vs_grounding, vote_missed, margin_below,
                                                   search))
        import pandas as pd
        shown = [c for c in payload["columns"] if c != "metric"]  # the API rows keep it; the table has no room
        df = pd.DataFrame([[r[c] for c in shown] for r in payload["rows"]], columns=[HEADERS.get(c, c) for c in shown])
        choices = [ANY] + corpus.decoders
        return (df, summary_markdown(payload), explore_figures.wins_figure(corpus, rows),
                explore_figures.margin_figure(rows), explore_figures.mean_agreement_figure(corpus, rows),
                gr.update(value=payload["page"], maximum=payload["pages"]),
                gr.update(choices=choices, value=decoder if decoder in choices else ANY),
                gr.update(interactive=corpus.has_grounding), gr.update(interactive=corpus.has_references),
                gr.update(choices=[c for c in SORTABLE if c in payload["columns"]]))

    def open_row(self, results_file, name, references, evt: gr.SelectData):
        """The single-video view of the clicked row's stored result (no model runs)."""
        try:
            line = int((evt.row_value or [None])[0])
            corpus = self._open(results_file, name, references)
            r = stored_result(corpus, line)
        except (TypeError, ValueError):
            raise gr.Error("click a row of the table", print_exception=False) from None
        except C4CError as e:
            raise _error(e) from None
        thumbs, note = self._frames(r)
        head = f"**Line {line}: `{r.video}`** ({note})"
        return (head, view.winner_html(r), view.why_markdown(r), view.styled_table(r), thumbs,
                figures.loo_figure(r), figures.agreement_figure(r), r.to_dict())

    def _frames(self, r):
        """The sampled frames, decoded again when the video is at hand in an allowed folder."""
        from ..video.frames import sample_frames
        from .view import thumbnails
        candidates = [Path(r.video)] + [d / r.video for d in self.video_dirs] + [d / Path(r.video).name
                                                                                 for d in self.video_dirs]
        for c in candidates:
            try:
                p = c.resolve()
            except OSError:
                continue
            if p.is_file() and any(p.is_relative_to(d) for d in self.video_dirs):
                try:
                    f = sample_frames(p, max_frames=len(r.timestamps), fps_mode=r.settings.get("fps_mode", "exact"))
                except C4CError:
                    break
                total = r.video_info.get("n_frames_total", f.n_frames_total)
                if f.indices != r.frame_indices or f.n_frames_total != total:  # not the file that was captioned
                    return [], f"{p.name} is at hand but is not the captioned file (other frames); frames not shown"
                return thumbnails(f.images, f.timestamps, f.indices), f"frames decoded again from {p.name}"
        return [], "the video file is not at hand: captions, scores and plots come from the stored result"

    def caption_examples(self, progress=gr.Progress()):
        """Run the zoo over the shipped examples (once per zoo and examples) and open the result."""
        from ..pipeline import CaptionSettings
        from .service import examples_cache_dir
        if self.pipeline is None or not self.examples:
            raise gr.Error("no zoo or no examples to caption here", print_exception=False)
        out = examples_cache_dir(self.pipeline.zoo, self.examples) / "explore-examples.jsonl"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            lines = []
            for k, video in enumerate(self.examples):
                progress(k / len(self.examples), desc=f"captioning {video.name}")
                r = self.pipeline.caption(video, CaptionSettings())
                lines.append(dataclasses.replace(r, video=video.name).to_json())
            tmp = out.with_name(f"{out.name}.{os.getpid()}-{id(lines)}.tmp")  # two clicks at once: two temp files
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            tmp.replace(out)
        return str(out)

    def listing(self):
        files = list_results(self.root)
        return gr.update(choices=[f for f in files if not f.endswith(".json")]), \
            gr.update(choices=[""] + [f for f in files if f.endswith(".json")])


def summary_markdown(p: dict) -> str:
    """One line on what the table lists, then any lines that were skipped or videos that failed."""
    text = (f"**{p['file']}**: {p['videos']} videos, {p['matched']} match the filters; page {p['page']} of "
            f"{p['pages']} (read in {p['load_s']:.2f} s)")
    if p["references"]:
        text += f"; CIDEr-D against the references in `{p['references']}`"
    if len(p["metrics"]) > 1:
        text += f"; **mixed selecting metrics** ({', '.join(p['metrics'])}): margins are on different scales"
    if not p["has_grounding"]:
        text += "; no grounding scores in this file"
    if p["failed_total"]:
        text += f"\n\n{p['failed_total']} video(s) failed to caption and have no row, e.g. " + \
            "; ".join(f"line {f['line']}: `{f['video']}`: {f['error']}" for f in p["failed"][:3])
    if p["skipped_total"]:
        text += f"\n\n**{p['skipped_total']} malformed line(s) skipped:** " + \
            "; ".join(f"line {s['line']}: {s['reason']}" for s in p["skipped"][:10]) + \
            (" ..." if p["skipped_total"] > 10 else "")
    return text


def build_explore_page(page: ExplorePage) -> None:
    """Lay out the page inside the current Blocks context (a `demo.route`)."""
    gr.Markdown(HELP.format(root=page.root))
    files = list_results(page.root)
    with gr.Row():
        name = gr.Dropdown([f for f in files if not f.endswith(".json")], value=None, allow_custom_value=True,
                           label="Results file (in the explorer's folder)", elem_id="c4c-x-name", scale=3)
        refs = gr.Dropdown([""] + [f for f in files if f.endswith(".json")], value="", allow_custom_value=True,
                           label="References (optional: MSR-VTT annotations or captions.json)",
                           elem_id="c4c-x-refs", scale=3)
        upload = gr.File(label="...or upload a results file", file_types=[".jsonl", ".parquet"],
                         elem_id="c4c-x-upload", scale=2, height=90)
    with gr.Row():
        load = gr.Button("Open", variant="primary", elem_id="c4c-x-open", scale=0)
        refresh = gr.Button("Refresh the list", size="sm", scale=0)
        run_examples = gr.Button("Caption the examples and open them", size="sm", scale=0,
                                 elem_id="c4c-x-examples", visible=page.pipeline is not None and bool(page.examples))
    with gr.Row():
        decoder = gr.Dropdown([ANY], value=ANY, label="Winning decoder", elem_id="c4c-x-decoder", scale=1,
                              allow_custom_value=True)  # choices follow the file; the API may name any
        margin = gr.Number(value=0, minimum=0, label="Margin below (0: any)", elem_id="c4c-x-margin", scale=1)
        search = gr.Textbox(label="Text in any caption", elem_id="c4c-x-search", scale=2)
        all_agree = gr.Checkbox(label="All decoders agree", elem_id="c4c-x-agree", scale=1)
        disagree = gr.Checkbox(label="Vote and grounding disagree", interactive=False, elem_id="c4c-x-grounding",
                               scale=1)
        missed = gr.Checkbox(label="Vote missed a better caption (references)", interactive=False,
                             elem_id="c4c-x-missed", scale=1)
    with gr.Row():
        sort_by = gr.Dropdown(SORTABLE, value="line", label="Sort by", elem_id="c4c-x-sort", scale=1,
                              allow_custom_value=True)
        descending = gr.Checkbox(label="Descending", elem_id="c4c-x-desc", scale=1)
        page_no = gr.Number(value=1, precision=0, minimum=1, label="Page", elem_id="c4c-x-page", scale=1)
        page_size = gr.Dropdown([25, 50, 100, 250], value=50, label="Rows per page", elem_id="c4c-x-size", scale=1,
                                allow_custom_value=True)
    summary = gr.Markdown(elem_id="c4c-x-summary")
    table = gr.Dataframe(interactive=False, wrap=True, label="Videos (click a row to open it)",
                         elem_id="c4c-x-table")
    with gr.Row():
        wins = gr.Plot(show_label=False, elem_id="c4c-x-wins")
        margins = gr.Plot(show_label=False, elem_id="c4c-x-margins")
        agreement = gr.Plot(show_label=False, elem_id="c4c-x-agreement")
    with gr.Accordion("/explore API result (this page's rows as JSON)", open=False):
        payload = gr.JSON(label="Rows")

    gr.Markdown("### The chosen video")
    head = gr.Markdown("Click a row above.", elem_id="c4c-x-head")
    with gr.Row():
        with gr.Column(scale=3):
            winner = gr.HTML(elem_id="c4c-x-winner")
            why = gr.Markdown(elem_id="c4c-x-why")
            detail = gr.Dataframe(interactive=False, wrap=True, column_widths=view.COLUMN_WIDTHS,
                                  headers=["Rank", "Model", "Caption", *METRIC_NAMES.values()],
                                  label="Every decoder's caption and its leave-one-out scores", elem_id="c4c-x-detail")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Sampled frames", columns=5, height=200, object_fit="contain",
                                 elem_id="c4c-x-frames")
    with gr.Row():
        loo_plot = gr.Plot(show_label=False, elem_id="c4c-x-loo")
        heat_plot = gr.Plot(show_label=False, elem_id="c4c-x-heatmap")
    with gr.Accordion("Stored result JSON", open=False):
        result_json = gr.JSON(label="Result")

    source = [upload, name, refs]
    filters = [decoder, all_agree, disagree, missed, margin, search]
    inputs = source + filters + [sort_by, descending, page_no, page_size]
    drawn = [table, summary, wins, margins, agreement, page_no, decoder, disagree, missed, sort_by]

    def first_page(*args):  # a new file or new filters start again at page 1
        return 1

    load.click(first_page, None, page_no, api_visibility="private") \
        .then(page.explore, inputs, payload, api_name="explore") \
        .success(page.draw, [payload] + source + filters, drawn, api_visibility="private")
    gr.on([decoder.input, all_agree.input, disagree.input, missed.input, margin.submit, search.submit, sort_by.input,
           descending.input, page_size.input, refs.input], first_page, None, page_no, api_visibility="private") \
        .then(page.explore, inputs, payload, api_visibility="private") \
        .success(page.draw, [payload] + source + filters, drawn, api_visibility="private")
    page_no.submit(page.explore, inputs, payload, api_visibility="private") \
        .success(page.draw, [payload] + source + filters, drawn, api_visibility="private")
    refresh.click(page.listing, None, [name, refs], api_visibility="private")
    # One source at a time: naming a file drops the upload, uploading clears the name.
    name.input(lambda: None, None, upload, api_visibility="private")
    upload.upload(lambda: None, None, name, api_visibility="private")
    run_examples.click(page.caption_examples, None, upload, api_visibility="private") \
        .success(first_page, None, page_no, api_visibility="private") \
        .then(page.explore, inputs, payload, api_visibility="private") \
        .success(page.draw, [payload] + source + filters, drawn, api_visibility="private")
    table.select(page.open_row, source, [head, winner, why, detail, gallery, loo_plot, heat_plot, result_json],
                 api_visibility="private")
