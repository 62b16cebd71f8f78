"""Result files that survive being killed: JSON lines (one per video) and Parquet part files.

JSON lines are appended one at a time, each flushed and fsync'ed before the next video starts, so a
killed run loses at most the video in flight. On start the existing file is read: its videos are
done, and a torn last line (a write cut off by the kill) is cut away. Parquet cannot be appended to,
so it is written as part files (temporary name, then an atomic rename) of `rows_per_part` videos;
a killed run loses at most the unwritten part.

Every line is either a result (`CaptionResult.to_json()`) or an error record
`{"video": ..., "error": "...", "error_type": "VideoError"}`; both carry the video's path.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..video.inputs import video_key

__all__ = ["Done", "JsonlOutput", "ParquetOutput", "open_output", "error_record"]


def error_record(video: str, err: BaseException) -> dict:
    return {"video": video, "error": str(err) or type(err).__name__, "error_type": type(err).__name__}


@dataclass
class Done:
    """What an output file already holds: video key -> the error message, or None for a caption."""
    entries: dict[str, str | None] = field(default_factory=dict)
    videos: dict[str, str] = field(default_factory=dict)   # key -> path as recorded

    def add(self, record: dict) -> None:
        key = video_key(record["video"])
        self.entries[key] = record.get("error") if "error" in record else None
        self.videos[key] = record["video"]


def _lock(f, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not on POSIX: no protection against two runs on one file
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise InputError(f"{path}: another c4c run is writing this file; wait for it, or give another --out") from None


def _check_record(rec, path: Path, lineno: int) -> dict:
    if not isinstance(rec, dict) or not isinstance(rec.get("video"), str):
        raise InputError(f"{path}:{lineno}: not a c4c result or error line (no 'video' field); "
                         "is this the right --out file?")
    return rec


class JsonlOutput:
    """Append-only JSON lines, one per video, durable line by line."""

    def __init__(self, path: str | Path, retry_errors: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+b")
        _lock(self._f, self.path)
        self.truncated = 0      # bytes of a torn last line that were cut away
        self.done = self._scan(retry_errors)

    def _scan(self, retry_errors: bool) -> Done:
        self._f.seek(0)
        data = self._f.read()
        end = data.rfind(b"\n") + 1          # everything after the last newline is a torn write
        if end < len(data):
            self.truncated = len(data) - end
            self._f.truncate(end)
            os.fsync(self._f.fileno())
        done, keep, dropped = Done(), [], False
        for n, raw in enumerate(data[:end].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                rec = _check_record(json.loads(raw), self.path, n)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise InputError(f"{self.path}:{n}: not valid JSON; fix or delete that line, then rerun") from None
            if retry_errors and "error" in rec:
                dropped = True
                continue
            done.add(rec)
            keep.append(raw)
        if dropped:  # rewrite without the error lines (atomically) so each video still appears once
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as t:
                t.write(b"".join(r + b"\n" for r in keep))
                t.flush()
                os.fsync(t.fileno())
            os.replace(tmp, self.path)
            self._f.close()
            self._f = open(self.path, "a+b")
            _lock(self._f, self.path)
        return done

    def fds(self) -> list[int]:
        """Descriptors that hold the lock: a forked child must close them, or it keeps the lock alive
        after this process is killed (flock locks belong to the open file, which fork shares)."""
        return [self._f.fileno()]

    def append(self, line: str, record: dict) -> None:
        """Write one line (a result's JSON, or an error record's) and make it durable."""
        self._f.write(line.encode("utf-8") + b"\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(record)

    def close(self) -> None:
        self._f.close()


class ParquetOutput:
    """A folder of Parquet part files with columns video, caption, winner, metric, error, error_type
    and result (the full result JSON, null for errors)."""

    def __init__(self, path: str | Path, retry_errors: bool = False, rows_per_part: int = 256):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError("Parquet output needs pyarrow: pip install pyarrow (ray[data] brings it)") from None
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: Parquet output is a folder of part files, but this is a file; "
                             "give a folder name")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lockf = open(self.path / ".lock", "a+b")
        _lock(self._lockf, self.path)
        self.rows_per_part = rows_per_part
        self._rows: list[dict] = []
        self.truncated = 0
        self.done = self._scan(retry_errors)

    def _scan(self, retry_errors: bool) -> Done:
        import pyarrow.parquet as pq
        done = Done()
        for f in sorted(self.path.glob("*.parquet.tmp")):  # a part that was being written when killed
            f.unlink()
            self.truncated += 1
        for f in sorted(self.path.glob("part-*.parquet")):
            try:
                table = pq.read_table(f, columns=["video", "error"])
            except Exception as e:
                raise InputError(f"{f}: unreadable Parquet part ({type(e).__name__}); delete it and rerun") from None
            rows = table.to_pylist()
            if retry_errors and any(r["error"] is not None for r in rows):
                full = pq.read_table(f)
                kept = full.filter(full.column("error").is_null())
                self._write_table(kept, f.name) if kept.num_rows else f.unlink()
                rows = [r for r in rows if r["error"] is None]
            for r in rows:
                done.add({"video": r["video"], **({"error": r["error"]} if r["error"] is not None else {})})
        return done

    def fds(self) -> list[int]:
        return [self._lockf.fileno()]

    def _write_table(self, table, name: str) -> None:
        import pyarrow.parquet as pq
        tmp = self.path / (name + ".tmp")
        pq.write_table(table, tmp)
        with open(tmp, "rb") as t:
            os.fsync(t.fileno())
        os.replace(tmp, self.path / name)

    def append(self, line: str, record: dict) -> None:
        res = record if "error" not in record else None
        caption = winner = None
        if res is not None:
            w = res["captions"][res["winner"]]
            caption, winner = w["caption"], w["name"]
        self._rows.append({"video": record["video"], "caption": caption, "winner": winner,
                           "metric": res["metric"] if res else None, "error": record.get("error"),
                           "error_type": record.get("error_type"), "result": line if res else None})
        self.done.add(record)
        if len(self._rows) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        if not self._rows:
            return
        name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}.parquet"
        self._write_table(pa.Table.from_pylist(self._rows, schema=_schema()), name)
        self._rows = []

    def close(self) -> None:
        self.flush()
        self._lockf.close()


def _schema():
    import pyarrow as pa
    return pa.schema([(c, pa.string()) for c in ("video", "caption", "winner", "metric", "error", "error_type", "result")])


def open_output(path: str | Path, fmt: str = "jsonl", retry_errors: bool = False):
    if fmt == "jsonl":
        return JsonlOutput(path, retry_errors)
    if fmt == "parquet":
        return ParquetOutput(path, retry_errors)
    raise InputError(f"unknown output format {fmt!r}; use jsonl or parquet")
