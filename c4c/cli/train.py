"""`python -m c4c train {decoder,backbone}`: train a caption decoder or the mini CLIP backbone.

    python -m c4c train decoder --features feats.pickle --annotations MSRVTT_data.json \\
        --vocab vocab.txt --out decoder.safetensors --seed 1 [--init univl.pretrained.bin]

Features: the reference pickle (`{video_id: float32 (n, 512)}`) or c4c's npz. Annotations:
MSRVTT_data.json layout; splits from a per-video "split" field, else json order 6513/497/2990.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..settings import MASKS

__all__ = ["add_parser", "run_decoder", "run_backbone"]


def _add_decoder(tsub) -> None:
    from ..train.decoder import DecoderTrainConfig
    d = DecoderTrainConfig()
    p = tsub.add_parser("decoder", help="fine-tune one caption decoder (TE + TD) with cross-entropy",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", required=True, help="frame features: reference .pickle or c4c .npz")
    p.add_argument("--annotations", required=True, help="MSRVTT_data.json-style captions")
    p.add_argument("--vocab", required=True, help="BERT vocab.txt (bert-base-uncased for real data)")
    p.add_argument("--out", required=True, help="where to write the best epoch (.safetensors)")
    p.add_argument("--init", help="univl.pretrained.bin to initialise from (reference.md 2.4); widths default to its own")
    p.add_argument("--seed", type=int, default=d.seed, help="weight init and dropout seed")
    p.add_argument("--data-seed", type=int, default=None, help="order of the training pairs (default: --seed)")
    p.add_argument("--te-layers", type=int, default=d.te_layers, help="video encoder layers (paper: 1)")
    p.add_argument("--td-layers", type=int, default=d.td_layers, help="decoder layers (paper: 3)")
    p.add_argument("--hidden", type=int, default=None, help="width (default 128, or the --init file's)")
    p.add_argument("--heads", type=int, default=d.heads, help="attention heads (default hidden // 64)")
    p.add_argument("--ffn", type=int, default=None, help="feed-forward width (default 4 x hidden, or --init's)")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--captions-per-video", type=int, default=d.captions_per_video,
                   help="captions drawn per video per epoch (0 = every caption once per epoch, as the reference)")
    p.add_argument("--max-frames", type=int, default=d.max_frames)
    p.add_argument("--max-words", type=int, default=d.max_words)
    p.add_argument("--mask", choices=MASKS[:2], default=d.mask, help="video mask convention (reference.md 3.4)")
    p.add_argument("--pad-loss", choices=("ignore", "reference"), default=d.pad_loss,
                   help="'reference' also trains [PAD] targets as UniVL does (reference.md 2.3)")
    p.add_argument("--val-beam", type=int, default=d.val_beam, help="1 = greedy val decoding")
    p.add_argument("--val-last", type=int, default=d.val_last,
                   help="validate only the last K epochs, keep the best of them (default 0: every epoch)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads for this run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_decoder)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a caption decoder or the mini CLIP backbone")
    tsub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    _add_decoder(tsub)
    _add_backbone(tsub)


def _add_backbone(sub) -> None:
    from ..train.backbone import BackboneTrainConfig
    d = BackboneTrainConfig()
    p = sub.add_parser("backbone", help="CLIP4Clip meanP training of the mini CLIP on synthetic videos",
                       description="CLIP4Clip meanP training of the mini CLIP on freshly rendered synthetic clips, "
                                   "with per-frame and per-patch read-out heads (docs/synthetic-data.md, section 2).")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tiny", action="store_true", help="the CI configuration (tiny model, 24 steps)")
    p.add_argument("--steps", type=int, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--batch", type=int, help=f"new clips per step (default {d.batch_videos})")
    p.add_argument("--frames", type=int, help=f"random frames per clip per step (default {d.frames_per_video})")
    p.add_argument("--frame-loss", type=float, help=f"weight of the per-frame read-out heads (default {d.frame_loss:g}; "
                                                    "0 = contrastive only)")
    p.add_argument("--patch-loss", type=float, help=f"weight of the per-patch shape target (default {d.patch_loss:g}; "
                                                    "0 = off)")
    p.add_argument("--two-objects", type=float, help=f"chance of a second object in a training clip "
                                                     f"(default {d.two_objects:g}, the splits' own)")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--val-videos", type=int, help=f"val videos for the retrieval check (default {d.val_videos})")
    p.add_argument("--eval-every", type=int, help=f"steps between checks and resume points (default {d.eval_every})")
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    for name in _MODEL_SIZES:
        p.add_argument("--" + name.replace("_", "-"), type=int, dest=name,
                       help=f"model: {name.replace('_', ' ')} (default {getattr(d.model, name)})")
    p.add_argument("--cache", help="frame cache folder (default OUT/cache; 'none' to keep nothing)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--workers", type=int, default=1, help="processes rendering clips ahead of training (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_backbone)


_MODEL_SIZES = ("image_size", "patch", "width", "layers", "embed_dim", "text_width", "text_layers")


def run_backbone(args) -> int:
    import torch

    from ..train.backbone import TINY, BackboneTrainConfig, train_backbone
    torch.set_num_threads(args.threads)
    cfg = TINY if args.tiny else BackboneTrainConfig()
    over = {"steps": args.steps, "batch_videos": args.batch, "frames_per_video": args.frames,
            "frame_loss": args.frame_loss, "patch_loss": args.patch_loss, "two_objects": args.two_objects,
            "lr": args.lr, "val_videos": args.val_videos, "eval_every": args.eval_every, "seed": args.seed}
    model = {k: getattr(args, k) for k in _MODEL_SIZES if getattr(args, k) is not None}
    try:
        over["model"] = replace(cfg.model, **model)
    except ValueError as e:
        raise InputError(str(e)) from None
    cfg = replace(cfg, **{k: v for k, v in over.items() if v is not None})
    cfg.check()
    cache = None if args.cache == "none" else Path(args.cache or Path(args.out) / "cache")
    report = train_backbone(args.out, cfg, cache, progress=not args.quiet, workers=args.workers)
    f = report["final"]
    print(f"backbone: {report['files']['backbone']}  val t2v R@1 {f['t2v_r1']:.1f} R@5 {f['t2v_r5']:.1f}  "
          f"({report['total_s']:.0f} s)")
    return 0


def run_decoder(args) -> int:
    from ..train.decoder import DecoderTrainConfig, load_train_data, train_decoder
    cfg = DecoderTrainConfig(
        seed=args.seed, data_seed=args.data_seed, te_layers=args.te_layers, td_layers=args.td_layers,
        hidden=args.hidden, heads=args.heads, ffn=args.ffn, dropout=args.dropout, lr=args.lr,
        weight_decay=args.weight_decay, epochs=args.epochs, batch_size=args.batch_size,
        captions_per_video=args.captions_per_video or None,
        max_frames=args.max_frames, max_words=args.max_words, mask=args.mask, pad_loss=args.pad_loss,
        val_beam=args.val_beam, val_last=args.val_last, threads=args.threads)
    cfg.check()
    data = load_train_data(args.features, args.annotations, args.vocab)
    outcome = train_decoder(data, cfg, args.out, init=args.init, progress=not args.quiet)
    print(f"best epoch {outcome.best_epoch}: val CIDEr-D {outcome.best_cider:.2f} -> {outcome.path}")
    return 0
