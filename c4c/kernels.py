"""Fast inference building blocks: prepacked linear layers and the decoder's KV-cached step on them.

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

import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .caption_layers import additive_mask, gelu
from .captioner import CaptionModel

__all__ = ["PRECISIONS", "Linear", "FastDecoder", "default_workers", "parallel_map"]

PRECISIONS = ("fp32", "int8", "bf16")


def default_workers(n_jobs: int) -> int:
    """Worker threads for `n_jobs` independent pieces of work: the process's intra-op thread budget
    (`torch.get_num_threads()`, by default one per core), capped by the CPUs this process may run on
    and by n_jobs. Each worker then runs with ONE intra-op thread: on a shared host, threads of one
    op that wait on each other at every barrier stall when another process takes a core (a 2-thread
    decoder measured 0.45 s -> 8 s), while independent single-threaded workers just slow down in
    proportion. A caller that set torch.set_num_threads(1) gets everything in its own thread."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cpus, n_jobs))


def parallel_map(fn: Callable, items: Sequence, workers: int | None = None) -> list:
    """[fn(x) for x in items] on `workers` threads (default `default_workers`), each with one
    intra-op thread and inference mode on (both are per-thread settings). Exceptions propagate."""
    workers = default_workers(len(items)) if workers is None else max(1, min(workers, len(items)))
    if workers <= 1 and torch.get_num_threads() == 1:  # the caller is single-threaded already
        with torch.inference_mode():
            return [fn(x) for x in items]
    results: list = [None] * len(items)
    errors: list[BaseException] = []
    lock = threading.Lock()
    nxt = [0]

    def work():
        torch.set_num_threads(1)  # this thread only: the caller keeps its own setting
        with torch.inference_mode():
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(items) or errors:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    errors.append(e)
                    return

    threads = [threading.Thread(target=work, name=f"c4c-worker-{k}", daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


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


def _ln(mod):
    """The TF-style LayerNorm of captioner.py as (weight, bias, eps), applied by `_layer_norm`."""
    return mod.weight.detach(), mod.bias.detach(), mod.eps


def _layer_norm(x, p):
    w, b, eps = p
    u = x.mean(-1, keepdim=True)
    d = x - u
    s = d.pow(2).mean(-1, keepdim=True)
    return w * (d / torch.sqrt(s + eps)) + b


class FastDecoder:
    """A CaptionModel's decoder step on prepacked weights: same arithmetic as `_DecoderLayer.step`
    up to float summation order. Built once per model (and precision); holds a packed copy of the
    decoder weights (~the decoder's size again in fp32)."""

    def __init__(self, model: CaptionModel, precision: str = "fp32", rows: int = 5):
        cfg = model.cfg
        self.cfg, self.precision = cfg, precision  # no reference to the model: decoding.py caches us weakly by it
        self.nh, self.dh = cfg.heads, cfg.head_dim
        self.scale = math.sqrt(cfg.head_dim)
        emb = model.decoder.embeddings
        self.word = emb.word_embeddings.weight.detach()
        self.pos = emb.position_embeddings.weight.detach()
        self.emb_ln = _ln(emb.LayerNorm)
        self.layers = []
        for layer in model.decoder.decoder.layer:
            sa, ca = layer.slf_attn, layer.enc_attn
            qkv_w = torch.cat([sa.att.query.weight, sa.att.key.weight, sa.att.value.weight]).detach()
            qkv_b = torch.cat([sa.att.query.bias, sa.att.key.bias, sa.att.value.bias]).detach()
            self.layers.append(dict(
                qkv=Linear(qkv_w, qkv_b, precision, rows),                               # (N, 3H)
                so=Linear(sa.output.dense.weight, sa.output.dense.bias, precision, rows),
                so_ln=_ln(sa.output.LayerNorm),
                cq=Linear(ca.att.query.weight, ca.att.query.bias, precision, rows),
                co=Linear(ca.output.dense.weight, ca.output.dense.bias, precision, rows),
                co_ln=_ln(ca.output.LayerNorm),
                f1=Linear(layer.intermediate.dense.weight, layer.intermediate.dense.bias, precision, rows),
                f2=Linear(layer.output.dense.weight, layer.output.dense.bias, precision, rows),
                f_ln=_ln(layer.output.LayerNorm),
                mem_k=(ca.att.key.weight.detach(), ca.att.key.bias.detach()),     # applied once per video
                mem_v=(ca.att.value.weight.detach(), ca.att.value.bias.detach()),
            ))
        pred = model.decoder.classifier.cls.predictions
        self.tr = Linear(pred.transform.dense.weight, pred.transform.dense.bias, precision, rows)
        self.tr_ln = _ln(pred.transform.LayerNorm)
        self.cls = Linear(pred.decoder.weight, pred.bias, precision, rows)             # (N, V)

    def start(self, memory, video_mask, max_words: int):
        """Per-video state: cross-attention K/V of every layer (computed once), the additive memory
        mask, and an empty self-attention cache (N, layers, 2, nh, max_words, dh)."""
        b, t = memory.shape[:2]
        split = lambda x: x.view(b, t, self.nh, self.dh).permute(0, 2, 1, 3)  # noqa: E731  (B, nh, T, dh)
        mem_kv = [(split(F.linear(memory, *p["mem_k"])), split(F.linear(memory, *p["mem_v"]))) for p in self.layers]
        mem_mask = additive_mask(video_mask, memory.dtype)
        cache = memory.new_zeros(memory.shape[0], len(self.layers), 2, self.nh, max_words, self.dh)
        return mem_kv, mem_mask, cache

    def logits(self, tokens, pos: int, cache, mem_kv, mem_mask) -> torch.Tensor:
        """tokens (N,) at position `pos` -> logits (N, V); writes the new keys/values into cache[:, :, :, :, pos]."""
        n, nh, dh = tokens.shape[0], self.nh, self.dh
        x = _layer_norm(self.word[tokens] + self.pos[pos], self.emb_ln)                 # (N, H)
        for i, p in enumerate(self.layers):
            q, k, v = p["qkv"](x).view(n, 3, nh, dh).unbind(1)                           # (N, nh, dh) each
            cache[:, i, 0, :, pos] = k
            cache[:, i, 1, :, pos] = v
            keys, vals = cache[:, i, 0, :, : pos + 1], cache[:, i, 1, :, : pos + 1]      # (N, nh, pos+1, dh)
            att = (torch.matmul(q[:, :, None], keys.transpose(-1, -2)) / self.scale).softmax(-1)
            x = _layer_norm(p["so"](torch.matmul(att, vals).reshape(n, -1)) + x, p["so_ln"])
            mk, mv = mem_kv[i]                                                           # (B, nh, T, dh)
            b = mk.shape[0]
            q = p["cq"](x).view(b, n // b, nh, dh).transpose(1, 2)                       # (B, nh, G, dh)
            scores = torch.matmul(q, mk.transpose(-1, -2)) / self.scale + mem_mask
            ctx = torch.matmul(scores.softmax(-1), mv).transpose(1, 2).reshape(n, -1)
            x = _layer_norm(p["co"](ctx) + x, p["co_ln"])
            x = _layer_norm(p["f2"](gelu(p["f1"](x))) + x, p["f_ln"])
        return self.cls(_layer_norm(gelu(self.tr(x)), self.tr_ln))
