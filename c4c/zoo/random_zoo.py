"""Zoos of random weights at any size: for the real-size smoke test, the speed benchmark and the app
tests before a trained zoo exists. Every file goes through the same writers and loaders as a real
zoo, so a random zoo exercises exactly the code paths a trained one does."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..vision.backbone import Backbone, VisionArch, _expected_shapes
from ..captioning.model import CaptionConfig, CaptionModel
from ..vote.idf import IdfTable
from . import write_manifest

__all__ = ["VIT_B32", "RandomZooSpec", "make_random_zoo", "write_bert_style_vocab"]

# CLIP ViT-B/32: 224 px, 7x7 patches of 32, width 768, 12 layers, 512-d embeddings.
VIT_B32 = VisionArch(image_size=224, patch=32, width=768, layers=12, heads=12, mlp=3072, embed_dim=512)


@dataclass(frozen=True)
class RandomZooSpec:
    vision: VisionArch = VisionArch(image_size=64, patch=16, width=64, layers=2, heads=1, mlp=256, embed_dim=32)
    hidden: int = 64               # decoder width
    heads: int = 2                 # decoder attention heads
    intermediate: int = 128        # decoder FFN width
    te_layers: int = 1             # the paper's layout: TE 1, TD 3
    td_layers: int = 3
    vocab_size: int = 300          # BERT-style ids: 0 [PAD], 100 [UNK], 101 [CLS], 102 [SEP], 103 [MASK]
    n_decoders: int = 5
    max_words: int = 12            # random decoders rarely stop on their own; keep captions short
    sep_bias: float = 0.0          # added to [SEP]'s output bias: > 0 makes random captions end earlier
    seed: int = 0
    specials: str = "bert"         # "bert": [CLS] 101, [SEP] 102; "compact": [PAD] [UNK] [CLS] [SEP] [MASK] = 0..4


def write_bert_style_vocab(path: Path, size: int, specials: str = "bert") -> list[str]:
    """A vocab.txt with BERT's special ids ("bert"), or the same tokens at ids 0-4 ("compact": a
    vocabulary whose [CLS]/[SEP] are not BERT's 101/102), and made-up words `w<k>` filling the rest."""
    if size < 110:
        raise ValueError("a BERT-style vocabulary needs at least 110 entries")
    if specials == "compact":
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(99)]
    else:
        words = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [f"w{k}" for k in range(size - len(words))]
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return words


def _random_backbone(arch: VisionArch, gen: torch.Generator) -> Backbone:
    sd = {}
    for key, shape in _expected_shapes(arch).items():
        if key.endswith(("ln_pre.weight", "ln_post.weight", "ln_1.weight", "ln_2.weight")):
            sd[key] = torch.ones(shape)
        elif len(shape) == 1 and not key.endswith("class_embedding"):
            sd[key] = torch.zeros(shape)
        else:
            fan_in = shape[-1] if len(shape) > 1 else shape[0]
            sd[key] = torch.randn(shape, generator=gen) * fan_in ** -0.5
    return Backbone.from_state_dict(sd, provenance="random weights (c4c.zoo.random_zoo)")


def make_random_zoo(folder: str | Path, spec: RandomZooSpec = RandomZooSpec()) -> Path:
    """Write a complete zoo of random weights (backbone, decoders, vocab, IDF, manifest) to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(spec.seed)
    _random_backbone(spec.vision, gen).save(folder / "backbone.safetensors", provenance="random weights")
    words = write_bert_style_vocab(folder / "vocab.txt", spec.vocab_size, spec.specials)
    sep = words.index("[SEP]")
    decoders = []
    for k in range(spec.n_decoders):
        torch.manual_seed(spec.seed * 1000 + k)
        cfg = CaptionConfig(video_dim=spec.vision.embed_dim, hidden=spec.hidden, heads=spec.heads,
                            intermediate=spec.intermediate, te_layers=spec.te_layers, td_layers=spec.td_layers,
                            vocab_size=spec.vocab_size, visual_positions=64, decoder_positions=64,
                            mask="frames", max_frames=20, max_words=spec.max_words)
        model = CaptionModel(cfg)
        with torch.no_grad():
            model.decoder.classifier.cls.predictions.bias[sep] += spec.sep_bias
        name = f"random{k + 1}"
        model.save(folder / f"{name}.safetensors", provenance=f"random weights, seed {spec.seed * 1000 + k}")
        decoders.append({"name": name, "file": f"{name}.safetensors", "provenance": "random weights",
                         "settings": {"mask": "frames", "max_frames": 20, "heads": spec.heads}})
    rng = random.Random(spec.seed)
    docs = [[" ".join(rng.choices(words[104:], k=rng.randint(3, 8))) for _ in range(5)] for _ in range(50)]
    IdfTable.from_captions(docs, source="random captions (c4c.zoo.random_zoo)").save(folder / "idf.json")
    write_manifest(folder, {
        "name": "random", "description": "RANDOM WEIGHTS for tests and benchmarks: captions are meaningless",
        "backbone": {"file": "backbone.safetensors", "provenance": "random weights"},
        "decoders": decoders, "vocab": "vocab.txt", "idf": "idf.json"})
    return folder
