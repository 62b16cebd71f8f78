"""c4c's web app: drop a video, see every decoder's caption and why the ensemble chose its winner.

    python app.py                      # http://127.0.0.1:7860, the zoo in weights/demo
    C4C_ZOO=path/or/hub-repo python app.py

Environment: C4C_ZOO (zoo folder, or on Spaces a Hub repo id), C4C_MAX_UPLOAD_MB (100),
C4C_MAX_DURATION_S (300), C4C_MAX_SEGMENTED_S (1800, with segments on), C4C_CONCURRENCY (2),
C4C_QUEUE_SIZE (64), GRADIO_SERVER_NAME / _PORT, C4C_EXPLORE_DIR (./results: the folder whose results
files the Explore page, /explore, may open).
The request logic lives in c4c/ui/; this file only lays out the page.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:  # Hugging Face Spaces (ZeroGPU): `spaces` must be imported before torch to manage the GPU
    import spaces
    gpu = spaces.GPU(duration=120)
except ImportError:
    spaces = None
    def gpu(fn):
        return fn

import gradio as gr

from c4c.errors import C4CError
from c4c.result import SCHEMA, CaptionResult
from c4c.settings import METRIC_NAMES, CaptionSettings
from c4c.ui import figures, timeline, view
from c4c.ui.service import AppConfig, CaptionService, examples_cache, examples_cache_dir
from c4c.zoo import default_select

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov")
# ZeroGPU runs the decorated function in another process: a progress callback cannot cross over.
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
N_BASIC = 8  # the whole-video panels: winner, why, table, frames, two plots, timings, download
TITLE = "c4c: CLIP4Caption ensemble explorer"
INTRO = """# c4c: CLIP4Caption, with an ensemble you can inspect
Drop a video. Frames sampled at 1 fps go through a CLIP ViT; several caption decoders each write a
caption; every caption is scored against all the others (leave-one-out) and the one the others agree
with most wins."""
CSS = """
.c4c-winner { padding: 14px 18px; border-radius: 10px; border: 2px solid #d95f02; background: #fff7ec; }
.c4c-winner-caption { font-size: 1.6em; font-weight: 700; color: #1a1a1a; line-height: 1.3; }
.c4c-winner-meta { margin-top: 6px; color: #444; }
"""


def load_pipeline(warm: bool = True):
    """The Pipeline over $C4C_ZOO (default weights/demo), on the GPU when there is one, warmed up."""
    from c4c.pipeline import Pipeline
    from c4c.ui.hub import resolve_zoo
    from c4c.ui.service import warm_up
    pipeline = Pipeline.from_zoo(resolve_zoo(), device="auto")
    if warm:
        warm_up(pipeline)
    return pipeline


def example_videos(folder: Path = EXAMPLES_DIR) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in VIDEO_SUFFIXES) if folder.is_dir() else []


def build_demo(pipeline, config: AppConfig | None = None, examples: list[Path] | None = None,
               explore_dir: str | Path | None = None) -> gr.Blocks:
    """The page and its `/caption` API over one loaded Pipeline (shared read-only by all requests),
    and the Explore page (`/explore` API) over the results files in `explore_dir` ($C4C_EXPLORE_DIR)."""
    config = config or AppConfig.from_env()
    service = CaptionService(pipeline, config)
    names = service.names
    examples = example_videos() if examples is None else examples

    @gpu
    def caption(video, metric, beam, max_frames, decoders, segments="none", select="auto", scores=None,
                progress=gr.Progress()):
        """Caption a video with every chosen decoder (and, with segments, every segment of it); returns
        the whole result as JSON."""
        report = None if ZERO_GPU else (lambda frac, text: progress(frac, desc=text))
        try:
            result, thumbs, seg_thumbs = service.caption(video, metric, beam, max_frames, decoders, progress=report,
                                                         segments=segments, select=select, scores=scores)
        except C4CError as e:  # the user's input, not a bug: one clear line in the page
            raise gr.Error(str(e), print_exception=False) from None
        return result.to_dict(), thumbs, seg_thumbs

    def render(result: dict, thumbs, seg_thumbs=None):
        r = CaptionResult.from_dict(result)
        download = service.files.write(r)
        segmented = r.segments is not None
        srt, vtt = timeline.write_subtitle_files(r, download) if segmented else (None, None)
        return (view.winner_html(r), view.why_markdown(r), view.styled_table(r), thumbs,
                figures.loo_figure(r), figures.agreement_figure(r), view.timings_markdown(r), str(download),
                gr.update(visible=segmented),
                timeline.segments_markdown(r, config.max_segmented_duration_s) if segmented else "",
                timeline.timeline_rows(r) if segmented else [],
                timeline.timeline_gallery(r, seg_thumbs or {}) if segmented else [],
                str(srt) if srt else None, str(vtt) if vtt else None, "", None, None)

    def show_segment(result: dict, evt: gr.SelectData):
        """A timeline row (or thumbnail) chosen: that segment's captions, scores and agreement."""
        r = CaptionResult.from_dict(result)
        k = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        rows = timeline.timeline_rows(r)
        if isinstance(evt.index, (list, tuple)):  # a table row: gap rows have no segment
            if not 0 <= k < len(rows) or rows[k][0] == "-":
                return "That stretch could not be decoded: it has no captions.", None, None
            k = rows[k][0] - 1
        seg = timeline.segment_result(r, k)
        s = r.segments[k]
        title = (f"**Segment {k + 1}** ({timeline.clock(s.start_s)} - {timeline.clock(s.end_s)}, "
                 f"{len(s.timestamps)} frames): {view.why_markdown(seg).removeprefix('**Why this caption won:** ')}")
        return title, view.styled_table(seg), figures.agreement_figure(seg)

    def caption_and_render(video, metric, beam, max_frames, decoders, segments="none", select="auto", scores=None,
                           progress=gr.Progress()):
        result, thumbs, seg_thumbs = caption(video, metric, beam, max_frames, decoders, segments, select, scores,
                                             progress)
        return (result, *render(result, thumbs, seg_thumbs))

    def caption_example(video, metric, beam, max_frames, decoders, segments="none", select="auto", scores=None,
                        progress=gr.Progress()):
        """An example's outputs: the whole-video panels only (examples are not segmented, and Gradio's
        example cache cannot store the segment panels' empty values)."""
        return caption_and_render(video, metric, beam, max_frames, decoders, segments, select, scores,
                                  progress)[:1 + N_BASIC]

    with gr.Blocks(title=TITLE, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(view.zoo_markdown(pipeline.zoo.summary(), pipeline.zoo.manifest.get("evaluation"),
                                      default_select(pipeline.zoo.manifest)))
        with gr.Row():
            with gr.Column(scale=2, min_width=320) as left:
                video = gr.Video(label="Video", sources=["upload", "webcam"], elem_id="c4c-video")
                # Choices, defaults and labels come from CaptionSettings (c4c/settings.py).
                opt, default = CaptionSettings.option, CaptionSettings.default
                metric = gr.Radio([(METRIC_NAMES[key], key) for key in opt("metric").choices],
                                  value=default("metric"), label=opt("metric").label)
                beam = gr.Slider(opt("beam").bounds[0], opt("beam").page_max, value=default("beam"), step=1,
                                 precision=0, label=opt("beam").label)
                max_frames = gr.Slider(1, service.max_frames_cap, value=min(default("max_frames"), service.max_frames_cap),
                                       step=1, precision=0, label=opt("max_frames").label)
                decoders = gr.CheckboxGroup(names, value=names, label=f"{opt('decoders').label} (at least "
                                            f"{service.min_decoders})")
                segments = gr.Dropdown(["none", "auto", "every:10", "every:30", "every:60"], value=default("segments"),
                                       allow_custom_value=True, label=opt("segments").label,
                                       info="auto: a caption per detected scene; every:SECONDS: fixed spans. Videos up "
                                            f"to {config.max_segmented_duration_s / 60:g} minutes",
                                       elem_id="c4c-segments")
                grounded = pipeline.zoo.text_tower is not None  # without a text tower: consensus only, and why
                select = gr.Radio(list(opt("select").choices),
                                  value=default("select"), label=opt("select").label, interactive=grounded,
                                  info=f"auto: this zoo's rule, {default_select(pipeline.zoo.manifest)} (the best on "
                                       "its validation split)" if grounded else pipeline.zoo.no_grounding,
                                  elem_id="c4c-select")
                scores = gr.CheckboxGroup([(METRIC_NAMES[key], key) for key in METRIC_NAMES], value=list(default("scores")),
                                          label=opt("scores").label, elem_id="c4c-scores",
                                          info="METEOR starts a Java process: the first request with it takes ~6 s more")
                run = gr.Button("Caption", variant="primary", elem_id="c4c-run")
            with gr.Column(scale=3, min_width=480):
                winner = gr.HTML(elem_id="c4c-winner-box")
                why = gr.Markdown(elem_id="c4c-why")
                table = gr.Dataframe(label="Every decoder's caption, its leave-one-out (LOO) scores (the selecting "
                                     "metric first) and its grounding (caption-video cosine); the winner starred", interactive=False, wrap=True,
                                     column_widths=view.COLUMN_WIDTHS, elem_id="c4c-table")
                gallery = gr.Gallery(label="Sampled frames (what the decoders see)", columns=8, height=200,
                                     object_fit="contain", elem_id="c4c-frames")
        with gr.Row():
            loo_plot = gr.Plot(show_label=False, elem_id="c4c-loo")
            heat_plot = gr.Plot(show_label=False, elem_id="c4c-heatmap")
        with gr.Row():
            timings = gr.Markdown(elem_id="c4c-timings")
            download = gr.DownloadButton("Download the result (JSON)", size="md", scale=0, elem_id="c4c-download")
        with gr.Column(visible=False, elem_id="c4c-timeline-box") as timeline_box:
            gr.Markdown("## Segments")
            seg_summary = gr.Markdown(elem_id="c4c-segments-summary")
            with gr.Row():
                timeline_table = gr.Dataframe(headers=timeline.TIMELINE_HEADERS, interactive=False, wrap=True,
                                              label="Timeline: choose a row", elem_id="c4c-timeline")
                timeline_thumbs = gr.Gallery(label="Segments (a frame from each)", columns=4, height=260,
                                             object_fit="contain", elem_id="c4c-timeline-thumbs")
            seg_title = gr.Markdown(elem_id="c4c-segment-title")
            with gr.Row():
                seg_table = gr.Dataframe(interactive=False, wrap=True, column_widths=view.COLUMN_WIDTHS,
                                         label="The chosen segment's captions and leave-one-out scores",
                                         elem_id="c4c-segment-table")
                seg_heat = gr.Plot(show_label=False, elem_id="c4c-segment-heatmap")
            with gr.Row():
                srt_file = gr.DownloadButton("Subtitles (SRT)", size="md", scale=0, elem_id="c4c-srt")
                vtt_file = gr.DownloadButton("Subtitles (WebVTT)", size="md", scale=0, elem_id="c4c-vtt")
        with gr.Accordion("Result JSON (what the /caption API returns)", open=False):
            result_json = gr.JSON(label="Result")
        thumbs_state, seg_thumbs_state = gr.State(), gr.State()

        inputs = [video, metric, beam, max_frames, decoders, segments, select, scores]
        shown = [winner, why, table, gallery, loo_plot, heat_plot, timings, download, timeline_box, seg_summary,
                 timeline_table, timeline_thumbs, srt_file, vtt_file, seg_title, seg_table, seg_heat]
        run.click(caption, inputs, [result_json, thumbs_state, seg_thumbs_state], api_name="caption") \
           .success(render, [result_json, thumbs_state, seg_thumbs_state], shown, api_visibility="private")
        for chooser in (timeline_table, timeline_thumbs):
            chooser.select(show_segment, [result_json], [seg_title, seg_table, seg_heat], api_visibility="private")
        if examples:
            # Under the controls. Rows carry the default controls, so a cached result matches the page;
            # the cache folder is keyed by the zoo's and examples' fingerprint, so it is never stale.
            layout = f"{SCHEMA}:{len(inputs)} inputs:{1 + N_BASIC} outputs"
            with left, examples_cache(examples_cache_dir(pipeline.zoo, examples, layout=layout)):
                gr.Examples([[str(p), default("metric"), default("beam"), min(default("max_frames"), service.max_frames_cap),
                              names, default("segments"), default("select"), list(default("scores"))] for p in examples],
                            inputs, [result_json, *shown[:N_BASIC]], fn=caption_example, cache_examples=True,
                            cache_mode="lazy", visible_columns=[0], example_labels=[p.stem for p in examples],
                            label="Examples (click one)")
    with demo.route("Explore", "/explore"):
        from c4c.ui.explore import default_explore_dir
        from c4c.ui.explore_page import ExplorePage, build_explore_page
        build_explore_page(ExplorePage(explore_dir or default_explore_dir(), pipeline, examples, [EXAMPLES_DIR]))
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    return demo


def launch_kwargs(config: AppConfig | None = None) -> dict:
    """demo.launch() arguments shared by `python app.py` and the tests (Gradio 6: theme/css go here)."""
    config = config or AppConfig.from_env()
    return dict(theme=gr.themes.Soft(), css=CSS, max_file_size=int(config.max_upload_mb * 2**20),
                ssr_mode=False, show_error=False)


def __getattr__(name):
    # `app.demo` for tools that import the module (e.g. `gradio app.py` reload mode): built on first
    # access, so `import app` stays cheap and loads no model (the tests build their own).
    if name == "demo":
        globals()["demo"] = build_demo(load_pipeline())
        return globals()["demo"]
    raise AttributeError(name)


if __name__ == "__main__":
    try:
        config = AppConfig.from_env()
        demo = build_demo(load_pipeline(), config)  # every model loads here, before the first request
    except C4CError as e:  # a missing zoo, a bad setting: one line, exit status 2 (as the CLI)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    demo.launch(**launch_kwargs(config))
