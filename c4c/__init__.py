"""c4c: CLIP4Caption video captioning with a leave-one-out ensemble of decoders.

    import c4c
    pipe = c4c.Pipeline.from_zoo()                 # the shipped zoo in weights/demo, or a folder
    result = pipe.caption("clip.mp4", c4c.CaptionSettings(metric="cider", beam=5))
    print(result.caption, result.explain())

The public names are loaded on first use, so `import c4c` stays cheap (no torch, no transformers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["Pipeline", "CaptionSettings", "CaptionResult", "Zoo", "C4CError", "__version__"]
__version__ = "0.1.0"

_HOMES = {
    "Pipeline": "c4c.pipeline",
    "CaptionSettings": "c4c.settings",
    "CaptionResult": "c4c.result",
    "Zoo": "c4c.zoo",
    "C4CError": "c4c.errors",
}

if TYPE_CHECKING:
    from .errors import C4CError
    from .pipeline import Pipeline
    from .result import CaptionResult
    from .settings import CaptionSettings
    from .zoo import Zoo


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'c4c' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
