"""`python -m c4c train {decoder,backbone}`: train a caption decoder or the mini CLIP backbone.

    python -m c4c train decoder --features feats.pickle --annotations MSRVTT_data.json \\
        --vocab vocab.txt --out decoder.safetensors --seed 1 [--init univl.pretrained.bin]

Features: the reference pickle (`{video_id: float32 (n, 512)}`) or c4c's npz. Annotations:
MSRVTT_data.json layout; splits from a per-video "split" field, else json order 6513/497/2990.
"""

from __future__ import annotations

import argparse

from ..settings import MASKS

__all__ = ["add_parser", "run_decoder"]


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
    try:  # the backbone trainer registers its own sub-command
        from ..train.backbone import add_cli
    except ModuleNotFoundError as e:
        if e.name != "c4c.train.backbone":
            raise
    else:
        add_cli(tsub)


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
