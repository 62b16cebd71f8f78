"""Captioning a whole corpus: `python -m c4c caption DIR --out captions.jsonl`.

inputs (folders, globs, lists; shards) -> output (resumable JSON lines / Parquet parts) ->
work (decode | caption, the two halves of one video) -> engine (local DataLoader; `ray_engine` for Ray).
"""

from .engine import BatchSummary, Recorder, caption_local, plan
from ..video.inputs import VideoInput, find_videos, in_shard, parse_shard
from .output import JsonlOutput, ParquetOutput, error_record, open_output
from .work import BatchPipeline, Decoded, caption_decoded, decode, zoo_image_size

__all__ = ["find_videos", "parse_shard", "in_shard", "VideoInput", "open_output", "JsonlOutput", "ParquetOutput",
           "error_record", "plan", "Recorder", "BatchSummary", "caption_local", "decode", "caption_decoded",
           "Decoded", "BatchPipeline", "zoo_image_size"]
