"""One app request, start to finish, without Gradio: check the upload against the caps, turn the
controls into CaptionSettings, run the shared Pipeline, and write the per-request JSON download.

Everything a request creates is local to it (settings, result, thumbnails, its download folder), and
the Pipeline is only read, so concurrent requests cannot change each other's results."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import C4CError, InputError, VideoError
from ..result import CaptionResult
from ..settings import AUTO_SELECT, METRIC_NAMES, VOTE_DECODERS, CaptionSettings, parse_scores, parse_segments
from .view import thumbnails

SEGMENT_THUMB_WIDTH = 160  # px, the timeline's thumbnails

__all__ = ["AppConfig", "CaptionService", "ResultFiles", "warm_up", "examples_cache_dir", "examples_cache"]


def _env_number(env, name: str, default: float, cast=float):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r} is not a number; unset it or give e.g. {name}={default}") from None
    if value <= 0:
        raise InputError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class AppConfig:
    max_upload_mb: float = 100.0     # C4C_MAX_UPLOAD_MB: larger uploads are refused (by Gradio and again here)
    max_duration_s: float = 300.0    # C4C_MAX_DURATION_S: longer videos are refused before decoding
    # C4C_MAX_SEGMENTED_S: the cap with segments on. Segmented captioning took 3.2-4.7 s of wall time per
    # video minute on the 2-core machine (benchmarks/segments_speed.py, 640x360, demo zoo, shared cores),
    # so 30 minutes keep one request near 2 minutes. Neither cost grows with length: a 2-hour run took
    # 14.9 s per minute at load 8-11 (a 3-minute one 29.8 at that load; a 30-minute request would take
    # ~7.5 min then) with memory flat at 2.0-3.1 GB. A 30-minute 640x360 file is often over the 100-MB
    # upload cap anyway (the generated one: 118 MB).
    max_segmented_duration_s: float = 1800.0
    concurrency: int = 2             # C4C_CONCURRENCY: requests computed at once; the rest wait in the queue
    queue_size: int = 64             # C4C_QUEUE_SIZE: waiting requests beyond this are turned away at once
    min_decoders: int = VOTE_DECODERS  # fewer captions make the leave-one-out vote meaningless
    result_ttl_s: float = 3600.0     # JSON downloads are deleted after this many seconds

    @classmethod
    def from_env(cls, env=os.environ) -> AppConfig:
        d = cls()
        return cls(max_upload_mb=_env_number(env, "C4C_MAX_UPLOAD_MB", d.max_upload_mb),
                   max_duration_s=_env_number(env, "C4C_MAX_DURATION_S", d.max_duration_s),
                   max_segmented_duration_s=_env_number(env, "C4C_MAX_SEGMENTED_S", d.max_segmented_duration_s),
                   concurrency=_env_number(env, "C4C_CONCURRENCY", d.concurrency, int),
                   queue_size=_env_number(env, "C4C_QUEUE_SIZE", d.queue_size, int))


class ResultFiles:
    """Per-request JSON downloads in one private temp folder; files older than `ttl_s` are removed
    whenever a new one is written (Gradio copies each into its own cache when serving it)."""

    def __init__(self, ttl_s: float = 3600.0, root: str | Path | None = None):
        self.ttl_s = ttl_s
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="c4c-app-results-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, result: CaptionResult) -> Path:
        self.cleanup()
        folder = self.root / uuid.uuid4().hex  # one folder per request: the download keeps a readable name
        folder.mkdir()
        path = folder / f"{Path(result.video).stem or 'video'}.c4c.json"
        path.write_text(result.to_json(indent=2) + "\n", encoding="utf-8")
        return path

    def cleanup(self, now: float | None = None) -> int:
        """Delete request folders older than ttl_s; returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            for folder in self.root.iterdir():
                try:
                    if now - folder.stat().st_mtime > self.ttl_s:
                        shutil.rmtree(folder, ignore_errors=True)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed


class CaptionService:
    """The app's requests over one read-only Pipeline."""

    def __init__(self, pipeline, config: AppConfig = AppConfig(), files: ResultFiles | None = None):
        self.pipeline = pipeline
        self.config = config
        self.files = files or ResultFiles(config.result_ttl_s)
        self.names: list[str] = list(pipeline.zoo.names)
        caps = [getattr(getattr(m, "cfg", None), "max_frames", None) for m in pipeline.zoo.decoders.values()]
        caps = [c for c in caps if isinstance(c, int) and c > 0]
        # Decoders drop frames past their own cap; offering more would silently hide the video's end.
        self.max_frames_cap: int = min(caps) if caps else 20
        self.min_decoders: int = min(self.config.min_decoders, len(self.names))

    def settings(self, metric: str, beam, max_frames, decoders: Sequence[str] | None,
                 segments: str = "none", select: str | None = None, scores=None) -> CaptionSettings:
        """Controls -> CaptionSettings; InputError on anything out of range."""
        select = select or CaptionSettings.default("select")
        rules = CaptionSettings.option("select").choices
        if select not in rules:
            raise InputError(f"unknown selection rule {select!r}; choose one of {', '.join(rules)}")
        if select not in ("consensus", AUTO_SELECT) and self.pipeline.zoo.text_tower is None:
            raise InputError(f"the {select} rule needs grounding, but {self.pipeline.zoo.no_grounding}; "
                             "choose consensus")
        if metric not in METRIC_NAMES:
            raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_NAMES)}")
        beam, max_frames = _whole(beam, "beam size"), _whole(max_frames, "max frames")
        if not 1 <= max_frames <= self.max_frames_cap:
            raise InputError(f"max frames must be between 1 and {self.max_frames_cap} (the decoders' input length), "
                             f"got {max_frames}")
        chosen = [d for d in self.names if d in set(decoders or [])]  # zoo order, duplicates dropped
        unknown = sorted(set(decoders or []) - set(self.names))
        if unknown:
            raise InputError(f"unknown decoder(s) {unknown}; this zoo has {self.names}")
        if len(chosen) < self.min_decoders:
            raise InputError(f"choose at least {self.min_decoders} decoders for a meaningful vote "
                             f"(got {len(chosen)})")
        segments = (segments or "none").strip().lower()
        parse_segments(segments)
        cap = self.config.max_duration_s if segments == "none" else self.config.max_segmented_duration_s
        scores = parse_scores(scores) if scores else CaptionSettings.default("scores")
        return CaptionSettings(select=select, metric=metric, scores=scores, beam=beam, max_frames=max_frames,
                               decoders=None if chosen == self.names else tuple(chosen),
                               max_duration_s=cap, segments=segments)

    def check_video(self, video: str | os.PathLike | None) -> Path:
        if video is None or str(video).strip() == "":
            raise InputError("no video given; upload a video, record one with the webcam, or pick an example")
        path = Path(video)
        if not path.is_file():
            raise VideoError(f"{path.name}: the upload did not arrive; try uploading it again")
        size_mb = path.stat().st_size / 2**20
        if size_mb > self.config.max_upload_mb:
            raise VideoError(f"{path.name}: the file is {size_mb:.1f} MB, over the limit of "
                             f"{self.config.max_upload_mb:g} MB; trim or re-encode it (e.g. ffmpeg -i IN -t 30 OUT.mp4)")
        return path

    def caption(self, video, metric: str = CaptionSettings.default("metric"), beam=CaptionSettings.default("beam"),
                max_frames=CaptionSettings.default("max_frames"), decoders: Sequence[str] | None = None,
                progress: Callable[[float, str], None] | None = None, segments: str = "none",
                select: str | None = None, scores=None):
        """(CaptionResult, gallery thumbnails, {segment index: thumbnail}) for one request (the last is
        empty without segments). Raises C4CError on bad input."""
        settings = self.settings(metric, beam, max_frames, decoders if decoders is not None else self.names, segments,
                                 select, scores)
        path = self.check_video(video)
        seg_thumbs: dict = {}
        try:
            if settings.segments == "none":
                result, frames = self.pipeline.caption_video(path, settings, progress)
            else:
                from ..segments import caption_segments
                result, frames, seg_thumbs = caption_segments(self.pipeline, path, settings, progress,
                                                              thumb_width=SEGMENT_THUMB_WIDTH)
        except C4CError as e:  # name the upload as the user knows it, not by the server's temp path
            raise type(e)(str(e).replace(str(path), path.name)) from None
        # The server's temp path means nothing to the user (and should not leak): keep the file name.
        result = dataclasses.replace(result, video=path.name)
        return result, thumbnails(frames.images, frames.timestamps, frames.indices), seg_thumbs


def examples_cache_dir(zoo, examples: Sequence[str | os.PathLike], base: str | os.PathLike | None = None,
                       layout: str = "") -> Path:
    """Where Gradio keeps the cached example results: one folder per (zoo, examples, page layout)
    fingerprint, so retraining the zoo, changing an example or adding an output to the page never
    serves a stale or mis-shaped cache. `base` defaults to $GRADIO_EXAMPLES_CACHE, else Gradio's
    `.gradio/cached_examples`; `layout` names the page's inputs and outputs."""
    import hashlib
    base = Path(base or os.environ.get("GRADIO_EXAMPLES_CACHE", ".gradio/cached_examples"))
    h = hashlib.sha256(layout.encode())
    folder = Path(zoo.folder)
    h.update((folder / "manifest.json").read_bytes())
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    for e in examples:
        st = Path(e).stat()
        h.update(f"{Path(e).name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return base / f"c4c-{h.hexdigest()[:16]}"


@contextlib.contextmanager
def examples_cache(folder: str | os.PathLike):
    """While gr.Examples is built, point Gradio's example cache (read from $GRADIO_EXAMPLES_CACHE at
    construction) at `folder`; the previous value is restored afterwards."""
    old = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(folder)
    try:
        yield Path(folder)
    finally:
        if old is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
        else:
            os.environ["GRADIO_EXAMPLES_CACHE"] = old


def warm_up(pipeline) -> float:
    """Run every decoder and the text tower once on dummy input, so the first real request does not
    pay for lazy start-ups; METEOR's Java process too when the default scores include it (it is
    opt-in: ~6 s and ~1.1 GB). Returns the seconds spent."""
    t = time.perf_counter()
    dummy = np.zeros((2, pipeline.zoo.backbone.embed_dim), dtype=np.float32)
    settings = CaptionSettings(beam=1, max_words=3)
    _, _, texts, _ = pipeline.caption_features(dummy, settings)
    pipeline.grounding(dummy, texts)
    if "meteor" in settings.computed_metrics():
        from ..vote.metrics import sentence_scores
        sentence_scores("meteor", [["a video of a warm up"]], ["a warm up video"])
    return time.perf_counter() - t


def _whole(x, what: str) -> int:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, got {x!r}") from None
    if v != int(v):
        raise InputError(f"{what} must be a whole number, got {x!r}")
    return int(v)
