"""One settings vocabulary: CaptionSettings owns names, choices, defaults and validation, and the
CLI's options are built from it."""

import dataclasses

import pytest

from c4c.cli import build_parser
from c4c.cli._options import settings_from_args
from c4c.errors import InputError
from c4c.settings import FPS_MODES, METRIC_NAMES, METRICS, PRECISIONS, CaptionSettings


def test_defaults_and_choices_live_on_the_fields():
    s = CaptionSettings()
    assert (s.metric, s.beam, s.max_frames, s.precision, s.fps_mode) == ("cider", 5, 20, "fp32", "exact")
    assert CaptionSettings.option("metric").choices == METRICS == tuple(METRIC_NAMES)
    assert CaptionSettings.option("precision").choices == PRECISIONS
    assert CaptionSettings.option("fps_mode").choices == FPS_MODES
    assert all(CaptionSettings.option(f.name).help for f in dataclasses.fields(CaptionSettings))


@pytest.mark.parametrize("bad, message", [
    (dict(metric="spice"), "unknown metric 'spice'"),
    (dict(precision="fp8"), "unknown precision 'fp8'"),
    (dict(fps_mode="fast"), "unknown fps_mode 'fast'"),
    (dict(beam=0), "beam size must be between 1 and 20"),
    (dict(max_frames=513), "max_frames must be between 1 and 512"),
    (dict(decoders=("d1", "nope")), "unknown decoder"),
    (dict(decoders=("d1",)), "at least 2 decoders"),
])
def test_check_names_what_is_wrong(bad, message):
    with pytest.raises(InputError, match=message):
        CaptionSettings(**bad).check(["d1", "d2", "d3"])


def test_cli_caption_options_are_built_from_the_settings():
    parser = build_parser("caption")
    args = parser.parse_args(["caption", "v.mp4"])
    assert settings_from_args(args) == CaptionSettings()
    sub = next(a for a in parser._actions if a.dest == "command").choices["caption"]
    choices = {a.dest: tuple(a.choices) for a in sub._actions if a.choices}
    assert choices["metric"] == METRICS and choices["precision"] == PRECISIONS and choices["fps_mode"] == FPS_MODES
    args = parser.parse_args(["caption", "v.mp4", "--metric", "meteor", "--beam", "3", "--decoders", "a, b"])
    assert settings_from_args(args) == CaptionSettings(metric="meteor", beam=3, decoders=("a", "b"))
