"""Grounding: how well each caption matches the video, by the backbone's own retrieval similarity.

CLIP4Clip's meanP similarity (the retrieval score it is trained with; docs/reference.md 1.5 for the frame embeddings): the frame embeddings are L2-normalised,
averaged over frames and L2-normalised again; the caption's text embedding (EOT token through the
text tower, `vision.text_tower`) is L2-normalised; grounding = their cosine, in [-1, 1]. Unlike the
vote, it does not ask whether the decoders agree but whether the caption fits the frames: a mistake
most decoders share scores low here (ECO, arXiv 2405.01028, weighs a CLIP score against consensus;
CLIPScore and EMScore score captions without references the same way).

Pure numpy: the pipeline passes arrays in, so the vote layer needs no model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["video_embedding", "grounding_scores"]


def _unit(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def video_embedding(frames: np.ndarray) -> np.ndarray:
    """(n, E) frame embeddings -> (E,) meanP video embedding (unit length)."""
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"frame embeddings must be a non-empty (n, E) array, got shape {frames.shape}")
    return _unit(_unit(frames).mean(axis=0))


def grounding_scores(frames: np.ndarray, texts: np.ndarray) -> list[float]:
    """Cosine between the meanP video embedding of (n, E) `frames` and each of (m, E) `texts`."""
    texts = np.asarray(texts)
    if texts.ndim != 2 or texts.shape[1] != np.asarray(frames).shape[-1]:
        raise ValueError(f"text embeddings {texts.shape} do not match frame embeddings {np.asarray(frames).shape}")
    return [float(s) for s in _unit(texts) @ video_embedding(frames)]
