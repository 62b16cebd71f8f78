"""Per-video frame-feature files: the reference's pickle and an equivalent `.npz`.

Layout (SPEC 1.5): a mapping video id (str) -> float32 array (n_frames, D), one row per 1-fps frame.

* `.pickle` / `.pkl`: exactly the reproduction's `MSRVTT_CLIP4Clip_features.pickle` (a pickled plain
  dict of numpy arrays). Pickles can run code when loaded, so `load_features` reads them with an
  unpickler that only knows how to rebuild numpy arrays and refuses every other class or function.
* `.npz`: one array per video id, read with `np.load(allow_pickle=False)`: safe by construction and
  lazily loaded. Same content; use it when you do not need the reference format.

Writes are atomic (temporary file + rename), so an interrupted extraction never leaves a broken file.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["save_features", "load_features", "FEATURE_SUFFIXES"]

FEATURE_SUFFIXES = (".pickle", ".pkl", ".npz")

# What a pickled dict of numpy arrays needs, across numpy 1.x (numpy.core) and 2.x (numpy._core),
# for pickle protocols up to 5 (protocol 5 rebuilds arrays with _frombuffer). Nothing else.
_ALLOWED = {(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")}
_ALLOWED |= {(mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")}
_ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}
_ALLOWED.add(("_codecs", "encode"))  # protocol 2 stores array bytes as latin-1 text; a pure function


class _Refused(pickle.UnpicklingError):
    """The pickle names a class or function outside _ALLOWED."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name} is not allowed in a features pickle")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise InputError(f"{path}: unknown features format {suffix!r}; use one of {', '.join(FEATURE_SUFFIXES)}")
    return "npz" if suffix == ".npz" else "pickle"


def _check(feats: Mapping, source) -> dict[str, np.ndarray]:
    if not isinstance(feats, Mapping):
        raise InputError(f"{source}: expected a dict of video id -> array, found {type(feats).__name__}")
    out = {}
    for vid, arr in feats.items():
        if not isinstance(vid, str):
            raise InputError(f"{source}: video ids must be strings, found {type(vid).__name__} {vid!r}")
        if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind != "f":
            what = f"{arr.dtype} {list(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise InputError(f"{source}: features of {vid!r} must be a float array (n_frames, D), found {what}")
        out[vid] = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a features file (`.pickle`/`.pkl` reference layout, or `.npz`) -> {video id: float32 (n, D)}.

    Raises InputError for a missing, truncated, foreign or unsafe file."""
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise InputError(f"{path}: no such features file")
    try:
        if kind == "npz":
            with np.load(path, allow_pickle=False) as z:
                feats = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as f:
                feats = _ArrayUnpickler(f).load()
    except _Refused as e:
        raise InputError(f"{path}: refused to load: {e}; a features pickle may hold only numpy arrays") from None
    except (pickle.UnpicklingError, EOFError, ValueError, OSError, zipfile.BadZipFile, TypeError, AttributeError) as e:
        raise InputError(f"{path}: unreadable features file ({type(e).__name__}: {str(e)[:120]}); re-extract it") from None
    return _check(feats, path)


def save_features(path: str | os.PathLike, feats: Mapping[str, np.ndarray]) -> Path:
    """Write {video id: (n, D)} as float32, atomically; the format follows the suffix."""
    path = Path(path)
    kind = _kind(path)
    feats = _check(feats, "features to save")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if kind == "npz":
            buf = io.BytesIO()
            np.savez(buf, **feats)
            tmp.write_bytes(buf.getvalue())
        else:
            with open(tmp, "wb") as f:
                pickle.dump(dict(feats), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
