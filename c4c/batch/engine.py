"""The local batch engine, and what both engines share: the plan (which videos still need a line),
the recorder (output file + progress bar + tally) and the summary.

Locally, a torch DataLoader's worker processes decode and crop upcoming videos while the main process
runs the backbone and the decoders on the current one; the models are loaded once, in the main
process. Results keep the input order.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

from ..cpu import available_cores
from ..errors import C4CError
from ..pipeline import CaptionSettings, Pipeline
from ..video.inputs import VideoInput, in_shard, video_key
from .output import error_record
from .work import BatchPipeline, Decoded, caption_decoded, decode

__all__ = ["BatchSummary", "plan", "Recorder", "caption_local"]


@dataclass
class BatchSummary:
    out: str
    selected: int = 0            # videos in this shard
    already_done: int = 0        # captioned by an earlier run (skipped)
    already_failed: int = 0      # recorded as failed by an earlier run (skipped; --retry-errors redoes them)
    todo: int = 0
    captioned: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)  # (video, message), this run's

    @property
    def per_minute(self) -> float:
        done = self.captioned + self.failed
        return 60.0 * done / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every video of the shard has a caption line (none failed, none left)."""
        return (not self.interrupted and self.failed == 0 and self.already_failed == 0
                and self.captioned + self.already_done == self.selected)

    def text(self, max_failures: int = 10) -> str:
        head = "interrupted" if self.interrupted else "done"
        lines = [f"{head}: {self.captioned} captioned, {self.failed} failed in {self.seconds:.1f} s "
                 f"({self.per_minute:.1f} videos/min); {self.selected} videos in this run's selection, "
                 f"{self.already_done + self.already_failed} were already in {self.out}"
                 + (f" ({self.already_failed} as failures; --retry-errors redoes them)" if self.already_failed else "")]
        left = self.selected - self.already_done - self.already_failed - self.captioned - self.failed
        if left > 0:
            lines.append(f"  {left} videos left: rerun the same command to continue")
        for video, msg in self.failures[:max_failures]:  # c4c's messages usually start with the path
            lines.append(f"  failed: {msg}" if msg.startswith(video) else f"  failed: {video}: {msg}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more failures (see the error lines in {self.out})")
        return "\n".join(lines)


def plan(videos: list[VideoInput], shard: tuple[int, int], output) -> tuple[list[VideoInput], BatchSummary]:
    """The shard's videos that the output does not hold yet, in order, and the summary so far."""
    mine = [v for v in videos if in_shard(v, *shard)]
    s = BatchSummary(out=str(output.path), selected=len(mine))
    todo = []
    for v in mine:
        key = video_key(v.path)
        if key not in output.done.entries:
            todo.append(v)
        elif output.done.entries[key] is None:
            s.already_done += 1
        else:
            s.already_failed += 1
    s.todo = len(todo)
    return todo, s


class Recorder:
    """Writes each finished video to the output and advances the progress bar and the tally."""

    def __init__(self, output, summary: BatchSummary, progress: bool = True):
        from tqdm import tqdm
        self.output, self.summary = output, summary
        self._t0 = time.perf_counter()
        tty = sys.stderr.isatty()
        self.bar = tqdm(total=summary.todo, unit="video", desc="captioning", file=sys.stderr, dynamic_ncols=True,
                        disable=not progress, mininterval=0.5 if tty else 15.0, smoothing=0.1)

    def result(self, line: str, record: dict) -> None:
        self.output.append(line, record)
        self.summary.captioned += 1
        self._tick()

    def error(self, record: dict) -> None:
        import json
        self.output.append(json.dumps(record, ensure_ascii=False), record)
        self.summary.failed += 1
        self.summary.failures.append((record["video"], record["error"]))
        self._tick()

    def _tick(self) -> None:
        if self.summary.failed:
            self.bar.set_postfix(failed=self.summary.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> BatchSummary:
        self.bar.close()
        self.summary.seconds = time.perf_counter() - self._t0
        return self.summary


def caption_one(pipe: BatchPipeline, item: Decoded, settings: CaptionSettings):
    """(json line, record) for one decoded video; a failure becomes an error record, never an exception."""
    try:
        result = caption_decoded(pipe, item, settings)
    except C4CError as e:
        return None, error_record(item.video, e)
    except Exception as e:  # noqa: BLE001 - a bug or a resource problem: say so loudly, keep going
        if item.error is None:
            print(f"unexpected error on {item.video}:\n{traceback.format_exc()}", file=sys.stderr)
        return None, error_record(item.video, e)
    return result.to_json(), result.to_dict()


class _Decoding:
    """A map-style dataset over the videos to do; each item is decoded in a DataLoader worker."""

    def __init__(self, videos: list[str], settings: CaptionSettings, image_size: int):
        self.videos, self.settings, self.image_size = videos, settings, image_size

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> Decoded:
        return decode(i, self.videos[i], self.settings, self.image_size)


def _identity(x):
    return x


def _close(fds: list[int], worker_id: int) -> None:
    # Runs in each forked worker: drop its copy of the output's descriptor, so that if the main
    # process is killed, the lock goes with it instead of living on in an orphaned worker.
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def caption_local(pipe: Pipeline, todo: list[VideoInput], recorder: Recorder, settings: CaptionSettings,
                  workers: int = 1, threads: int | None = None) -> BatchSummary:
    """Caption `todo` in order: decoding in `workers` DataLoader processes (0 = in this process)
    overlapping the model work here, which uses `threads` torch threads on CPU (default: the cores
    the workers leave, at least 1). Each video's line is durable before the next one starts."""
    import torch
    from torch.utils.data import DataLoader
    settings.check(pipe.zoo.names)
    bp = BatchPipeline(pipe)
    data = _Decoding([v.path for v in todo], settings, pipe.zoo.backbone.image_size)
    fds = getattr(recorder.output, "fds", lambda: [])()
    loader = DataLoader(data, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_identity,
                        prefetch_factor=2 if workers else None, worker_init_fn=functools.partial(_close, fds))
    before = torch.get_num_threads()
    if pipe.device == "cpu":  # leave the decoding workers their cores: oversubscribed OpenMP threads spin
        torch.set_num_threads(threads or max(1, min(before, available_cores() - workers)))
    try:
        for item in loader:
            line, record = caption_one(bp, item, settings)
            recorder.result(line, record) if line is not None else recorder.error(record)
    except KeyboardInterrupt:
        recorder.summary.interrupted = True
    finally:
        torch.set_num_threads(before)
    return recorder.close()
