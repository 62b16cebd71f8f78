"""Fine-tune one caption decoder (TE + TD) with cross-entropy; keep the epoch with the best val CIDEr-D.

The CLIP4Caption recipe (paper 2.2): a 1-layer video encoder and a 3-layer transformer decoder on
per-frame CLIP4Clip embeddings, optionally initialised from `univl.pretrained.bin` (docs/reference.md 2.4, 2.8),
trained with cross-entropy only. Optimisation follows UniVL's caption recipe (docs/reference.md 2.7): Adam with
decoupled weight decay 0.01, linear warm-up over the first 10% of steps then linear decay to 0,
gradient norm clipped at 1.0. After every epoch the val videos are decoded (greedy by default) and
scored with CIDEr-D, IDF from the val references (the reference convention, docs/reference.md 4); the best
epoch is written as c4c safetensors with its provenance.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from .caption_data import PAD_LOSS_MODES, Annotations, CaptionSet, batch_logits, caption_loss, trim_frame_slots

__all__ = ["DecoderTrainConfig", "TrainOutcome", "TrainData", "load_train_data", "build_model", "decode_texts",
           "describe_init", "read_metadata", "train_decoder"]


@dataclass(frozen=True)
class DecoderTrainConfig:
    """Model sizes and optimisation settings of one decoder run."""
    seed: int = 0                 # weight init and dropout
    data_seed: int | None = None  # order of the training pairs; None = seed
    te_layers: int = 1            # video encoder layers (paper: 1)
    td_layers: int = 3            # decoder layers (paper: 3)
    hidden: int | None = None     # transformer width; None = the UniVL file's with --init, else 128
    heads: int = 0                # attention heads; 0 = hidden // 64 (BERT-base rule)
    ffn: int | None = None        # feed-forward width; None = the UniVL file's with --init, else 4 x hidden
    dropout: float = 0.1          # hidden + attention dropout while training
    lr: float = 1e-3              # peak learning rate (small models want more than UniVL's 3e-5)
    weight_decay: float = 0.01    # decoupled, on matrices only (not biases / LayerNorms)
    warmup: float = 0.1           # fraction of steps with linear warm-up
    epochs: int = 10
    batch_size: int = 64          # caption rows per step
    captions_per_video: int | None = 4  # per epoch, k captions drawn afresh per video; None = all (reference)
    bucket: int = 32              # sort runs of this many batches by caption length (0 = off): ~1/3 faster
    max_frames: int = 20          # frame slots (the reproduction's 20)
    max_words: int = 48           # caption length incl. [CLS] (docs/reference.md 2.3)
    mask: str = "frames"          # video mask convention ("frames" | "repro", docs/reference.md 3.4)
    pad_loss: str = "ignore"      # "ignore" | "reference" (see caption_data.caption_loss)
    val_beam: int = 5             # val decoding for selection: 5 = the test-time beam (reference eval_epoch); 1 = greedy
    val_last: int = 0             # validate only the last k epochs and keep the best of those (0: every epoch,
                                  # as the reference); each epoch's history row has its val seconds
    threads: int = 2              # torch threads while training

    def check(self) -> None:
        if self.pad_loss not in PAD_LOSS_MODES:
            raise InputError(f"pad_loss must be one of {PAD_LOSS_MODES}, got {self.pad_loss!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InputError("epochs and batch size must be >= 1 and the learning rate > 0")
        if self.val_last < 0:
            raise InputError(f"val_last must be 0 (every epoch) or more, got {self.val_last}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class TrainData:
    """Everything a run reads, loaded once (build-zoo trains five decoders on it)."""
    annotations: Annotations
    features: Mapping[str, np.ndarray]
    tokenizer: object
    sources: dict                 # file paths and digests, for provenance
    _sets: dict = field(default_factory=dict, repr=False)

    @property
    def video_dim(self) -> int:
        return int(np.asarray(next(iter(self.features.values()))).shape[1])

    def split(self, name: str, model_cfg) -> CaptionSet:
        key = (name, model_cfg.mask, model_cfg.max_frames, model_cfg.max_words)
        if key not in self._sets:
            self._sets[key] = CaptionSet(self.annotations, self.features, self.tokenizer, name, model_cfg)
        return self._sets[key]


@dataclass(frozen=True)
class TrainOutcome:
    path: Path
    best_epoch: int               # 1-based
    best_cider: float             # val CIDEr-D (x100) of the saved epoch
    history: tuple[dict, ...]     # per epoch: loss, val_cider, seconds
    init_report: object = None    # LoadReport when initialised from UniVL


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


def load_train_data(features: str | Path, annotations: str | Path, vocab: str | Path) -> TrainData:
    """Read annotations, features (reference pickle or c4c npz, `c4c.features_io`) and the vocabulary."""
    from ..features.files import load_features
    from ..captioning.tokenizer import Tokenizer
    from .caption_data import load_annotations
    paths = {"features": Path(features), "annotations": Path(annotations), "vocab": Path(vocab)}
    ann = load_annotations(paths["annotations"])
    feats = load_features(paths["features"])
    if not feats:
        raise InputError(f"{features}: the features file holds no videos")
    tok = Tokenizer.from_file(paths["vocab"])
    sources = {k: {"file": str(p), "sha256_16": _digest(p)} for k, p in paths.items()}
    return TrainData(ann, feats, tok, sources)


def describe_init(report) -> str:
    """The LoadReport's summary plus the loaded tensors grouped by layer ("visual.encoder.layer.0: 16")."""
    groups: dict[str, int] = {}
    for key in report.loaded:
        parts = key.split(".")
        cut = next((i + 2 for i, p in enumerate(parts) if p == "layer"), min(3, len(parts) - 1))
        head = ".".join(parts[:cut])
        groups[head] = groups.get(head, 0) + 1
    lines = [report.summary(), "  loaded from the file:"]
    lines += [f"    {head}: {n} tensor(s)" for head, n in groups.items()]
    return "\n".join(lines)


def read_metadata(path: str | Path) -> dict:
    """The JSON-decoded safetensors metadata of a decoder written by `train_decoder` (settings and
    provenance), read with the safetensors library directly."""
    import json

    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _univl_sizes(path: str | Path) -> dict:
    """Widths of a UniVL file, so a model built with them loads every matching tensor."""
    from ..checkpoints import load_state_dict
    sd = load_state_dict(path)

    def first(*keys):
        return next((tuple(sd[k].shape) for k in keys if k in sd), None)
    word = first("decoder.embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight")
    ffn = first("decoder.decoder.layer.0.intermediate.dense.weight", "visual.encoder.layer.0.intermediate.dense.weight")
    vpos = first("visual.embeddings.position_embeddings.weight")
    dpos = first("decoder.embeddings.position_embeddings.weight", "bert.embeddings.position_embeddings.weight")
    out = {}
    if word:
        out["hidden"] = word[1]
    if ffn:
        out["intermediate"] = ffn[0]
    if vpos:
        out["visual_positions"] = vpos[0]
    if dpos:
        out["decoder_positions"] = dpos[0]
    return out


def build_model(cfg: DecoderTrainConfig, video_dim: int, vocab_size: int, init: str | Path | None = None):
    """(CaptionModel, LoadReport | None). Fresh models get just enough positions (max_frames,
    max_words) to stay small; with `init`, the position tables and any width left unset (None) are
    the UniVL file's, so that its tensors fit, and `init_from_univl` copies every tensor that matches
    (the rest keeps its fresh init and is listed in the report)."""
    from ..captioning.model import CaptionConfig, CaptionModel
    from ..captioning.univl import init_from_univl
    univl = _univl_sizes(init) if init is not None else {}
    hidden = cfg.hidden or univl.get("hidden", 128)
    sizes = dict(hidden=hidden,
                 intermediate=cfg.ffn or (univl["intermediate"] if univl.get("hidden") == hidden and "intermediate" in univl
                                          else 4 * hidden),
                 visual_positions=max(cfg.max_frames, univl.get("visual_positions", 0)),
                 decoder_positions=max(cfg.max_words, univl.get("decoder_positions", 0)))
    heads = cfg.heads
    mcfg = CaptionConfig(video_dim=video_dim, heads=heads, te_layers=cfg.te_layers, td_layers=cfg.td_layers,
                         vocab_size=vocab_size, mask=cfg.mask, max_frames=cfg.max_frames, max_words=cfg.max_words,
                         dropout=cfg.dropout, **sizes)
    torch.manual_seed(cfg.seed)
    model = CaptionModel(mcfg)
    report = init_from_univl(model, init) if init is not None else None
    return model, report


@torch.inference_mode()
def decode_texts(model, video: torch.Tensor, video_mask: torch.Tensor, tokenizer, beam: int = 1,
                 batch_size: int = 128, max_words: int | None = None, progress: bool = False) -> list[str]:
    """Caption texts for (N, T, D) videos: greedy (beam 1) or reference-semantics beam search."""
    from ..captioning.decoding import beam_search, greedy
    was_training = model.training
    model.eval()
    texts: list[str] = []
    starts = range(0, video.shape[0], batch_size)
    for s in tqdm(starts, desc="decoding", leave=False, disable=not progress):
        v, m = video[s: s + batch_size], video_mask[s: s + batch_size]
        if model.cfg.mask == "frames":  # padded slots are masked: cutting them changes nothing but time
            v, m = trim_frame_slots(v, m)
        ids = dict(bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)  # the vocabulary's, not BERT's
        hyps = greedy(model, v, m, max_words=max_words, **ids) if beam == 1 else \
            beam_search(model, v, m, beam=beam, max_words=max_words, **ids)
        texts.extend(tokenizer.decode(h.ids) for h in hyps)
    model.train(was_training)
    return texts


def val_cider(model, val: CaptionSet, tokenizer, beam: int = 1) -> tuple[float, list[str]]:
    """Val CIDEr-D x100 (IDF from the val references, as the reference evaluation computes it)."""
    from ..vote.metrics import sentence_scores
    texts = decode_texts(model, val.video, val.video_mask, tokenizer, beam=beam)
    return 100.0 * float(np.mean(sentence_scores("cider", val.refs, texts))), texts


def _schedule(step: int, total: int, warmup: float) -> float:
    """UniVL's warmup_linear: ramp to 1 over `warmup` of the steps, then linear decay to 0."""
    w = max(1, int(total * warmup))
    return (step + 1) / w if step < w else max(0.0, (total - step) / max(1, total - w))


def train_decoder(data: TrainData, cfg: DecoderTrainConfig, out: str | Path, init: str | Path | None = None,
                  name: str = "", progress: bool = True, log: Callable[[str], None] = print,
                  position: int | None = None) -> TrainOutcome:
    """Train one decoder and save its best-val-CIDEr-D epoch at `out` (c4c safetensors).
    `position` places the progress bar when several runs share a terminal."""
    cfg.check()
    out = Path(out)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))  # set only for this run; restored below
    try:
        model, report = build_model(cfg, data.video_dim, len(data.tokenizer), init)
        if report is not None:
            log(describe_init(report))
        train = data.split("train", model.cfg)
        val = data.split("val", model.cfg)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        steps_per_epoch = math.ceil(train.n_rows(cfg.captions_per_video) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, total, cfg.warmup))
        gen = torch.Generator().manual_seed(cfg.seed if cfg.data_seed is None else cfg.data_seed)
        trim = cfg.pad_loss == "ignore"
        history: list[dict] = []
        best = (-1.0, 0, None)  # (val cider, epoch, state dict)
        label = name or out.stem
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            losses = []
            bar = tqdm(train.batches(cfg.batch_size, gen, trim=trim, per_video=cfg.captions_per_video,
                                     bucket=cfg.bucket),
                       total=steps_per_epoch, leave=False, position=position, mininterval=1.0,
                       desc=f"{label} epoch {epoch}/{cfg.epochs}", disable=not progress)
            for batch in bar:
                logits = batch_logits(model, batch)
                loss = caption_loss(logits, batch, cfg.pad_loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "val_cider": None,
                   "seconds": round(time.perf_counter() - t0, 1)}
            history.append(row)
            if cfg.val_last and epoch <= cfg.epochs - cfg.val_last:
                log(f"{label} epoch {epoch}: loss {row['loss']:.3f}  ({row['seconds']}s; not validated)")
                continue
            t1 = time.perf_counter()
            cider, texts = val_cider(model, val, data.tokenizer, cfg.val_beam)
            row.update(val_cider=round(cider, 2), val_seconds=round(time.perf_counter() - t1, 1))
            log(f"{label} epoch {epoch}: loss {row['loss']:.3f}  val CIDEr-D {cider:.1f}  ({row['seconds']}s + "
                f"{row['val_seconds']}s val)  e.g. {texts[0]!r}")
            if cider > best[0]:
                best = (cider, epoch, copy.deepcopy(model.state_dict()))
        model.load_state_dict(best[2])
        model.eval()
        provenance = {
            "trained_by": "python -m c4c train decoder",
            "name": label,
            "data": {**data.sources, "train_videos": len(train.video_ids), "train_pairs": len(train),
                     "val_videos": len(val.video_ids)},
            "hyper": asdict(replace(cfg, threads=0)),
            "init": str(init) if init else "random (normal 0.02)",
            "init_loaded": len(report.loaded) if report is not None else 0,
            "selection": f"best val CIDEr-D ({'greedy' if cfg.val_beam == 1 else f'beam {cfg.val_beam}'}, "
                         "IDF from val refs)",
            "val_cider": round(best[0], 2),
            "epoch": best[1],
            "history": history,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        model.save(tmp, provenance=provenance)
        tmp.chmod(0o644)
        tmp.replace(out)
        log(f"{label}: saved epoch {best[1]} (val CIDEr-D {best[0]:.1f}) to {out}")
        return TrainOutcome(out, best[1], best[0], tuple(history), report)
    finally:
        torch.set_num_threads(old_threads)
