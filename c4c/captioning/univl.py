"""Initialising a caption model from UniVL pre-training weights (`univl.pretrained.bin`), as the
CLIP4Caption reproduction does (reference.md 2.4, 2.8), with a report of what was copied and what was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .model import _TIED, _WORD, CaptionModel
from ..checkpoints import check_finite, load_state_dict
from ..errors import CheckpointError

__all__ = ["LoadReport", "init_from_univl"]


@dataclass(frozen=True)
class LoadReport:
    """What `init_from_univl` did, key by key (model key names)."""
    source: str                                                        # the file read
    loaded: tuple[str, ...] = ()                                       # copied from the file
    skipped_shape: tuple[tuple[str, tuple, tuple], ...] = ()           # (key, expected, found): kept fresh init
    missing: tuple[str, ...] = ()                                      # no counterpart in the file: kept fresh init
    unused: tuple[str, ...] = field(default=(), repr=False)            # file keys that fed nothing

    def summary(self) -> str:
        lines = [f"{self.source}: loaded {len(self.loaded)}, shape mismatch {len(self.skipped_shape)}, "
                 f"missing {len(self.missing)}, unused {len(self.unused)}"]
        lines += [f"  kept fresh (shape {list(e)} vs {list(f)} in file): {k}" for k, e, f in self.skipped_shape]
        lines += [f"  kept fresh (not in file): {k}" for k in self.missing]
        return "\n".join(lines)


# Where a caption-model key may also be found in a UniVL file: the decoder's embeddings are BERT's.
_UNIVL_ALIASES = {
    _WORD: ("bert.embeddings.word_embeddings.weight",),
    "decoder.embeddings.position_embeddings.weight": ("bert.embeddings.position_embeddings.weight",),
}


def init_from_univl(model: CaptionModel, path: str | Path) -> LoadReport:
    """Initialise `model` from `univl.pretrained.bin` the way the reproduction does (reference.md 2.4, 2.8).

    Non-strict, by name: visual layers 0..L-1 and decoder layers 0..L-1 (extra file layers unused),
    embeddings and classifier from `decoder.*` (falling back to `bert.*`). Keys whose shapes differ
    (e.g. LN/Linear over 1024-d S3D input vs 512-d CLIP) keep their fresh init, as the reference
    logs and skips them. Raises CheckpointError if nothing at all fits.
    """
    src = load_state_dict(path)
    # The reference renames TF-style gamma/beta LayerNorm names.
    src = {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in src.items()}
    targets = {k: v for k, v in model.state_dict(keep_vars=True).items() if k != _TIED}
    plan, used, skipped, missing = {}, set(), [], []  # plan: model key -> file key to copy
    for key, param in targets.items():
        name = next((n for n in (key, *_UNIVL_ALIASES.get(key, ())) if n in src), None)
        if name is None:
            missing.append(key)
            continue
        used.add(name)
        if tuple(src[name].shape) != tuple(param.shape):
            skipped.append((key, tuple(param.shape), tuple(src[name].shape)))
        else:
            plan[key] = name
    check_finite({n: src[n] for n in plan.values()}, path)  # only what is copied: unused heads may be anything
    with torch.no_grad():
        for key, name in plan.items():
            targets[key].copy_(src[name])
    loaded = list(plan)
    if not loaded:
        raise CheckpointError(f"{path}: no key of the caption model matches this file; is it univl.pretrained.bin?")
    if _WORD in loaded:
        used.add(_TIED)  # the file's classifier weight is the same tensor as its word embedding
    return LoadReport(source=str(path), loaded=tuple(loaded), skipped_shape=tuple(skipped), missing=tuple(missing),
                      unused=tuple(k for k in src if k not in used))
