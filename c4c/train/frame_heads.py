"""Linear read-out heads on the frame embedding, used only while pre-training the backbone.

They are linear on purpose: what a linear head can read, the caption decoders (whose first layer is
linear too) can read. After training they double as held-out linear probes: `FrameHeads.scores` on
clips no step trained on is the probe table of docs/synthetic-data.md.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..synth.scene import COLOURS, SHAPES
from .frame_targets import SLOTS, FrameTargets

__all__ = ["FrameHeads", "targets_to_torch"]

_NS, _NC = len(SHAPES), len(COLOURS)
_PER_SLOT = 1 + _NS + _NC + 3 + 2  # exists, shape logits, colour logits, x y r, cos sin


def targets_to_torch(t: FrameTargets) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(getattr(t, k))) for k in FrameTargets.__dataclass_fields__}


class FrameHeads(nn.Module):
    """Heads on the frame embedding (E) and, for the dense shape target, on the patch tokens (W)."""

    def __init__(self, embed_dim: int, width: int):
        super().__init__()
        self.present = nn.Linear(embed_dim, _NS * _NC)
        self.slots = nn.Linear(embed_dim, SLOTS * _PER_SLOT)
        self.patch_norm = nn.LayerNorm(width)
        self.patch = nn.Linear(width, 1 + _NS)

    def patch_loss(self, patch_tokens: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of each patch token's shape (N, P, W) against `patches` (N, P); background
        patches are most of a frame, so they weigh a tenth."""
        logits = self.patch(self.patch_norm(patch_tokens)).reshape(-1, 1 + _NS)
        target = t["patches"].reshape(-1)
        weight = torch.ones(1 + _NS)
        weight[0] = 0.1
        return F.cross_entropy(logits, target, weight=weight)

    def _split(self, emb: torch.Tensor):
        s = self.slots(emb).view(-1, SLOTS, _PER_SLOT)
        return (self.present(emb), s[..., 0], s[..., 1:1 + _NS], s[..., 1 + _NS:1 + _NS + _NC],
                s[..., 1 + _NS + _NC:4 + _NS + _NC], s[..., 4 + _NS + _NC:])

    def loss(self, emb: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the per-target losses over frames (F, E); empty slots only train `exists`."""
        present, exists, shape, colour, geo, turn = self._split(emb)
        m = t["exists"]
        n = m.sum().clamp(min=1)
        loss = F.binary_cross_entropy_with_logits(present, t["present"]) * _NS  # ~ one CE's scale
        loss = loss + F.binary_cross_entropy_with_logits(exists, m)
        loss = loss + (F.cross_entropy(shape.reshape(-1, _NS), t["shape"].reshape(-1), reduction="none")
                       * m.reshape(-1)).sum() / n
        loss = loss + (F.cross_entropy(colour.reshape(-1, _NC), t["colour"].reshape(-1), reduction="none")
                       * m.reshape(-1)).sum() / n
        # Positions in -1..1: squared errors of ~0.05 matter (a few pixels), so weight them up.
        loss = loss + 10 * (((geo - t["geometry"]) ** 2).sum(-1) * m).sum() / n
        tm = m * t["turnable"]
        loss = loss + (((turn - t["turn"]) ** 2).sum(-1) * tm).sum() / tm.sum().clamp(min=1)
        return loss

    @torch.no_grad()
    def patch_accuracy(self, patch_tokens: torch.Tensor, t: dict[str, torch.Tensor]) -> float:
        """% of the patches covered by a shape whose shape the patch head names."""
        pred = self.patch(self.patch_norm(patch_tokens)).argmax(-1)
        on = t["patches"] > 0
        return round(100 * float((pred == t["patches"])[on].float().mean()), 2) if on.any() else 0.0

    @torch.no_grad()
    def scores(self, emb: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, float]:
        """Held-out read-out quality: accuracies (%) over visible objects, position error in base px,
        orientation error in degrees of the symmetry period's phase."""
        present, exists, shape, colour, geo, turn = self._split(emb)
        m = t["exists"].bool()
        tm = m & t["turnable"].bool()
        pair_ok = ((present > 0) == t["present"].bool()).all(-1)
        pos_err = ((geo[..., :2] - t["geometry"][..., :2]) * 48).norm(dim=-1)  # -1..1 over 96 base px
        size_err = ((geo[..., 2] - t["geometry"][..., 2]) * 20).abs()
        dphase = torch.atan2(turn[..., 1], turn[..., 0]) - torch.atan2(t["turn"][..., 1], t["turn"][..., 0])
        dphase = torch.rad2deg(torch.atan2(dphase.sin(), dphase.cos()).abs())
        return {"shape": round(100 * float((shape.argmax(-1) == t["shape"])[m].float().mean()), 2),
                "colour": round(100 * float((colour.argmax(-1) == t["colour"])[m].float().mean()), 2),
                "pairs": round(100 * float(pair_ok.float().mean()), 2),
                "count": round(100 * float(((exists > 0) == m).all(-1).float().mean()), 2),
                "pos_px": round(float(pos_err[m].mean()), 2),
                "radius_px": round(float(size_err[m].mean()), 2),
                "turn_deg": round(float(dphase[tm].mean()), 1) if tm.any() else 0.0}
