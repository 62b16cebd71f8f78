"""A UniVL pre-training checkpoint (`univl.pretrained.bin`, reference.md 2.4) in miniature: its key naming
(checked against tests/data/keys_univl.txt by test_train_decoder.py) at any size, for the
tests of `c4c.captioning.univl.init_from_univl` and of decoder training with `--init`."""

from __future__ import annotations

import torch


def _bert_layer(prefix: str, H: int, I: int) -> dict[str, tuple]:
    out = {}
    for n in ("query", "key", "value"):
        out[f"{prefix}.attention.self.{n}.weight"] = (H, H)
        out[f"{prefix}.attention.self.{n}.bias"] = (H,)
    out |= {f"{prefix}.attention.output.dense.weight": (H, H), f"{prefix}.attention.output.dense.bias": (H,),
            f"{prefix}.attention.output.LayerNorm.weight": (H,), f"{prefix}.attention.output.LayerNorm.bias": (H,),
            f"{prefix}.intermediate.dense.weight": (I, H), f"{prefix}.intermediate.dense.bias": (I,),
            f"{prefix}.output.dense.weight": (H, I), f"{prefix}.output.dense.bias": (H,),
            f"{prefix}.output.LayerNorm.weight": (H,), f"{prefix}.output.LayerNorm.bias": (H,)}
    return out


def _head(prefix: str, H: int) -> dict[str, tuple]:
    return {f"{prefix}.transform.dense.weight": (H, H), f"{prefix}.transform.dense.bias": (H,),
            f"{prefix}.transform.LayerNorm.weight": (H,), f"{prefix}.transform.LayerNorm.bias": (H,)}


def univl_shapes(H=768, I=3072, V=30522, S3D=1024, P=512, CP=1024, bert=12, visual=6, cross=2, dec=3) -> dict[str, tuple]:
    """Key -> shape of a UniVL pretrain state dict (reference.md 2.4), parametrised by size."""
    s: dict[str, tuple] = {"bert.embeddings.word_embeddings.weight": (V, H), "bert.embeddings.position_embeddings.weight": (P, H),
                           "bert.embeddings.token_type_embeddings.weight": (2, H), "bert.embeddings.LayerNorm.weight": (H,),
                           "bert.embeddings.LayerNorm.bias": (H,)}
    for i in range(bert):
        s |= _bert_layer(f"bert.encoder.layer.{i}", H, I)
    s |= {"bert.pooler.dense.weight": (H, H), "bert.pooler.dense.bias": (H,),
          "visual.embeddings.word_embeddings.weight": (H, S3D), "visual.embeddings.word_embeddings.bias": (H,),
          "visual.embeddings.position_embeddings.weight": (P, H), "visual.embeddings.LayerNorm.weight": (H,),
          "visual.embeddings.LayerNorm.bias": (H,)}
    for i in range(visual):
        s |= _bert_layer(f"visual.encoder.layer.{i}", H, I)
    s |= {"visual.pooler.dense.weight": (H, H), "visual.pooler.dense.bias": (H,),
          "cross.embeddings.position_embeddings.weight": (CP, H), "cross.embeddings.token_type_embeddings.weight": (2, H),
          "cross.embeddings.LayerNorm.weight": (H,), "cross.embeddings.LayerNorm.bias": (H,)}
    for i in range(cross):
        s |= _bert_layer(f"cross.encoder.layer.{i}", H, I)
    s |= {"cross.pooler.dense.weight": (H, H), "cross.pooler.dense.bias": (H,),
          "decoder.embeddings.word_embeddings.weight": (V, H), "decoder.embeddings.position_embeddings.weight": (P, H),
          "decoder.embeddings.LayerNorm.weight": (H,), "decoder.embeddings.LayerNorm.bias": (H,)}
    for i in range(dec):
        p = f"decoder.decoder.layer.{i}"
        for att in ("slf_attn", "enc_attn"):
            for n in ("query", "key", "value"):
                s[f"{p}.{att}.att.{n}.weight"] = (H, H)
                s[f"{p}.{att}.att.{n}.bias"] = (H,)
            s |= {f"{p}.{att}.output.dense.weight": (H, H), f"{p}.{att}.output.dense.bias": (H,),
                  f"{p}.{att}.output.LayerNorm.weight": (H,), f"{p}.{att}.output.LayerNorm.bias": (H,)}
        s |= {f"{p}.intermediate.dense.weight": (I, H), f"{p}.intermediate.dense.bias": (I,),
              f"{p}.output.dense.weight": (H, I), f"{p}.output.dense.bias": (H,),
              f"{p}.output.LayerNorm.weight": (H,), f"{p}.output.LayerNorm.bias": (H,)}
    s |= _head("decoder.classifier.cls.predictions", H)
    s |= {"decoder.classifier.cls.predictions.decoder.weight": (V, H), "decoder.classifier.cls.predictions.bias": (V,)}
    s |= _head("cls.predictions", H) | {"cls.predictions.decoder.weight": (V, H), "cls.predictions.bias": (V,)}
    s |= _head("cls_visual.predictions", H) | {"cls_visual.predictions.weight": (H, S3D), "cls_visual.predictions.bias": (S3D,)}
    s |= {"similarity_dense.weight": (1, H), "similarity_dense.bias": (1,),
          "normalize_video.visual_norm2d.weight": (S3D,), "normalize_video.visual_norm2d.bias": (S3D,)}
    return s


def fake_univl(vocab_size: int, H=32, I=64, S3D=24, P=64, *, visual=2, seed=7, scale=0.05) -> dict[str, torch.Tensor]:
    """A small random UniVL state dict with the real file's tying (BERT word embedding shared)."""
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(shape, generator=g) * scale
          for k, shape in univl_shapes(H, I, vocab_size, S3D, P, 2 * P, bert=1, visual=visual, cross=1, dec=3).items()}
    word = sd["bert.embeddings.word_embeddings.weight"]
    for k in ("decoder.embeddings.word_embeddings.weight", "decoder.classifier.cls.predictions.decoder.weight",
              "cls.predictions.decoder.weight"):
        sd[k] = word
    sd["decoder.embeddings.position_embeddings.weight"] = sd["bert.embeddings.position_embeddings.weight"]
    return sd
