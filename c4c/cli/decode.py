"""`python -m c4c decode`: caption one video's pre-extracted frame features with one decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..settings import MASKS, CaptionSettings

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("decode", help="caption pre-extracted frame features (.npy) with one decoder",
                       description="Decode a caption from per-frame features (n, D) with a caption checkpoint "
                                   "(reproduction .bin or c4c safetensors).")
    p.add_argument("--decoder", required=True, help="caption checkpoint (.bin or .safetensors)")
    p.add_argument("--vocab", required=True, help="BERT vocab.txt the decoder was trained with")
    p.add_argument("--features", required=True, help=".npy float array (frames, feature dim)")
    p.add_argument("--heads", type=int, help="attention heads (default: file metadata, else hidden // 64)")
    p.add_argument("--max-words", type=int, help="maximum caption length in tokens (default: the model's)")
    p.add_argument("--max-frames", type=int, help="frame slots (default: the model's, 20 for .bin files)")
    p.add_argument("--mask", choices=MASKS[:2],
                   help="video mask convention: repro = as the released checkpoint was trained (all-zero mask), "
                        "frames = mask the padding (UniVL). Default: file metadata, else repro")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--beam", type=int, default=CaptionSettings.default("beam"), metavar="K",
                     help=CaptionSettings.option("beam").help)
    how.add_argument("--greedy", action="store_true", help="greedy decoding instead of beam search")
    p.add_argument("--json", action="store_true", help='print {"token_ids": [...], "caption": "..."}')
    p.set_defaults(func=run)


def _load_features(path: str) -> np.ndarray:
    try:
        arr = np.load(Path(path), allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such features file") from None
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a .npy array file ({str(e)[:120]})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive holds several arrays
        raise InputError(f"{path}: is an .npz archive; save the (frames, dim) array alone with np.save")
    return arr


def run(args) -> int:
    # Imported here so `python -m c4c --help` stays fast.
    from ..captioning.model import CaptionModel, prepare_video
    from ..captioning.decoding import beam_search, greedy
    from ..captioning.tokenizer import Tokenizer

    if args.beam < 1:
        raise InputError(f"--beam must be at least 1 (got {args.beam})")
    tok = Tokenizer.from_file(args.vocab)
    model = CaptionModel.from_file(args.decoder, heads=args.heads, mask=args.mask, max_frames=args.max_frames,
                                   max_words=args.max_words)
    tok.check_fits(model.cfg.vocab_size, f"the decoder {args.decoder}")
    feats = _load_features(args.features)
    if feats.ndim != 2:
        raise InputError(f"{args.features}: features must be 2-D (frames, {model.cfg.video_dim}); "
                         f"got shape {feats.shape}")
    if not np.issubdtype(feats.dtype, np.floating):
        raise InputError(f"{args.features}: features must be floating point; got {feats.dtype}")
    video, mask = prepare_video(feats, model.cfg)
    ids = dict(bos_id=tok.bos_id, eos_id=tok.eos_id)
    if args.greedy:
        hyp = greedy(model, video, mask, **ids)[0]
    else:
        hyp = beam_search(model, video, mask, beam=args.beam, **ids)[0]
    caption = tok.decode(hyp.ids)
    if args.json:
        print(json.dumps({"token_ids": list(hyp.ids), "caption": caption}))
    else:
        print(caption)
    return 0
