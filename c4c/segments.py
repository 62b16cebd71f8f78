"""Segmented captioning: a caption, with its time span, for every scene of a (long) video.

    every second, in chunks (video/stream.py) -> CLIP embeddings (n_seconds, E), computed once
      -> the whole video's caption from <= max_frames of them (the same frames an unsegmented run uses)
      -> cuts (video/scenes.py: `auto_cuts`, or every:SECONDS) -> spans (min/max length)
      -> per span: <= max_frames of its embeddings -> every decoder (BATCH spans per beam search)
         -> leave-one-out vote -> the settings' selection rule (grounded in the span's own frames) -> Segment

Only embeddings are kept across chunks (a 2-hour video: 7,200 x E floats), plus the <= max_frames
whole-video frames and, when asked for, one small thumbnail per second, so memory does not grow with
the video's length beyond those. `pipe` is a `c4c.pipeline.Pipeline` (passed in: this layer is below it).
Seconds that cannot be decoded split the spans around them and are reported in `segmentation["gaps"]`.
"""

from __future__ import annotations

import time

import numpy as np

from .result import CaptionResult, Segment, model_captions, plain_pairwise
from .settings import CaptionSettings, parse_segments

__all__ = ["caption_segments", "caption_many", "segment_spans"]

DETECTOR = "embedding+pixels, confirmed by frames"  # `auto` (video/scenes.py; benchmarks/README.md)
# Segments decoded at once by each decoder. Batched beam search gives each segment the tokens it gets
# alone (rows of a batch do not interact; tests/test_segments.py checks it on a random zoo).
BATCH = 16


def segment_spans(settings: CaptionSettings, video, feats: np.ndarray, times: list[float], shares: list[float],
                  fps: float, duration: float, gaps: list[tuple[float, float]]):
    """(spans, detected cut times) for decoded 1-fps embeddings `feats` at `times` s; `shares[k]`: the
    share of the picture that changed between samples k and k+1 (video/scenes.py, `pixel_cuts`)."""
    from .video.scenes import auto_cuts, every_cuts, plan_segments
    mode, seconds = parse_segments(settings.segments)
    forced = [(t, float("inf")) for gap in gaps for t in gap]  # a gap's edges are always boundaries
    if mode == "every":
        return plan_segments(every_cuts(duration, seconds) + forced, duration, 0, None), []
    cuts = auto_cuts(video, feats, times, shares, fps) if len(feats) > 1 else []
    # Two samples on either side of a gap are not neighbours: a "cut" across a gap is the gap's own edge.
    cuts = [c for c in cuts if not any(a - 1 <= c[0] <= b + 1 for a, b in gaps)]
    spans = plan_segments(cuts + forced, duration, settings.min_segment_s, settings.max_segment_s)
    return spans, [round(c, 3) for c, _ in cuts]


def caption_many(pipe, feats_list: list[np.ndarray], settings: CaptionSettings, batch: int = BATCH):
    """`Pipeline.caption_features` for many segments: each decoder decodes `batch` segments at once
    (one beam search over a (batch, T, E) input), then each segment has its own vote.
    Yields (names, hypotheses, texts, EnsembleOutcome) per segment, in order."""
    import torch

    from .captioning.decoding import beam_search_many
    from .captioning.model import prepare_video
    from .vote.ensemble import score_ensemble
    names = list(settings.decoders or pipe.zoo.names)
    models = [pipe.zoo.decoders[name] for name in names]
    tok = pipe.zoo.tokenizer
    for lo in range(0, len(feats_list), batch):
        group = [torch.as_tensor(np.asarray(f, dtype=np.float32)) for f in feats_list[lo:lo + batch]]
        videos, masks = [], []
        for m in models:
            prepared = [prepare_video(f, m.cfg) for f in group]
            videos.append(torch.cat([v for v, _ in prepared]).to(pipe.device))
            masks.append(torch.cat([k for _, k in prepared]).to(pipe.device))
        hyps = beam_search_many(models, videos, masks, beam=settings.beam, max_words=settings.max_words,
                                precision=settings.precision, bos_id=tok.bos_id, eos_id=tok.eos_id)
        for j in range(len(group)):
            seg_hyps = [h[j] for h in hyps]
            texts = [tok.decode(h.ids) for h in seg_hyps]
            yield names, seg_hyps, texts, score_ensemble(texts, pipe.zoo.idf, select=settings.metric,
                                                           metrics=settings.computed_metrics())


def _tie_break(outcome, sel) -> str:
    """The vote's own words under consensus (as an unsegmented result), else the rule's."""
    return outcome.tie_break if sel.rule == "consensus" else sel.tie_break


def _thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((width, max(2, round(h * width / w))), Image.BILINEAR))


def caption_segments(pipe, video, settings: CaptionSettings, progress=None, thumb_width: int = 0):
    """(CaptionResult with `segments`, SampledFrames of the whole-video caption's frames); with
    `thumb_width`, a third item: {segment index: a thumbnail of its middle second}."""
    settings = pipe.check(settings)
    from .video.frames import SampledFrames, uniform_subsample
    from .video.preprocess import preprocess
    from .video.stream import decode_seconds
    timings = {"decode": 0.0, "preprocess": 0.0, "backbone": 0.0}
    t0 = time.perf_counter()
    from .video.scenes import changed_share, tiny
    embeds, kept_times, whole_images, thumbs, shares, last = [], [], {}, {}, [], []
    grid: dict[str, object] = {}

    def on_start(indices: list[int], duration: float) -> None:
        grid["whole"] = set(uniform_subsample(len(indices), settings.max_frames))  # positions in the 1-fps grid
        grid["keep"] = {indices[p] for p in grid["whole"]}  # frame indices whose images are kept
        grid["n"], grid["done"] = len(indices), 0
        grid["t"] = time.perf_counter()

    def on_chunk(images: np.ndarray, indices: list[int], times: list[float]) -> None:
        timings["decode"] += time.perf_counter() - grid["t"]
        start = grid["done"]
        t = time.perf_counter()
        pixels = preprocess(images, size=pipe.zoo.backbone.image_size)
        timings["preprocess"] += time.perf_counter() - t
        t = time.perf_counter()
        embeds.append(pipe.zoo.backbone.embed(pixels.to(pipe.device)).float().cpu().numpy())
        timings["backbone"] += time.perf_counter() - t
        for small in tiny(images):
            if last:
                shares.append(changed_share(last[0], small))
            last[:] = [small]
        for image, i, s in zip(images, indices, times):
            if i in grid["keep"]:
                whole_images[i] = image
            if thumb_width:
                thumbs[i] = _thumbnail(image, thumb_width)
            kept_times.append(s)
        grid["done"] = start + len(indices)
        if progress:
            progress(0.05 + 0.55 * min(1.0, grid["done"] / max(1, grid["n"])), "reading frames and embedding them")
        grid["t"] = time.perf_counter()

    info = decode_seconds(video, on_chunk, fps_mode=settings.fps_mode, max_duration_s=settings.max_duration_s,
                          on_start=on_start)
    feats = np.concatenate(embeds)                     # (decoded seconds, E)
    decoded_idx = [i for i, ok in zip(info.indices, info.decoded) if ok]
    row_of = {i: r for r, i in enumerate(decoded_idx)}
    # The whole-video caption: the grid's uniform subsample, less what did not decode (as sample_frames).
    whole = [info.indices[p] for p in sorted(grid["whole"]) if info.decoded[p]]
    whole_feats = feats[[row_of[i] for i in whole]]
    names, hyps, texts, outcome = pipe.caption_features(whole_feats, settings, None, timings)
    t = time.perf_counter()
    sel, grounding = pipe.choose(whole_feats, texts, outcome, settings)
    timings["grounding"] = time.perf_counter() - t
    t = time.perf_counter()
    spans, cut_times = segment_spans(settings, video, feats, kept_times, shares, info.fps, info.duration_s, info.gaps)
    timings["detect"] = time.perf_counter() - t
    t = time.perf_counter()
    from bisect import bisect_left
    members = [list(range(bisect_left(kept_times, a), bisect_left(kept_times, b))) for a, b in spans]
    skipped = [list(span) for span, rows in zip(spans, members) if not rows]
    spans = [span for span, rows in zip(spans, members) if rows]
    members = [[rows[p] for p in uniform_subsample(len(rows), settings.max_frames)] for rows in members if rows]
    segments = []
    for k, (s_names, s_hyps, s_texts, s_out) in enumerate(caption_many(pipe, [feats[rows] for rows in members],
                                                                         settings)):
        (a, b), rows = spans[k], members[k]
        s_sel, s_ground = pipe.choose(feats[rows], s_texts, s_out, settings)  # grounded in the segment's own frames
        segments.append(Segment(start_s=a, end_s=b, timestamps=[round(kept_times[r], 3) for r in rows],
                                frame_indices=[int(decoded_idx[r]) for r in rows],
                                captions=model_captions(s_names, s_hyps, s_texts, s_out, s_sel, s_ground),
                                winner=int(s_sel.winner), tie_break=_tie_break(s_out, s_sel),
                                pairwise=plain_pairwise(s_out.pairwise), selection=pipe.selection_record(s_sel)))
        if progress:
            progress(0.6 + 0.4 * (k + 1) / len(spans), f"captioning segment {k + 1} of {len(spans)}")
    timings["segments"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    mode, _ = parse_segments(settings.segments)
    segmentation = {"mode": settings.segments, "detector": DETECTOR if mode == "auto" else "fixed",
                    "cuts_s": cut_times, "gaps": [list(g) for g in info.gaps],
                    "seconds": len(info.indices), "seconds_decoded": len(decoded_idx),
                    "uncaptioned": skipped}
    frames = SampledFrames(images=np.stack([whole_images[i] for i in whole]),
                           timestamps=[kept_times[row_of[i]] for i in whole], indices=whole, fps=info.fps,
                           n_frames_total=info.n_frames_total, duration_s=info.duration_s,
                           source_size=info.source_size, notes=info.notes)
    result = CaptionResult(
        video=str(video), timestamps=[float(x) for x in frames.timestamps], frame_indices=[int(x) for x in whole],
        captions=model_captions(names, hyps, texts, outcome, sel, grounding), winner=int(sel.winner),
        metric=settings.metric, tie_break=_tie_break(outcome, sel), pairwise=plain_pairwise(outcome.pairwise),
        idf=pipe.zoo.idf.describe(),
        timings={k: round(v, 4) for k, v in timings.items()},
        settings={**settings.record(), "decoders": names, "device": pipe.device}, zoo=pipe.zoo.summary(),
        video_info={"fps": float(info.fps), "duration_s": float(info.duration_s),
                    "n_frames_total": int(info.n_frames_total), "notes": list(info.notes)},
        select=settings.select, selection={**pipe.selection_record(sel), "no_grounding": pipe.zoo.no_grounding},
        segments=segments, segmentation=segmentation)
    if progress:
        progress(1.0, "done")
    if thumb_width:
        mid = {k: thumbs[seg.frame_indices[len(seg.frame_indices) // 2]] for k, seg in enumerate(segments)}
        return result, frames, mid
    return result, frames
