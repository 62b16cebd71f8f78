"""`python -m c4c train backbone`: CLIP4Clip meanP contrastive training of a small CLIP from scratch
on c4c's synthetic videos (the paper's step 1, in miniature, through the real-size code paths).

Per step: a batch of videos, a few random 1-fps frames of each and one random reference caption of
each. Frame embeddings are L2-normalised, averaged over each video's frames and re-normalised
(meanP); the loss is symmetric InfoNCE over the batch with a learnable temperature, clamped to
logit scale <= ln 100 as CLIP4Clip does. AdamW, linear warm-up then cosine decay. Text-to-video
retrieval R@1/R@5 on the val split after every epoch.

Writes to --out: `clip_full.safetensors` (both towers, OpenAI keys, metadata: config, vocabulary,
provenance), `backbone.safetensors` (the image tower only, written by `c4c.backbone.Backbone`, the
file the zoo ships) and `backbone_train.json` (settings, per-epoch metrics, timings).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..video.preprocess import normalize
from .backbone_data import FrameSet, load_or_build
from .clip_model import CLIP, ClipConfig, WordTokenizer

__all__ = ["BackboneTrainConfig", "TINY", "train_backbone", "epoch_order", "contrastive_loss", "embed_videos", "retrieval_metrics",
           "add_cli"]

FULL_FORMAT = "c4c-clip-full"


@dataclass(frozen=True)
class BackboneTrainConfig:
    """Everything that decides the trained weights (the seed included)."""
    videos: int = 3000            # training videos: train_00000 .. (a prefix of the train split)
    val_videos: int = 300         # val videos for the per-epoch retrieval check
    epochs: int = 30              # 46 steps each: ~1,400 steps (the first ~80 are a plateau)
    batch_videos: int = 64        # videos (= captions) per contrastive batch: more, cheaper steps
    frames_per_video: int = 2     # random 1-fps frames per video per step (meanP over them)
    lr: float = 2e-3              # peak AdamW learning rate (tiny models from scratch like it high)
    weight_decay: float = 0.1     # on matrices only, not on gains, biases, embeddings, temperature
    warmup: float = 0.05          # fraction of all steps spent warming up linearly
    group_size: int = 0           # > 1: runs of this many videos per batch share their first shape's
                                  # colour (hard negatives); 0 = random batches, as CLIP4Clip. On 1,000
                                  # videos, 16 did not make shape linearly decodable (probe), so off
    p_jpeg: float = 0.5           # fraction of frames JPEG round-tripped (mimics H.264 at inference)
    seed: int = 0
    model: ClipConfig = field(default_factory=ClipConfig)


# The CI configuration: seconds, not minutes, and still a real training run.
TINY = BackboneTrainConfig(videos=60, val_videos=10, epochs=2, batch_videos=20, frames_per_video=2, lr=2e-3,
                           model=ClipConfig(image_size=32, patch=8, width=64, layers=1, embed_dim=64,
                                            text_width=64, text_layers=1))


def retrieval_metrics(video: torch.Tensor, text: torch.Tensor) -> dict[str, float]:
    """Text->video and video->text R@1/R@5/R@10 (%) and median rank; row i of each matches row i."""
    sim = F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).T  # (n_text, n_video)
    out = {}
    for name, s in (("t2v", sim), ("v2t", sim.T)):
        # Rank of the true match = number of candidates scoring strictly higher (ties count in its favour).
        ranks = (s > s.diagonal()[:, None]).sum(1)
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = round(100.0 * float((ranks < k).float().mean()), 2)
        out[f"{name}_medr"] = float(ranks.float().median()) + 1
    return out


def _mean_pool(frame_emb: torch.Tensor, video_of: torch.Tensor, n_videos: int) -> torch.Tensor:
    """meanP: normalise frames, average per video, normalise again. (F, E) -> (V, E)."""
    frame_emb = F.normalize(frame_emb, dim=-1)
    sums = torch.zeros(n_videos, frame_emb.shape[1], dtype=frame_emb.dtype).index_add_(0, video_of, frame_emb)
    return F.normalize(sums, dim=-1)


def epoch_order(rng: np.random.Generator, keys: list[str], group: int) -> np.ndarray:
    """A permutation of range(len(keys)) in which consecutive runs of `group` videos share a key
    (hard negatives inside each batch); runs are shuffled, so a batch mixes several keys. Each
    key's leftover (< group) goes to the end, so runs stay aligned with batches of k * group."""
    if group <= 1:
        return rng.permutation(len(keys))
    by_key: dict[str, list[int]] = {}
    for i in rng.permutation(len(keys)):
        by_key.setdefault(keys[i], []).append(int(i))
    runs = [idx[j:j + group] for k in sorted(by_key) for idx in (by_key[k],) for j in range(0, len(idx), group)]
    full = [r for r in runs if len(r) == group]
    rest = [i for r in runs if len(r) < group for i in r]
    return np.asarray([i for r in rng.permutation(len(full)) for i in full[r]] + rest, dtype=np.int64)


def contrastive_loss(model: CLIP, pixels: torch.Tensor, video_of: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """CLIP4Clip meanP loss: frames (F, 3, S, S) of B videos (`video_of`: (F,) in 0..B-1), B captions
    (B, context) -> symmetric InfoNCE over the B x B similarity matrix."""
    n = ids.shape[0]
    v = _mean_pool(model.encode_image(pixels), video_of, n)
    t = F.normalize(model.encode_text(ids), dim=-1)
    logits = model.logit_scale.exp() * v @ t.T  # (B videos, B texts)
    target = torch.arange(n)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def embed_videos(model: CLIP, frames: FrameSet, batch: int = 256) -> torch.Tensor:
    """meanP video embeddings (V, E) over all cached frames of every video."""
    video_of = torch.from_numpy(np.repeat(np.arange(len(frames.ids)), np.diff(frames.offsets)))
    embs = []
    with torch.inference_mode():
        for i in range(0, len(frames.crops), batch):
            embs.append(model.encode_image(normalize(frames.crops[i:i + batch])).float())
    return _mean_pool(torch.cat(embs), video_of, len(frames.ids))


def _evaluate(model: CLIP, val: FrameSet, tok: WordTokenizer) -> dict[str, float]:
    model.eval()
    with torch.inference_mode():
        text = model.encode_text(tok.batch([c[0] for c in val.captions], model.cfg.context)).float()
    metrics = retrieval_metrics(embed_videos(model, val), text)
    model.train()
    return metrics


def _param_groups(model: CLIP, weight_decay: float) -> list[dict]:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train_backbone(out_dir: str | Path, cfg: BackboneTrainConfig = BackboneTrainConfig(),
                   cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train, save the three files in `out_dir`, and return the report written to backbone_train.json.

    After every epoch the whole training state goes to `out_dir/resume.pt`; a run with the same
    config started later continues from there (an interrupted zoo build loses at most one epoch)."""
    from tqdm import tqdm

    t_start, cpu_start = time.time(), time.process_time()
    out_dir = Path(out_dir)
    size = cfg.model.image_size
    train = load_or_build(cache_dir, "train", cfg.videos, size, cfg.p_jpeg, progress)
    val = load_or_build(cache_dir, "val", cfg.val_videos, size, 0.0, progress)
    t_data = time.time() - t_start
    tok = WordTokenizer.from_captions(c for caps in train.captions for c in caps)
    longest = max(len(tok.split(c)) for caps in train.captions for c in caps) + 2
    mcfg = replace(cfg.model, vocab_size=len(tok), context=max(cfg.model.context, longest))

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)  # data order and frame/caption choice; on this machine only
    model = CLIP(mcfg).train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    steps_per_epoch = max(1, len(train.ids) // cfg.batch_videos)  # drop the ragged tail: InfoNCE wants full batches
    total, warm = steps_per_epoch * cfg.epochs, max(1, int(cfg.warmup * steps_per_epoch * cfg.epochs))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    counts = np.diff(train.offsets)
    from ..synth import make_scene
    keys = [make_scene(v).tracks[0].colour for v in train.ids]  # the grouping key: first shape's colour
    history: list[dict] = []
    resume = out_dir / "resume.pt"
    signature = json.dumps(_jsonable(asdict(cfg)), sort_keys=True)
    spent = {"wall": 0.0, "cpu": 0.0}  # time spent by earlier, interrupted runs
    if resume.exists():
        state = torch.load(resume, map_location="cpu", weights_only=True)
        if state.get("config") == signature:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            rng.bit_generator.state = json.loads(state["rng"])
            torch.set_rng_state(state["torch_rng"])
            history, spent = state["history"], state["spent"]
            if progress:
                tqdm.write(f"resuming backbone training after epoch {len(history)} ({resume})")
    for epoch in range(len(history), cfg.epochs):
        order = epoch_order(rng, keys, cfg.group_size)
        bar = tqdm(range(steps_per_epoch), desc=f"backbone epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=not progress, mininterval=1.0)
        losses = []
        for step in bar:
            vids = order[step * cfg.batch_videos:(step + 1) * cfg.batch_videos]
            picks, video_of = [], []
            for j, v in enumerate(vids):
                k = min(cfg.frames_per_video, counts[v])
                picks.extend(train.offsets[v] + np.sort(rng.choice(counts[v], k, replace=False)))
                video_of.extend([j] * k)
            pixels = normalize(train.crops[np.asarray(picks)])
            texts = [train.captions[v][rng.integers(len(train.captions[v]))] for v in vids]
            loss = contrastive_loss(model, pixels, torch.as_tensor(video_of), tok.batch(texts, mcfg.context))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", T=f"{model.logit_scale.exp().item():.1f}")
        metrics = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), **_evaluate(model, val, tok),
                   "elapsed_s": round(time.time() - t_start, 1)}
        history.append(metrics)
        _checkpoint(resume, {"config": signature, "model": model.state_dict(), "opt": opt.state_dict(),
                             "sched": sched.state_dict(), "rng": json.dumps(rng.bit_generator.state),
                             "torch_rng": torch.get_rng_state(), "history": history,
                             "spent": {"wall": spent["wall"] + time.time() - t_start,
                                       "cpu": spent["cpu"] + time.process_time() - cpu_start}})
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {metrics['loss']:.3f}  val t2v R@1 {metrics['t2v_r1']:.1f} "
                       f"R@5 {metrics['t2v_r5']:.1f}  v2t R@1 {metrics['v2t_r1']:.1f}")
    report = {"config": _jsonable(asdict(cfg)), "model": mcfg.to_dict(), "history": history,
              "final": history[-1], "data_s": round(t_data, 1),
              "total_s": round(spent["wall"] + time.time() - t_start, 1),
              "cpu_s": round(spent["cpu"] + time.process_time() - cpu_start, 1), "threads": torch.get_num_threads(),
              "files": _save(model, mcfg, tok, cfg, history[-1], out_dir)}
    (out_dir / "backbone_train.json").write_text(json.dumps(report, indent=1) + "\n")
    resume.unlink(missing_ok=True)
    return report


def _checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never a half-written resume file


def _jsonable(d):
    return json.loads(json.dumps(d, default=str))


def _save(model: CLIP, mcfg: ClipConfig, tok: WordTokenizer, cfg: BackboneTrainConfig, final: dict,
          out_dir: Path) -> dict[str, str]:
    from ..vision.backbone import Backbone
    from ..checkpoints import save_safetensors

    m = mcfg
    provenance = {
        "model": f"mini CLIP ViT: {m.image_size} px, patch {m.patch}, width {m.width}, {m.layers} layers, "
                 f"embed {m.embed_dim}; random init",
        "training": f"CLIP4Clip meanP contrastive, {cfg.epochs} epochs, {cfg.videos} videos, seed {cfg.seed}",
        "data": f"c4c.synth train_00000..train_{cfg.videos - 1:05d} (synthetic shapes, 20 captions each)",
        "val": {k: final[k] for k in ("t2v_r1", "t2v_r5", "v2t_r1", "v2t_r5")},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    full, vision = out_dir / "clip_full.safetensors", out_dir / "backbone.safetensors"
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    save_safetensors(sd, full, {"format": FULL_FORMAT, "clip_config": mcfg.to_dict(), "vocab": tok.words,
                                "train_config": _jsonable(asdict(cfg)), "provenance": provenance})
    Backbone.from_state_dict(model.vision_state_dict(), provenance=provenance, source="trained CLIP").save(vision)
    return {"full": str(full), "backbone": str(vision)}


def add_cli(subparsers) -> None:
    """Register `backbone` under `python -m c4c train`."""
    d = BackboneTrainConfig()
    p = subparsers.add_parser("backbone", help="CLIP4Clip meanP training of the mini CLIP on synthetic videos",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tiny", action="store_true", help="the CI configuration (tiny model, 60 videos, 2 epochs)")
    p.add_argument("--videos", type=int, help=f"training videos (default {d.videos})")
    p.add_argument("--val-videos", type=int, help=f"val videos (default {d.val_videos})")
    p.add_argument("--epochs", type=int, help=f"epochs (default {d.epochs})")
    p.add_argument("--batch", type=int, help=f"videos per batch (default {d.batch_videos})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--group", type=int, help=f"videos per batch sharing a colour (default {d.group_size}; 0 = random)")
    p.add_argument("--frames", type=int, help=f"random frames per video per step (default {d.frames_per_video})")
    for name in ("image_size", "patch", "width", "layers", "embed_dim", "text_width", "text_layers"):
        p.add_argument("--" + name.replace("_", "-"), type=int, dest=name,
                       help=f"model: {name.replace('_', ' ')} (default {getattr(d.model, name)})")
    p.add_argument("--cache", help="frame cache folder (default OUT/cache; 'none' to keep nothing)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..errors import InputError
    torch.set_num_threads(args.threads)
    cfg = TINY if args.tiny else BackboneTrainConfig()
    over = {"videos": args.videos, "val_videos": args.val_videos, "epochs": args.epochs, "batch_videos": args.batch,
            "lr": args.lr, "seed": args.seed, "frames_per_video": args.frames,
            "group_size": args.group}
    model = {k: getattr(args, k) for k in ("image_size", "patch", "width", "layers", "embed_dim", "text_width",
                                            "text_layers") if getattr(args, k) is not None}
    try:
        over["model"] = replace(cfg.model, **model)
    except ValueError as e:
        raise InputError(str(e)) from None
    cfg = replace(cfg, **{k: v for k, v in over.items() if v is not None})
    if cfg.videos < 2 or cfg.val_videos < 1 or cfg.epochs < 1 or cfg.batch_videos < 2 or cfg.frames_per_video < 1:
        raise InputError("need --videos >= 2, --val-videos >= 1, --epochs >= 1, --batch >= 2 and --frames >= 1")
    cache = None if args.cache == "none" else Path(args.cache or Path(args.out) / "cache")
    report = train_backbone(args.out, cfg, cache, progress=not args.quiet)
    f = report["final"]
    print(f"backbone: {report['files']['backbone']}  val t2v R@1 {f['t2v_r1']:.1f} R@5 {f['t2v_r5']:.1f}  "
          f"({report['total_s']:.0f} s)")
    return 0
