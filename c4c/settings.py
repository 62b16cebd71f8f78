"""The one vocabulary of c4c's settings: names, choices, defaults and validation.

`CaptionSettings` is what a caption request may change. Each field carries an `Option` (help text,
page label, choices or bounds); the CLI's options (`c4c.cli._options`) and the app's controls are
built from them, so a name, a choice or a default is written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import InputError

__all__ = ["CaptionSettings", "Option", "parse_segments", "parse_scores", "METRIC_NAMES", "METRICS", "DEFAULT_SCORES", "PRECISIONS", "FPS_MODES", "CROPS",
           "MASKS", "MIN_DECODERS", "VOTE_DECODERS", "SELECT_RULES", "AUTO_SELECT"]

# Metric key -> display name. The order is the tables' column order and the ensemble's tie-break order.
METRIC_NAMES = {"cider": "CIDEr-D", "bleu4": "BLEU-4", "meteor": "METEOR", "rouge": "ROUGE-L"}
METRICS = tuple(METRIC_NAMES)
# Scores computed for every caption (the tables' columns and the vote's tie-break); the selecting
# metric is always added. METEOR is opt-in: its Java process takes ~6 s of CPU and ~1.1 GB to start,
# more than everything else a first caption costs (benchmarks/cold_start.py).
DEFAULT_SCORES = ("cider", "bleu4", "rouge")
# Decoder arithmetic: "fp32" gives the reference code's tokens; "int8" and "bf16" are faster or
# smaller opt-ins that change a caption now and then (benchmarks/README.md measures how often).
PRECISIONS = ("fp32", "int8", "bf16")
# Frame times: "exact" seconds (t = 0, 1, 2 s) or "reference": every int(fps)-th frame, as the
# reference code (docs/reference.md, "Frame sampling").
FPS_MODES = ("exact", "reference")
# Preprocessing crop: "c4c" (exact centre crop) or "repro" (the reference's arithmetic).
CROPS = ("c4c", "repro")
# Video mask conventions of the decoders (docs/reference.md, "Video mask").
MASKS = ("repro", "frames", "ones")
# Selection rules (vote/selection.py): the leave-one-out vote, the caption closest to the video by the
# backbone's text tower, or both standardised and weighed (w from the zoo's manifest).
SELECT_RULES = ("consensus", "grounding", "combined")
# A setting may also ask for the zoo's own choice: the rule its validation split scored best
# (manifest "selection" -> "best_rule"), or consensus for a zoo without a text tower.
AUTO_SELECT = "auto"
MIN_DECODERS = 2   # a leave-one-out vote needs at least 2 captions
VOTE_DECODERS = 3  # ... and 3 to mean anything: the app's floor
# Segmented captioning (c4c/segments.py): "none" (one caption per video), "auto" (a caption per detected
# scene) or "every:SECONDS" (fixed-length segments).
SEGMENT_MODES = ("none", "auto", "every:SECONDS")


def parse_scores(value) -> tuple[str, ...]:
    """"all" / "cider,meteor" / a sequence of metric keys -> a tuple in METRICS order; else InputError."""
    items = [str(v).strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    items = [v for v in items if v]
    if items == ["all"]:
        return METRICS
    unknown = [v for v in items if v not in METRICS]
    if unknown or not items:
        raise InputError(f"unknown score(s) {unknown or value!r}; give 'all' or a comma-separated list of "
                         f"{', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in items)


def parse_segments(value: str) -> tuple[str, float | None]:
    """"none" -> ("none", None); "auto" -> ("auto", None); "every:30" -> ("every", 30.0); else InputError."""
    text = str(value).strip().lower()
    if text in ("none", "auto"):
        return text, None
    if text.startswith("every:"):
        try:
            seconds = float(text[len("every:"):])
        except ValueError:
            seconds = float("nan")
        if seconds >= 1 and seconds < float("inf"):
            return "every", seconds
        raise InputError(f"segments {value!r}: every:SECONDS needs a number of seconds of at least 1, e.g. every:30")
    raise InputError(f"unknown segments {value!r}; choose one of {', '.join(SEGMENT_MODES)}")


@dataclass(frozen=True)
class Option:
    help: str                                   # one line for --help
    label: str = ""                             # the page's control label ("" = not on the page)
    choices: tuple[str, ...] | None = None      # allowed values, when a closed list
    bounds: tuple[int, int] | None = None       # inclusive range, for whole numbers
    page_max: int | None = None                 # the page's slider end, when below bounds[1]


def _opt(default, **option) -> Any:
    return field(default=default, metadata={"option": Option(**option)})


@dataclass(frozen=True)
class CaptionSettings:
    metric: str = _opt("cider", choices=METRICS, label="Metric that selects the winner",
                       help="metric whose leave-one-out score picks the winner (default: cider = CIDEr-D)")
    select: str = _opt(AUTO_SELECT, choices=(AUTO_SELECT,) + SELECT_RULES, label="Selection rule",
                       help="how the winner is chosen: consensus (the leave-one-out vote, the paper's), grounding "
                            "(the caption closest to the video by the backbone's text tower), combined (both, "
                            "standardised, grounding weighed by the zoo's tuned w) or auto (default: the rule the "
                            "zoo's validation split scored best, consensus for a zoo without a text tower)")
    scores: tuple[str, ...] = _opt(DEFAULT_SCORES, label="Scores computed (the selecting metric always is)",
                                   help="leave-one-out scores computed for every caption: 'all' or a comma-separated "
                                        "list of cider, bleu4, meteor, rouge; the selecting metric is always added "
                                        "(default: cider,bleu4,rouge; METEOR starts a Java process, ~6 s the first time)")
    beam: int = _opt(5, bounds=(1, 20), page_max=10, label="Beam size (1 = greedy)",
                     help="beam width, 1 = greedy (default 5)")
    max_frames: int = _opt(20, bounds=(1, 512), label="Max frames (1 per second, sampled uniformly)",
                           help="frames (1 per second) fed to the decoders, subsampled uniformly (default 20)")
    decoders: tuple[str, ...] | None = _opt(None, label="Decoders that vote",
                                            help="comma-separated decoder names (default: all)")
    fps_mode: str = _opt("exact", choices=FPS_MODES,
                         help="frame times: exact seconds, or the reference code's integer-truncated fps")
    max_words: int | None = _opt(None, help="cap on generated tokens (default: each decoder's own setting)")
    max_duration_s: float | None = _opt(None, help="refuse videos longer than this many seconds")
    precision: str = _opt("fp32", choices=PRECISIONS,
                          help="decoder arithmetic: fp32 (default, the reference's tokens) or the opt-ins int8 "
                               "(CPU: ~4x less weight traffic) and bf16; the opt-ins change some captions "
                               "(agreement measured in benchmarks/README.md)")
    segments: str = _opt("none", label="Segments (a caption per scene)",
                         help="none (default: one caption for the whole video), auto (a caption per detected "
                              "scene, with its times) or every:SECONDS (segments of that length)")
    min_segment_s: int = _opt(2, bounds=(1, 600), label="Shortest segment (s)",
                              help="segments: shortest segment in seconds; closer scene changes are merged (default 2)")
    max_segment_s: int = _opt(60, bounds=(1, 3600), label="Longest segment (s)",
                              help="segments: longer scenes are split into equal parts of at most this many "
                                   "seconds (default 60)")

    @staticmethod
    def option(name: str) -> Option:
        """The Option (help, label, choices, bounds) of a field."""
        for f in fields(CaptionSettings):
            if f.name == name:
                return f.metadata["option"]
        raise KeyError(name)

    def record(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists): what a result stores as its settings."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def resolve(self, zoo_rule: str) -> CaptionSettings:
        """These settings with select "auto" replaced by the zoo's rule (zoo.default_select)."""
        return replace(self, select=zoo_rule) if self.select == AUTO_SELECT else self

    def computed_metrics(self) -> tuple[str, ...]:
        """What the vote computes: `scores` plus the selecting metric, in METRICS order."""
        want = set(parse_scores(self.scores)) | {self.metric}
        return tuple(m for m in METRICS if m in want)

    @staticmethod
    def default(name: str):
        return CaptionSettings.__dataclass_fields__[name].default

    def check(self, available: list[str]) -> None:
        """InputError (one line) on any value out of its choices or bounds, or a decoder this zoo lacks."""
        for f in fields(self):
            opt, value = f.metadata["option"], getattr(self, f.name)
            if opt.choices is not None and value not in opt.choices:
                raise InputError(f"unknown {f.name} {value!r}; choose one of {', '.join(opt.choices)}")
            if opt.bounds is not None and not opt.bounds[0] <= value <= opt.bounds[1]:
                what = {"beam": "beam size"}.get(f.name, f.name)
                raise InputError(f"{what} must be between {opt.bounds[0]} and {opt.bounds[1]}, got {value}")
        parse_scores(self.scores)
        parse_segments(self.segments)
        if self.min_segment_s > self.max_segment_s:
            raise InputError(f"min_segment_s ({self.min_segment_s}) must not exceed max_segment_s ({self.max_segment_s})")
        if self.decoders is not None:
            unknown = [d for d in self.decoders if d not in available]
            if unknown:
                raise InputError(f"unknown decoder(s) {unknown}; this zoo has {available}")
            if len(self.decoders) < MIN_DECODERS:
                raise InputError(f"choose at least {MIN_DECODERS} decoders ({VOTE_DECODERS} or more for a "
                                 "meaningful vote)")
