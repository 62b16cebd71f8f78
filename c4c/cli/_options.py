"""CLI options built from `CaptionSettings` (c4c/settings.py): names, choices, defaults and help are
written once, there; this module only spells them as argparse flags and reads them back."""

from __future__ import annotations

from ..settings import CaptionSettings, parse_scores

__all__ = ["add_settings_options", "settings_from_args"]

_TYPES = {"beam": int, "max_frames": int, "max_words": int, "max_duration_s": float, "min_segment_s": int, "max_segment_s": int}


def add_settings_options(parser, names: tuple[str, ...]) -> None:
    """--metric, --beam, ... for the named CaptionSettings fields (flag = field name with dashes)."""
    for name in names:
        opt, default = CaptionSettings.option(name), CaptionSettings.default(name)
        kwargs = dict(default=default, help=opt.help)
        if opt.choices is not None:
            kwargs["choices"] = list(opt.choices)
        if name in _TYPES:
            kwargs["type"] = _TYPES[name]
        parser.add_argument("--" + name.replace("_", "-"), **kwargs)


def settings_from_args(args, **extra) -> CaptionSettings:
    """The CaptionSettings of parsed arguments (fields without a flag keep their defaults)."""
    values = {}
    for name in CaptionSettings.__dataclass_fields__:
        if hasattr(args, name):
            values[name] = getattr(args, name)
    if isinstance(values.get("decoders"), str):
        values["decoders"] = tuple(d.strip() for d in values["decoders"].split(",")) if values["decoders"] else None
    if isinstance(values.get("scores"), str):
        values["scores"] = parse_scores(values["scores"])
    return CaptionSettings(**{**values, **extra})
