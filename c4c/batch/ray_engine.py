"""The batch run on Ray Data, from one machine to a cluster (`python -m c4c caption DIR --out F --engine ray`).

    paths --(CPU tasks)--> decode + crop --(actors: models loaded once, GPU when there is one)-->
    backbone, decoders, ensemble vote --> JSON lines / Parquet, written by the driver

The stages are the local engine's own (`c4c.batch.work`), so each video's result is the one the local
engine gives. The driver streams results as they finish into the same resumable output, so a killed
Ray run resumes exactly like a local one. Videos and the zoo folder must be readable at the same
(absolute) paths on every node: a shared file system, or the same copy everywhere. c4c itself is
shipped to the workers (`runtime_env` py_modules); its requirements must be installed on every node.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from .engine import Recorder, caption_one
from .work import BatchPipeline, Decoded, decode, zoo_image_size
from ..errors import InputError
from ..pipeline import CaptionSettings

__all__ = ["caption_ray", "import_ray"]

ACTOR_CPUS = 1  # CPUs (= torch threads) per model actor; scale with more actors, not more threads
DECODE_MEMORY = 512 * 2**20  # bytes reserved per decoding task (a worker with torch imported: ~250 MiB)
MISSING = "the Ray engine needs Ray Data: pip install 'ray[data]' (or pip install -r requirements-ray.txt)"


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError(MISSING) from None
    return ray


def _decode_batch(batch: dict, settings: CaptionSettings, image_size: int) -> dict:
    """Ray task: decode + crop each video of the batch; the Decoded travels pickled (an error inside)."""
    payloads = []
    for i, video, path in zip(batch["index"], batch["video"], batch["path"]):
        item = decode(int(i), str(video), settings, image_size, open_path=str(path))
        if item.error is not None and not _picklable(item.error):
            item.error = RuntimeError(f"{type(item.error).__name__}: {item.error}")
        payloads.append(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    return {"index": batch["index"], "video": batch["video"], "payload": np.array(payloads, dtype=object)}


def _picklable(e: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(e))
        return True
    except Exception:  # noqa: BLE001
        return False


class _CaptionActor:
    """Ray actor: loads the zoo once, then runs the model half of every video it is given."""

    def __init__(self, zoo_dir: str, device: str, settings: CaptionSettings, threads: int = 1):
        import torch

        from ..pipeline import Pipeline
        torch.set_num_threads(threads)  # = the CPUs the actor reserved; explicit, so results never depend on the node
        self.settings = settings
        self.pipe = BatchPipeline(Pipeline.from_zoo(zoo_dir, device=device, cache_size=0))

    def __call__(self, batch: dict) -> dict:
        lines, ok = [], []
        for payload in batch["payload"]:
            item: Decoded = pickle.loads(payload)
            line, record = caption_one(self.pipe, item, self.settings)
            lines.append(line if line is not None else json.dumps(record, ensure_ascii=False))
            ok.append(line is not None)
        return {"index": batch["index"], "video": batch["video"], "line": np.array(lines, dtype=object),
                "ok": np.array(ok)}


def _init(ray, address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (and should shut it down)."""
    if ray.is_initialized():
        return False
    import logging

    import c4c
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False,
                 runtime_env={"py_modules": [c4c]})
    except ConnectionError as e:
        raise InputError(f"cannot reach the Ray cluster at {address!r} ({e}); check --ray-address") from None
    return True


def caption_ray(zoo_dir: str | Path, todo: list, recorder: Recorder, settings: CaptionSettings,
                device: str = "auto", actors: int | None = None, decode_tasks: int | None = None,
                address: str | None = None):
    """Caption `todo` (VideoInput list) on Ray Data, writing through `recorder` as results arrive.
    `actors` model actors (default: 2 per GPU so the CPU vote overlaps GPU work, else 1);
    `decode_tasks` caps decoding tasks in flight (default: as many as Ray's free CPUs allow)."""
    ray = import_ray()
    import logging
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the driver's bar and summary report progress
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device {device!r}: the Ray engine takes auto, cpu or cuda")
    if not todo:
        return recorder.close()
    zoo_dir = str(Path(zoo_dir).resolve())
    image_size = zoo_image_size(zoo_dir)
    started = _init(ray, address)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False   # the driver's own bar counts videos
        ctx.verbose_progress = False
        gpus = int(ray.cluster_resources().get("GPU", 0)) if device != "cpu" else 0
        if device == "cuda" and not gpus:
            raise InputError("--device cuda: the Ray cluster has no GPUs; use --device cpu or auto")
        n_actors = actors or (2 * gpus if gpus else 1)
        if n_actors < 1:
            raise InputError(f"--actors must be at least 1, got {n_actors}")
        gpu_share = min(1.0, gpus / n_actors) if gpus else 0.0
        items = [{"index": k, "video": v.path, "path": os.path.abspath(v.path)} for k, v in enumerate(todo)]
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 2000))
        # A decode holds up to max_frames frames (<= 720p after frames.py's downscale) plus crops:
        # reserving memory for it keeps a node from running more decodes than it can hold, and,
        # since the two stages' resource requests then differ, stops Ray from fusing decoding into
        # the model actors, where it would run in series with the model work instead of beside it.
        ds = ds.map_batches(_decode_batch, batch_size=1, num_cpus=1, memory=DECODE_MEMORY,
                            fn_kwargs={"settings": settings, "image_size": image_size},
                            compute=ray.data.TaskPoolStrategy(size=decode_tasks) if decode_tasks else None)
        ds = ds.map_batches(_CaptionActor, batch_size=1, num_cpus=ACTOR_CPUS, num_gpus=gpu_share,
                            fn_constructor_kwargs={"zoo_dir": zoo_dir, "device": "cuda" if gpus else "cpu",
                                                   "settings": settings, "threads": ACTOR_CPUS},
                            compute=ray.data.ActorPoolStrategy(size=n_actors))
        try:
            for row in ds.iter_rows():
                line = str(row["line"])
                record = json.loads(line)
                recorder.result(line, record) if bool(row["ok"]) else recorder.error(record)
        except KeyboardInterrupt:
            recorder.summary.interrupted = True
    finally:
        if started:
            ray.shutdown()
    return recorder.close()

