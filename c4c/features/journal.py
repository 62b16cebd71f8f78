"""Durable progress for a features file F: an append-only journal beside it, merged into F at the end.

`python -m c4c extract` appends each finished video to `F.partial` and fsyncs it before the next
video starts, so a killed run loses at most the video in flight, and saving one video costs one
video's bytes (rewriting F every N videos cost O(n^2) over a large run). A rerun reads the journal
back; a torn last record (a write cut short by SIGKILL or a power cut) fails its length or CRC check
and is cut away. At the end, F and the journal are merged into a new F (temporary file, fsync,
rename), failures are written to `F.errors.json` ({video id: one-line reason}), and the journal is
deleted. Between runs only video ids and record offsets are held in memory, never the features.

Record layout (little-endian): b"c4cj" | u32 header bytes | u64 payload bytes | header (UTF-8 JSON)
| payload | u32 crc32(header + payload). The first header is {"meta": {...}}: the backbone's
fingerprint and the extraction settings, so that a rerun with other ones is refused instead of
mixing features. Then {"id", "shape"} with a float32 payload, or {"id", "error"} with none; a
later record for the same id replaces an earlier one (a retried failure).
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Journal", "journal_path", "errors_path", "read_errors", "write_errors", "merge", "remove_outputs"]

_MAGIC = b"c4cj"
_HEAD = struct.Struct("<4sIQ")  # magic, header length, payload length
_CRC = struct.Struct("<I")


def journal_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def errors_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".errors.json")


def read_errors(out: str | os.PathLike) -> dict[str, str]:
    """The failures an earlier run recorded beside `out` ({} when there is no errors file)."""
    path = errors_path(out)
    if not path.exists():
        return {}
    try:
        errors = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable errors file ({type(e).__name__}); "
                         "delete it to retry every failure") from None
    if not isinstance(errors, dict) or not all(isinstance(v, str) for v in errors.values()):
        raise InputError(f"{path}: expected a JSON object of video id -> reason; delete it to retry every failure")
    return errors


def write_errors(out: str | os.PathLike, errors: Mapping[str, str]) -> None:
    """Replace the errors file atomically; no failures -> no file."""
    path = errors_path(out)
    if not errors:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(dict(sorted(errors.items())), f, indent=1, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_outputs(out: str | os.PathLike) -> None:
    """Delete F, its journal and its errors file: start over (e.g. after the backbone changed)."""
    for p in (Path(out), journal_path(out), errors_path(out)):
        p.unlink(missing_ok=True)


def _lock(f, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not on POSIX: no protection against two runs on one output
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise InputError(f"{path}: another c4c extract run is writing this journal; wait for it, "
                         "or give another --out") from None


class Journal:
    """The open, locked journal of one features file.

    `features`: id -> (offset, shape) of its latest features record; `errors`: id -> reason of ids
    whose latest record is a failure; `truncated`: bytes of a torn tail cut away on opening."""

    def __init__(self, out: str | os.PathLike, meta: Mapping):
        self.path = journal_path(out)
        self.meta = json.loads(json.dumps(dict(meta)))  # as it reads back (tuples -> lists)
        self.features: dict[str, tuple[int, tuple[int, int]]] = {}
        self.errors: dict[str, str] = {}
        self.truncated = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+b")
        _lock(self._f, self.path)
        self._scan()

    def _read_record(self, offset: int, size: int):
        """(header, payload, end offset) of the record at `offset`, or None if it is torn."""
        f = self._f
        f.seek(offset)
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return None
        magic, nh, npay = _HEAD.unpack(head)
        if magic != _MAGIC or offset + _HEAD.size + nh + npay + _CRC.size > size:
            return None
        body = f.read(nh + npay)
        (crc,) = _CRC.unpack(f.read(_CRC.size))
        if zlib.crc32(body) != crc:
            return None
        try:
            header = json.loads(body[:nh])
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return header, body[nh:], f.tell()

    def _scan(self) -> None:
        size = os.fstat(self._f.fileno()).st_size
        self._f.seek(0)
        if size >= len(_MAGIC) and self._f.read(len(_MAGIC)) != _MAGIC:
            raise InputError(f"{self.path}: not a c4c extract journal; move it away or give another --out")
        offset = 0
        while offset < size:
            rec = self._read_record(offset, size)
            if rec is None:  # a torn write: every record before it is whole (they were fsync'ed in turn)
                break
            header, _, end = rec
            if offset == 0:
                self._check_meta(header)
            elif "error" in header:
                self.errors[header["id"]] = header["error"]
                self.features.pop(header["id"], None)
            else:
                self.features[header["id"]] = (offset, tuple(header["shape"]))
                self.errors.pop(header["id"], None)
            offset = end
        if offset < size:
            self.truncated = size - offset
            self._f.truncate(offset)
            os.fsync(self._f.fileno())
        if offset == 0:  # new (or torn before its first record was whole)
            self._append({"meta": self.meta})

    def _check_meta(self, header: dict) -> None:
        if "meta" not in header:
            raise InputError(f"{self.path}: not a c4c extract journal; move it away or give another --out")
        if header["meta"] != self.meta:
            diff = sorted(k for k in set(header["meta"]) | set(self.meta) if header["meta"].get(k) != self.meta.get(k))
            raise InputError(f"{self.path} holds features of an unfinished run with another {', '.join(diff)}; "
                             "rerun that command to finish it, or delete the journal to start over "
                             "(features of different backbones or settings must not mix)")

    def _append(self, header: dict, payload: bytes = b"") -> int:
        body = json.dumps(header, ensure_ascii=False).encode("utf-8")
        offset = self._f.seek(0, os.SEEK_END)
        self._f.write(_HEAD.pack(_MAGIC, len(body), len(payload)) + body + payload
                      + _CRC.pack(zlib.crc32(body + payload)))
        self._f.flush()
        os.fsync(self._f.fileno())  # durable before the next video starts
        return offset

    def add(self, vid: str, feats: np.ndarray) -> None:
        """Record one video's float32 (n, D) features."""
        arr = np.ascontiguousarray(feats, dtype="<f4")
        shape = (int(arr.shape[0]), int(arr.shape[1]))
        self.features[vid] = (self._append({"id": vid, "shape": shape}, arr.tobytes()), shape)
        self.errors.pop(vid, None)

    def fail(self, vid: str, reason: str) -> None:
        """Record that a video could not be used, with a one-line reason."""
        self._append({"id": vid, "error": reason})
        self.errors[vid] = reason
        self.features.pop(vid, None)

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """(id, features) of every video in the journal, read one at a time."""
        size = os.fstat(self._f.fileno()).st_size
        for vid, (offset, shape) in self.features.items():
            rec = self._read_record(offset, size)
            if rec is None:
                raise InputError(f"{self.path}: the record of {vid!r} changed on disk during the run")
            yield vid, np.frombuffer(rec[1], dtype="<f4").reshape(shape).astype(np.float32)

    def dims(self) -> set[int]:
        return {shape[1] for _, shape in self.features.values()}

    def close(self) -> None:
        """Close (and unlock); a journal that recorded nothing is deleted, so a run that stopped on
        an error before its first video leaves no file behind."""
        if not self._f.closed and not self.features and not self.errors:
            self.path.unlink(missing_ok=True)
        self._f.close()


def merge(out: str | os.PathLike, journal: Journal, errors: Mapping[str, str]) -> None:
    """Fold the journal into `out` (created, possibly empty, if missing), write the errors file,
    then delete the journal: in that order, so a kill at any point loses nothing (a rerun that
    finds both the new `out` and the journal merges the same features again)."""
    from .files import iter_features, save_features
    out = Path(out)
    if journal.features or not out.exists():
        new = set(journal.features)
        old = ((vid, a) for vid, a in iter_features(out) if vid not in new) if out.exists() else iter(())
        save_features(out, itertools.chain(old, journal.arrays()))
    write_errors(out, errors)
    journal.path.unlink(missing_ok=True)
    journal.close()

