"""Per-video frame-feature files: the reference's pickle and an equivalent `.npz`.

Layout (reference.md 1.5): a mapping video id (str) -> float32 array (n_frames, D), one row per 1-fps frame.

* `.pickle` / `.pkl`: exactly the reproduction's `MSRVTT_CLIP4Clip_features.pickle` (a pickled plain
  dict of numpy arrays). Pickles can run code when loaded, so `load_features` reads them with an
  unpickler that only knows how to rebuild numpy arrays and refuses every other class or function.
* `.npz`: one array per video id, read with `np.load(allow_pickle=False)`: safe by construction and
  lazily loaded. Same content; use it when you do not need the reference format.

Writes are atomic and durable (temporary file, fsync, rename), so an interrupted extraction never
leaves a broken file. `.npz` is written and read array by array (`iter_features`), so merging a large
file holds one video's features in memory, not all of them; a `.pickle` is one pickled dict and is
always read and written whole.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["save_features", "load_features", "iter_features", "FEATURE_SUFFIXES"]

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


def _check_one(vid, arr, source) -> np.ndarray:
    if not isinstance(vid, str):
        raise InputError(f"{source}: video ids must be strings, found {type(vid).__name__} {vid!r}")
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind != "f":
        what = f"{arr.dtype} {list(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise InputError(f"{source}: features of {vid!r} must be a float array (n_frames, D), found {what}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check(feats: Mapping, source) -> dict[str, np.ndarray]:
    if not isinstance(feats, Mapping):
        raise InputError(f"{source}: expected a dict of video id -> array, found {type(feats).__name__}")
    return {vid: _check_one(vid, arr, source) for vid, arr in feats.items()}


_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, OSError, zipfile.BadZipFile, TypeError, AttributeError)


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a features file (`.pickle`/`.pkl` reference layout, or `.npz`) -> {video id: float32 (n, D)}.

    Raises InputError for a missing, truncated, foreign or unsafe file."""
    return dict(iter_features(path))


def iter_features(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """(video id, float32 (n, D)) pairs of a features file, checked as `load_features` checks them;
    an `.npz` is read one array at a time, a pickle all at once (it is a single object)."""
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise InputError(f"{path}: no such features file")
    try:
        if kind == "npz":
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    yield k, _check_one(k, z[k], path)
            return
        with open(path, "rb") as f:
            feats = _ArrayUnpickler(f).load()
    except _Refused as e:
        raise InputError(f"{path}: refused to load: {e}; a features pickle may hold only numpy arrays") from None
    except _UNREADABLE as e:
        raise InputError(f"{path}: unreadable features file ({type(e).__name__}: {str(e)[:120]}); re-extract it") from None
    yield from _check(feats, path).items()


def save_features(path: str | os.PathLike, feats: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]) -> Path:
    """Write {video id: (n, D)} (a mapping, or (id, array) pairs with distinct ids) as float32,
    atomically and durably; the format follows the suffix. Pairs go to an `.npz` one at a time."""
    path = Path(path)
    kind = _kind(path)
    pairs = feats.items() if isinstance(feats, Mapping) else feats
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if kind == "npz":
                _write_npz(f, pairs)
            else:
                data = {vid: _check_one(vid, arr, "features to save") for vid, arr in pairs}
                pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the file
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_npz(f, pairs: Iterable[tuple[str, np.ndarray]]) -> None:
    # What np.savez writes (stored, one `<id>.npy` member per video, zip64 forced as numpy does),
    # but member by member, so the whole mapping never has to be in memory at once.
    seen = set()
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for vid, arr in pairs:
            arr = _check_one(vid, arr, "features to save")
            if vid in seen:
                raise ValueError(f"video id {vid!r} given twice")
            seen.add(vid)
            with zf.open(vid + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows); the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
