"""The exceptions c4c raises for bad input. Each message is one readable line that says what was
wrong and what to do; the CLI prints it without a traceback and the app shows it in the page."""

__all__ = ["C4CError", "VideoError", "CheckpointError", "VocabError", "ZooError", "InputError"]


class C4CError(Exception):
    """Base class: an error caused by the user's input, not by a bug in c4c."""


class VideoError(C4CError):
    """A video that cannot be used: missing, unreadable, no frames, too long or too large."""


class CheckpointError(C4CError):
    """A weights file that is not a usable checkpoint: wrong format, truncated, unsafe pickle,
    missing or mis-shaped keys, non-finite values."""


class VocabError(C4CError):
    """A vocabulary file that is unreadable or does not fit the decoder it is paired with."""


class ZooError(C4CError):
    """A model-zoo folder whose manifest is missing, invalid, or names files that are not there."""


class InputError(C4CError):
    """Any other bad argument: a features file of the wrong shape, an unknown metric, ..."""
