"""A small CLIP in OpenAI's architecture and exact state-dict key layout.

Same blocks as openai/CLIP's `model.py` (pre-LN residual blocks on `nn.MultiheadAttention`,
QuickGELU, LayerNorm eps 1e-5, class token, `ln_post(CLS) @ proj`), so `c4c.vision.backbone.Backbone`
loads its `visual.*` part exactly as it loads a real ViT-B/32, and the zoo's mini backbone runs
through the same code as a real CLIP4Clip checkpoint. Heads are width // 64 in both towers, as
CLIP4Clip and the loader assume. The text tower reads ids from `WordTokenizer`, a word-level
tokenizer over the captions' vocabulary (EOT is the highest id, as `encode_text` takes the argmax).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["ClipConfig", "CLIP", "WordTokenizer", "sincos_2d"]


@dataclass(frozen=True)
class ClipConfig:
    """Sizes of both towers. The default is the shipped mini backbone (0.22 M image-tower parameters,
    0.9 MB in fp32): on 2 CPU cores a width-64 tower trains ~2.3x faster per step than width 128,
    which buys the ~1,400 steps contrastive training from scratch needs within the time budget."""
    image_size: int = 96      # input pixels per side: the 96x96 centre crop of the 128x96 frames, unscaled
    patch: int = 12           # 8x8 grid of patches -> 65 tokens with the class token
    width: int = 64           # image tower width; heads = width // 64 = 1
    layers: int = 4           # image tower residual blocks
    embed_dim: int = 64       # joint embedding = per-frame feature size the captioner reads
    text_width: int = 64      # text tower width; heads = text_width // 64
    text_layers: int = 2      # captions are short and formulaic: a shallow text tower suffices
    context: int = 32         # text tokens incl. SOT and EOT (captions have <= 30 words)
    vocab_size: int = 512     # text ids; set from the tokenizer

    def __post_init__(self):
        for name in ("width", "text_width"):
            if getattr(self, name) % 64:
                raise ValueError(f"{name} must be a multiple of 64 (heads = width // 64), got {getattr(self, name)}")
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch {self.patch}")

    def to_dict(self) -> dict:
        return asdict(self)


def sincos_2d(grid: int, width: int) -> torch.Tensor:
    """(grid*grid + 1, width) 2-D sine-cosine position table (MAE style), class-token row zero."""
    q = width // 4
    omega = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float64) / q))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    x, y = xs.reshape(-1, 1) * omega, ys.reshape(-1, 1) * omega  # (grid*grid, q)
    table = torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)
    return torch.cat([torch.zeros(1, width, dtype=torch.float64), table]).float()


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as OpenAI's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, width // 64, batch_first=True)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # x: (B, L, W)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width) for _ in range(layers)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        w, grid = cfg.width, cfg.image_size // cfg.patch
        scale = w ** -0.5
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch, stride=cfg.patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, w))
        self.ln_pre = LayerNorm(w)
        self.transformer = Transformer(w, cfg.layers)
        self.ln_post = LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, cfg.embed_dim))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 3, S, S) -> (N, 1 + grid*grid, W)
        """The last block's output: the class token, then the patch tokens in row-major order."""
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (N, grid*grid, W)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:  # (N, 1 + grid*grid, W) -> (N, E)
        return self.ln_post(tokens[:, 0]) @ self.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 3, S, S) -> (N, E)
        return self.embed(self.tokens(x))


class CLIP(nn.Module):
    """Image and text towers with OpenAI's attribute names (hence its state-dict keys)."""

    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer(cfg)
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context, cfg.text_width))
        self.transformer = Transformer(cfg.text_width, cfg.text_layers)
        self.ln_final = LayerNorm(cfg.text_width)
        self.text_projection = nn.Parameter(torch.empty(cfg.text_width, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.register_buffer("causal_mask", torch.full((cfg.context, cfg.context), float("-inf")).triu(1),
                             persistent=False)
        self._init()

    def _init(self) -> None:
        # openai/CLIP's initialize_parameters: residual projections scaled down with depth.
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for tower, width in ((self.visual.transformer, self.cfg.width), (self.transformer, self.cfg.text_width)):
            n = len(tower.resblocks)
            proj_std, attn_std, fc_std = (width ** -0.5) * ((2 * n) ** -0.5), width ** -0.5, (2 * width) ** -0.5
            for block in tower.resblocks:
                nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.cfg.text_width ** -0.5)
        # The image tower's (learned) position table starts as 2-D sine-cosine instead of noise: patch
        # tokens then carry their place from step 0, and a from-scratch ViT needs several times fewer
        # steps to report where things are (supervised probe: position R^2 0.83 after 200 steps vs
        # ~0 for a random table), which the decoders need for left/right/up/down.
        with torch.no_grad():
            self.visual.positional_embedding.copy_(sincos_2d(self.cfg.image_size // self.cfg.patch, self.cfg.width))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels -> (N, E) unnormalised frame embeddings."""
        return self.visual(pixels)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, context) token ids -> (B, E): the transformer output at the EOT (argmax) position."""
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        x = self.ln_final(self.transformer(x, self.causal_mask[:n, :n]))
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection

    def vision_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the `visual.*` tensors: what the captioning pipeline needs."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("visual.")}


class WordTokenizer:
    """Whitespace word tokenizer over a fixed word list: 0 = padding, 1 = unknown, then the words,
    then SOT and EOT (the highest id, so `encode_text`'s argmax finds it)."""

    def __init__(self, words: list[str]):
        self.words = list(words)
        self._ids = {w: i + 2 for i, w in enumerate(self.words)}
        self.sot, self.eot = len(self.words) + 2, len(self.words) + 3

    @classmethod
    def from_captions(cls, captions) -> WordTokenizer:
        return cls(sorted({w for c in captions for w in cls.split(c)}))

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9']+", text.lower())

    def __len__(self) -> int:
        return len(self.words) + 4

    def encode(self, text: str, context: int) -> list[int]:
        ids = [self._ids.get(w, 1) for w in self.split(text)][: context - 2]
        return [self.sot] + ids + [self.eot]

    def batch(self, texts: list[str], context: int) -> torch.Tensor:
        """(B, context) int64, zero-padded."""
        out = torch.zeros((len(texts), context), dtype=torch.long)
        for i, t in enumerate(texts):
            ids = self.encode(t, context)
            out[i, :len(ids)] = torch.tensor(ids)
        return out


@torch.no_grad()
def mimetic_init_(tower: nn.Module, qk: tuple[float, float] = (0.7, 0.7), vo: tuple[float, float] = (0.4, 0.4),
                  generator: torch.Generator | None = None) -> None:
    """Mimetic initialisation of every attention layer of `tower` (Trockman & Kolter, ICML 2023):
    W_q^T W_k ~ a Z + b I, so that at step 0 a token attends to tokens that look like it, which with
    the 2-D sine-cosine positions means its neighbours (a convolution-like start); and
    W_v^T W_o^T ~ a Z - b I. Z is Gaussian with variance 1/d. Per head, through an SVD."""
    for block in tower.resblocks:
        attn = block.attn
        d, h = attn.embed_dim, attn.num_heads
        hd = d // h
        wq, wk, wv = attn.in_proj_weight.view(3, d, d).unbind(0)
        wo = attn.out_proj.weight
        for i in range(h):
            s = slice(i * hd, (i + 1) * hd)
            for (a, b), (left, right, sign) in ((qk, (wq, wk, 1.0)), (vo, (wv, None, -1.0))):
                z = torch.randn(d, d, generator=generator) / math.sqrt(d)
                u, sv, vt = torch.linalg.svd(a * z + sign * b * torch.eye(d))
                root = sv[:hd].sqrt()
                # Rank-hd factorisation of the target for this head: left^T (d x hd), right (hd x d).
                left[s] = (u[:, :hd] * root).T
                if right is not None:
                    right[s] = (vt[:hd].T * root).T
                else:
                    wo[:, s] = vt[:hd].T * root
