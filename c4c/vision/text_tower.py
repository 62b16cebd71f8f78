"""The CLIP text tower: captions -> embeddings in the space of the frame embeddings, for grounding.

Weights in OpenAI's key layout (`token_embedding.weight`, `positional_embedding`,
`transformer.resblocks.N.*`, `ln_final.*`, `text_projection`, `logit_scale`; CLIP4Clip prefixes
them `clip.`), sizes read off the shapes. The network is transformers'
`CLIPTextModelWithProjection` built from a config, offline (no model code of c4c's own). Its
pooled position is the first `eos_token_id`; the config's `eos_token_id` is the tokenizer's EOT,
which is the highest id in both vocabularies, so it is the position `encode_text` takes (argmax).

Two tokenizers, named in the file's metadata:
* "clip-bpe": CLIP's byte-level BPE (49,408 entries) as transformers' `CLIPTokenizer`, built from
  the merges in `bpe_simple_vocab_16e6.txt.gz` that the `openai-clip` package ships, after CLIP's
  own text cleaning (ftfy, HTML unescape, whitespace); ids equal `clip.simple_tokenizer`'s.
* "words": the mini zoo's word-level vocabulary (`c4c.train.clip_model.WordTokenizer`): 0 pad,
  1 unknown, words from 2, SOT = len(words) + 2, EOT = len(words) + 3.

The zoo file `text_tower.safetensors` holds the text keys + `logit_scale`, with metadata
{"format": "c4c-clip-text", "tokenizer", "context", "vocab" (words only), "provenance"}.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import check_finite, load_state_dict, read_safetensors_metadata, save_safetensors
from ..errors import CheckpointError, InputError

__all__ = ["TextTower", "TextArch", "text_keys", "text_arch", "save_text_tower_from_clip_full", "clip_bpe",
           "WordTokens", "FORMAT", "TOKENIZERS"]

FORMAT = "c4c-clip-text"
TOKENIZERS = ("clip-bpe", "words")
_BLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.")
_TOP = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection")
_BLOCK_MAP = {  # OpenAI residual block -> transformers CLIPEncoderLayer (in_proj is split apart)
    "attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight", "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight", "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight", "ln_2.bias": "layer_norm2.bias",
}


@dataclass(frozen=True)
class TextArch:
    """A CLIP text tower's sizes, read off a state dict's shapes."""
    vocab_size: int   # token_embedding rows
    context: int      # positional_embedding rows (77 for CLIP)
    width: int        # transformer width
    layers: int       # residual blocks
    heads: int        # width // 64, as OpenAI's CLIP
    embed_dim: int    # text_projection columns = the joint space = the frame embedding size


def text_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The text-tower tensors (and `logit_scale`) of any CLIP-like state dict, `module.`/`clip.`
    prefixes removed; `visual.*`, CLIP4Clip's `transformerClip.*` and similarity heads dropped."""
    out = {}
    for key, t in sd.items():
        k = key[len("module."):] if key.startswith("module.") else key
        k = k[len("clip."):] if k.startswith("clip.") else k
        if k in _TOP or k == "logit_scale" or _BLOCK.match(k):
            out[k] = t
    return out


def text_arch(sd: Mapping[str, torch.Tensor], source: str | Path = "state dict") -> TextArch:
    for k in _TOP:
        if k not in sd:
            raise CheckpointError(f"{source}: no text tower (missing {k!r}); a CLIP state dict or CLIP4Clip "
                                  "checkpoint carries one")
    vocab, width = sd["token_embedding.weight"].shape
    layers = 1 + max((int(m.group(1)) for k in sd if (m := _BLOCK.match(k))), default=-1)
    if layers == 0 or width % 64:
        raise CheckpointError(f"{source}: text tower of width {width} and {layers} blocks is not OpenAI CLIP's")
    return TextArch(vocab_size=int(vocab), context=int(sd["positional_embedding"].shape[0]), width=int(width),
                    layers=layers, heads=int(width) // 64, embed_dim=int(sd["text_projection"].shape[1]))


def _to_hf(sd: Mapping[str, torch.Tensor], a: TextArch) -> dict[str, torch.Tensor]:
    """OpenAI text keys -> `CLIPTextModelWithProjection` state dict (float32)."""
    f = {k: v.float() for k, v in sd.items()}
    out = {"text_model.embeddings.token_embedding.weight": f["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": f["positional_embedding"],
           "text_model.final_layer_norm.weight": f["ln_final.weight"],
           "text_model.final_layer_norm.bias": f["ln_final.bias"],
           "text_projection.weight": f["text_projection"].t().contiguous()}  # x @ P == Linear(P.T)
    w = a.width
    for i in range(a.layers):
        src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        qkv_w, qkv_b = f[src + "attn.in_proj_weight"], f[src + "attn.in_proj_bias"]
        for j, n in enumerate("qkv"):  # nn.MultiheadAttention packs [q; k; v] along dim 0
            out[f"{dst}self_attn.{n}_proj.weight"] = qkv_w[j * w:(j + 1) * w].contiguous()
            out[f"{dst}self_attn.{n}_proj.bias"] = qkv_b[j * w:(j + 1) * w].contiguous()
        for oa, hf in _BLOCK_MAP.items():
            out[dst + hf] = f[src + oa]
    return out


def _build(a: TextArch, sd: Mapping[str, torch.Tensor], eot: int, source):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    cfg = CLIPTextConfig(vocab_size=a.vocab_size, hidden_size=a.width, intermediate_size=4 * a.width,
                         projection_dim=a.embed_dim, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                         max_position_embeddings=a.context, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                         attention_dropout=0.0, pad_token_id=0, bos_token_id=max(eot - 1, 0), eos_token_id=eot)
    # eos_token_id == 2 switches transformers to the legacy argmax pooling; any other value pools at
    # the first EOT, which is the argmax whenever EOT is the highest id (checked in `encode_ids`).
    model = CLIPTextModelWithProjection(cfg)
    result = model.load_state_dict(_to_hf(sd, a), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        bad = (missing or result.unexpected_keys)[0]
        raise CheckpointError(f"{source}: text weight {bad!r} did not map onto transformers' CLIP text model")
    return model.eval()


def clip_bpe():
    """transformers' `CLIPTokenizer` over CLIP's own BPE merges (from the `openai-clip` package's
    `bpe_simple_vocab_16e6.txt.gz`; the vocabulary is built from the merges as CLIP's SimpleTokenizer does)."""
    import gzip
    import importlib.util
    from transformers import CLIPTokenizer
    spec = importlib.util.find_spec("clip")  # locates the package without running its __init__ (torchvision)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the CLIP BPE tokenizer needs the openai-clip package (pip install openai-clip)")
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]  # as simple_tokenizer.SimpleTokenizer
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (CLIP's `bytes_to_unicode`)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _clean(text: str) -> str:
    """CLIP's basic_clean + whitespace_clean + lower (simple_tokenizer.py). Python's lower() first: the
    tokenizers library lower-cases a final sigma to σ, Python (and so CLIP) to ς."""
    import html

    import ftfy
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


class WordTokens:
    """The mini zoo's word-level tokenizer (same ids as `c4c.train.clip_model.WordTokenizer`)."""

    def __init__(self, words: list[str]):
        self.words = list(words)
        self._ids = {w: i + 2 for i, w in enumerate(self.words)}
        self.sot, self.eot = len(self.words) + 2, len(self.words) + 3

    def encode(self, text: str) -> list[int]:
        return [self.sot] + [self._ids.get(w, 1) for w in re.findall(r"[a-z0-9']+", text.lower())] + [self.eot]


class TextTower:
    """A frozen CLIP text tower: captions -> (B, E) embeddings (not L2-normalised, as `encode_text`)."""

    def __init__(self, sd: Mapping[str, torch.Tensor], tokenizer: str | None, words: list[str] | None = None,
                 provenance=None, source: str | Path = "state dict"):
        self.weights = {k: v.detach().float().clone() for k, v in text_keys(sd).items()}
        self.arch = text_arch(self.weights, source)
        check_finite(self.weights, source)
        if tokenizer not in (*TOKENIZERS, None):
            raise CheckpointError(f"{source}: unknown text tokenizer {tokenizer!r}; expected one of {TOKENIZERS}")
        if tokenizer == "words":
            if words is None or len(words) + 4 != self.arch.vocab_size:
                raise CheckpointError(f"{source}: word vocabulary of {len(words or [])} words does not fit "
                                      f"{self.arch.vocab_size} token embeddings (words + 4)")
            self._words, self.eot = WordTokens(words), len(words) + 3
        elif tokenizer == "clip-bpe":
            if self.arch.vocab_size != 49408:
                raise CheckpointError(f"{source}: {self.arch.vocab_size} token embeddings, but CLIP's BPE has 49408")
            self._words, self.eot = None, 49407
        else:  # ids only (golden tests): EOT is the highest id, as in every CLIP vocabulary
            self._words, self.eot = None, self.arch.vocab_size - 1
        self.tokenizer, self.provenance, self.source = tokenizer, provenance, source
        self._model = None
        self._bpe = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path, tokenizer: str | None = None, allow_torchscript: bool = False) -> TextTower:
        """A zoo's `text_tower.safetensors`, or the text part of a CLIP4Clip / OpenAI CLIP checkpoint
        (tokenizer "clip-bpe" unless the file names its own)."""
        path = Path(path)
        meta = read_safetensors_metadata(path)
        sd = load_state_dict(path, allow_torchscript=allow_torchscript)
        if meta.get("format") == FORMAT:
            return cls(sd, meta.get("tokenizer"), meta.get("vocab"), meta.get("provenance"), source=path)
        if meta.get("format") == "c4c-clip-full":
            return cls(sd, "words", meta.get("vocab"), meta.get("provenance"), source=path)
        return cls(sd, tokenizer or "clip-bpe", provenance=f"text tower of {path.name}", source=path)

    @property
    def model(self):
        """transformers' `CLIPTextModelWithProjection`, built on first use."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    with torch.inference_mode(False):
                        self._model = _build(self.arch, self.weights, self.eot, self.source)
        return self._model

    @property
    def logit_scale(self) -> float:
        return float(self.weights["logit_scale"].exp()) if "logit_scale" in self.weights else 100.0

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """(B, context) int64 ids, zero-padded; a caption longer than the context keeps SOT, its
        first context - 2 tokens and EOT (CLIP4Clip's `max_words` cut)."""
        if self.tokenizer is None:
            raise InputError("this text tower has no tokenizer; pass token ids to encode_ids")
        rows = []
        for t in texts:
            if self._words is not None:
                ids = self._words.encode(t)
            else:
                if self._bpe is None:
                    with self._lock:  # ~2 s to build: once, on first use
                        self._bpe = self._bpe or clip_bpe()
                ids = self._bpe(_clean(t))["input_ids"]
            rows.append(ids[: self.arch.context - 1] + [self.eot] if len(ids) > self.arch.context else ids)
        out = torch.zeros((len(rows), self.arch.context), dtype=torch.long)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    @torch.inference_mode()
    def encode_ids(self, ids: torch.Tensor) -> np.ndarray:
        """(B, L) token ids, each row with its EOT as the highest id -> (B, E) float32."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        if (ids.max(dim=-1).values != self.eot).any():
            raise InputError(f"every token row must end in EOT ({self.eot}), the highest id")
        return self.model(input_ids=ids).text_embeds.float().numpy()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Captions -> (B, E) float32 text embeddings."""
        return self.encode_ids(self.tokenize(list(texts))) if texts else np.zeros((0, self.arch.embed_dim), np.float32)

    def metadata(self) -> dict:
        meta = {"format": FORMAT, "tokenizer": self.tokenizer, "context": self.arch.context,
                "provenance": self.provenance, "arch": asdict(self.arch)}
        if self._words is not None:
            meta["vocab"] = self._words.words
        return meta

    def save(self, path: str | Path, provenance=None) -> None:
        """`text_tower.safetensors`: the text keys + logit_scale, with the tokenizer in the metadata."""
        if provenance is not None:
            self.provenance = provenance
        save_safetensors(self.weights, path, self.metadata())


def save_text_tower_from_clip_full(clip_full_path: str | Path, out_path: str | Path, provenance=None) -> dict:
    """Write a zoo's `text_tower.safetensors` from `train backbone`'s `clip_full.safetensors`, and
    return its manifest entry {"file", "provenance", "tokenizer", "embed_dim"} ("file" is out_path's name)."""
    tower = TextTower.from_file(clip_full_path)
    if tower.tokenizer != "words":
        raise CheckpointError(f"{clip_full_path}: not a c4c-clip-full file with a word vocabulary")
    prov = provenance if provenance is not None else {
        "from": Path(clip_full_path).name, "model": tower.provenance,
        "what": "the text tower trained with the backbone (CLIP4Clip meanP contrastive)"}
    tower.save(out_path, provenance=prov)
    return {"file": Path(out_path).name, "provenance": prov, "tokenizer": tower.tokenizer,
            "embed_dim": tower.arch.embed_dim}
