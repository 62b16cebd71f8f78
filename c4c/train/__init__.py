"""Training c4c's own models on its synthetic data: the CLIP backbone (CLIP4Clip meanP contrastive,
`backbone.py` on `clip_model.py`) and the caption decoders. Nothing is imported here, so
`python -m c4c` stays fast; import the submodules you need."""

__all__: list[str] = []
