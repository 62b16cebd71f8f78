"""Prepacked linear layers: the CPU arithmetic under the fast decoder and the fast ViT.

Decoding one caption is a few hundred small matrix products (5 beam rows against 768x768 to
30,522x768 weights): their cost is streaming the weights, and the stock kernels for so few rows
first re-pack the weight on every call, doing about twice the memory traffic. Packing once with
oneDNN's own layout (`torch.ops.mkldnn._reorder_linear_weight`, what torch.compile does for
frozen CPU linears) removes that. Results equal `F.linear` up to float summation order (~1e-6
relative), which leaves beam decisions alone (tests/test_speed_parity.py, the golden tests).

Precisions: "fp32" (default, token-identical), and the opt-ins "int8" (dynamic quantisation:
per-output-channel int8 weights, activations quantised per call; ~4x less weight traffic) and
"bf16" (bf16 weights and activations; slow on CPUs without native bf16 matmul). The opt-ins
change captions now and then: the benchmark measures how often.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .settings import PRECISIONS

__all__ = ["PRECISIONS", "Linear"]


def _packable() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


class Linear:
    """y = x @ weight.T + bias with the weight converted once for the chosen precision.

    `rows` is the typical number of input rows (oneDNN picks its blocking for it; any count works).
    Off CPU, or where the packed kernels are missing, it falls back to F.linear."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, precision: str = "fp32", rows: int = 5):
        w = weight.detach()
        b = None if bias is None else bias.detach()
        self.out_features = w.shape[0]
        self._fn = None
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
        if w.device.type != "cpu":
            self._fn = lambda x: F.linear(x, w, b)
        elif precision == "fp32":
            if _packable():
                try:
                    packed = torch.ops.mkldnn._reorder_linear_weight(w.float().contiguous(), rows)
                    lin = torch.ops.mkldnn._linear_pointwise
                    self._fn = lambda x: lin(x, packed, b, "none", [], "")
                    self._fn(torch.zeros(1, w.shape[1]))  # fails here, not mid-decoding, if unsupported
                except (RuntimeError, TypeError, AttributeError):
                    self._fn = None
            if self._fn is None:
                self._fn = lambda x: F.linear(x, w, b)
        elif precision == "int8":
            scale = (w.abs().amax(1).clamp_min(1e-12) / 127.0).double()
            with warnings.catch_warnings():  # quantized tensor constructors warn about a future deprecation
                warnings.simplefilter("ignore")
                qw = torch.quantize_per_channel(w.float(), scale, torch.zeros_like(scale, dtype=torch.long), 0,
                                                torch.qint8)
                packed = torch.ops.quantized.linear_prepack(qw, None if b is None else b.float())
            dyn = torch.ops.quantized.linear_dynamic
            self._fn = lambda x: dyn(x, packed, True)  # reduce_range: 7-bit activations, as fbgemm expects
        else:  # bf16
            w16, b16 = w.bfloat16(), None if b is None else b.bfloat16()
            self._fn = lambda x: F.linear(x.bfloat16(), w16, b16).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)
