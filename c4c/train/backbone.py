"""`python -m c4c train backbone`: pre-training of a small CLIP from scratch on c4c's synthetic
videos (the paper's step 1, in miniature, through the real-size code paths).

Every step sees clips that no earlier step saw (`clip_stream`): a batch of new videos, a few random
frames of each and one random reference caption of each. Two losses:

- CLIP4Clip meanP: frame embeddings L2-normalised, averaged over each video's frames and
  re-normalised; symmetric InfoNCE over the batch with a learnable temperature, clamped to logit
  scale <= ln 100 as CLIP4Clip does. This trains the text tower too.
- Frame read-out (`frame_heads`, weight `frame_loss`): linear heads on each frame embedding read
  the visible shapes, colours, positions, sizes and orientations. Contrastive training alone left
  shape and position undecodable (docs/synthetic-data.md), and the caption decoders need them.
- Patch shapes (weight `patch_loss`): each patch token names the shape covering it, a dense
  signal that makes the from-scratch ViT learn outlines many times faster than a per-frame label.

AdamW, linear warm-up then cosine decay. Every `eval_every` steps: text-to-video retrieval on the
val split, the heads' scores on held-out probe clips, and a resume checkpoint.

Writes to --out: `clip_full.safetensors` (both towers, OpenAI keys, metadata: config, vocabulary,
provenance), `backbone.safetensors` (the image tower only, written by `c4c.vision.backbone.Backbone`, the
file the zoo ships) and `backbone_train.json` (settings, the probe/retrieval curve, timings).
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
from .clip_model import CLIP, ClipConfig, WordTokenizer, mimetic_init_

__all__ = ["BackboneTrainConfig", "TINY", "train_backbone", "contrastive_loss", "embed_videos", "retrieval_metrics"]

FULL_FORMAT = "c4c-clip-full"


@dataclass(frozen=True)
class BackboneTrainConfig:
    """Everything that decides the trained weights (the seed included)."""
    steps: int = 4000             # optimiser steps; each sees batch_videos clips never seen before
    batch_videos: int = 64        # videos (= captions) per contrastive batch
    frames_per_video: int = 2     # random frames per video per step (meanP over them)
    frame_loss: float = 1.0       # weight of the per-frame read-out heads (0: contrastive only)
    patch_loss: float = 5.0       # weight of the per-patch shape target (0: off)
    mimetic: bool = True          # mimetic attention init (a convolution-like start; clip_model.mimetic_init_)
    lr: float = 3e-3              # peak AdamW learning rate (tiny models from scratch like it high)
    weight_decay: float = 0.1     # on matrices only, not on gains, biases, embeddings, temperature
    warmup: float = 0.05          # fraction of all steps spent warming up linearly
    p_jpeg: float = 0.5           # fraction of frames JPEG round-tripped (mimics H.264 at inference)
    two_objects: float = 0.4      # chance of a second object in a training clip (the splits': 0.4)
    vocab_videos: int = 3000      # the text tower's words come from the captions of train_00000..
    val_videos: int = 300         # val videos for the retrieval check
    probe_videos: int = 256       # held-out probe clips (2 frames each) for the read-out scores
    eval_every: int = 500         # steps between checks (and resume checkpoints)
    seed: int = 0
    model: ClipConfig = field(default_factory=ClipConfig)

    def check(self) -> None:
        """InputError (one line) on settings that cannot train."""
        from ..errors import InputError
        if self.steps < 1 or self.val_videos < 1 or self.batch_videos < 2 or self.frames_per_video < 1 \
                or self.eval_every < 1:
            raise InputError("need steps >= 1, val videos >= 1, a batch of >= 2 clips, >= 1 frame per clip "
                             "and eval_every >= 1")
        if self.frame_loss < 0 or self.patch_loss < 0:
            raise InputError("the frame and patch loss weights must be >= 0")
        if not 0 <= self.two_objects <= 1:
            raise InputError(f"two_objects is a chance, between 0 and 1; got {self.two_objects}")


# The CI configuration: seconds, not minutes, and still a real training run.
TINY = BackboneTrainConfig(steps=24, batch_videos=16, frames_per_video=2, lr=2e-3, vocab_videos=60, val_videos=10,
                           probe_videos=16, eval_every=12,
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


def contrastive_loss(model: CLIP, pixels: torch.Tensor, video_of: torch.Tensor, ids: torch.Tensor,
                     frame_emb: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP4Clip meanP loss: frames (F, 3, S, S) of B videos (`video_of`: (F,) in 0..B-1), B captions
    (B, context) -> symmetric InfoNCE over the B x B similarity matrix. `frame_emb`: the frames'
    embeddings when already computed."""
    n = ids.shape[0]
    v = _mean_pool(model.encode_image(pixels) if frame_emb is None else frame_emb, video_of, n)
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


def _evaluate(model: CLIP, heads, val: FrameSet, probe, tok: WordTokenizer) -> dict:
    """Val retrieval (caption 0 of each video) and the heads' scores on the held-out probe clips."""
    from .frame_heads import targets_to_torch
    model.eval()
    with torch.inference_mode():
        text = model.encode_text(tok.batch([c[0] for c in val.captions], model.cfg.context)).float()
        targets, tokens = targets_to_torch(probe.targets), model.visual.tokens(normalize(probe.crops))
        probe_scores = {**heads.scores(model.visual.embed(tokens), targets),
                        "patch": heads.patch_accuracy(tokens[:, 1:], targets)}
    metrics = {**retrieval_metrics(embed_videos(model, val), text), "probe": probe_scores}
    model.train()
    return metrics


def _param_groups(model: CLIP, weight_decay: float) -> list[dict]:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _vocabulary(n_videos: int) -> WordTokenizer:
    """The text tower's words: those of the first `n_videos` training videos' captions."""
    from ..synth import SplitCounts, make_captions, make_scene, split_ids
    ids = split_ids("train", SplitCounts(train=n_videos, val=0, test=0))
    return WordTokenizer.from_captions(c for v in ids for c in make_captions(make_scene(v)))


def train_backbone(out_dir: str | Path, cfg: BackboneTrainConfig = BackboneTrainConfig(),
                   cache_dir: str | Path | None = None, progress: bool = True, workers: int = 1) -> dict:
    """Train, save the three files in `out_dir`, and return the report written to backbone_train.json.

    At every check the whole training state goes to `out_dir/resume.pt`; a run with the same config
    started later continues from there exactly (batches are a function of the step). `workers`:
    processes rendering batches ahead of the optimiser (0: in this process); it does not change the
    weights."""
    from tqdm import tqdm

    from .clip_stream import make_batch, stream_batches
    from .frame_heads import FrameHeads, targets_to_torch

    t_start, cpu_start = time.time(), time.process_time()
    out_dir = Path(out_dir)
    size = cfg.model.image_size
    val = load_or_build(cache_dir, "val", cfg.val_videos, size, 0.0, progress)
    grid = size // cfg.model.patch
    probe = make_batch(cfg.seed, 0, cfg.probe_videos, 2, size, cfg.p_jpeg, prefix="probe", grid=grid)
    tok = _vocabulary(cfg.vocab_videos)
    t_data = time.time() - t_start
    mcfg = replace(cfg.model, vocab_size=len(tok))

    torch.manual_seed(cfg.seed)
    model = CLIP(mcfg).train()
    if cfg.mimetic:
        mimetic_init_(model.visual.transformer)
    heads = FrameHeads(mcfg.embed_dim, mcfg.width)
    groups = _param_groups(model, cfg.weight_decay) + [{"params": list(heads.parameters()), "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    total, warm = cfg.steps, max(1, int(cfg.warmup * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    history: list[dict] = []
    resume = out_dir / "resume.pt"
    signature = json.dumps(_jsonable(asdict(cfg)), sort_keys=True)
    spent = {"wall": 0.0, "cpu": 0.0}  # time spent by earlier, interrupted runs
    step0 = 0
    if resume.exists():
        state = torch.load(resume, map_location="cpu", weights_only=True)
        if state.get("config") == signature:
            model.load_state_dict(state["model"])
            heads.load_state_dict(state["heads"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            torch.set_rng_state(state["torch_rng"])
            history, spent, step0 = state["history"], state["spent"], state["step"]
            if progress:
                tqdm.write(f"resuming backbone training after step {step0} ({resume})")
    bar = tqdm(total=total, initial=step0, desc="backbone", unit="step", disable=not progress, mininterval=2.0)
    losses: list[float] = []
    batches = stream_batches(cfg.seed, step0, total, cfg.batch_videos, cfg.frames_per_video, size, cfg.p_jpeg,
                             grid=grid, workers=workers, two_objects=cfg.two_objects)
    for step, batch in enumerate(batches, start=step0 + 1):
        pixels = normalize(batch.crops)
        tokens = model.visual.tokens(pixels)
        emb = model.visual.embed(tokens)
        loss = contrastive_loss(model, pixels, torch.from_numpy(batch.video_of), tok.batch(batch.captions, mcfg.context),
                                frame_emb=emb)
        targets = targets_to_torch(batch.targets)
        if cfg.frame_loss:
            loss = loss + cfg.frame_loss * heads.loss(emb, targets)
        if cfg.patch_loss:
            loss = loss + cfg.patch_loss * heads.patch_loss(tokens[:, 1:], targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", T=f"{model.logit_scale.exp().item():.1f}")
        if step % cfg.eval_every and step != total:
            continue
        metrics = {"step": step, "loss": round(float(np.mean(losses[-cfg.eval_every:])), 4),
                   **_evaluate(model, heads, val, probe, tok), "elapsed_s": round(time.time() - t_start, 1)}
        history.append(metrics)
        _checkpoint(resume, {"config": signature, "model": model.state_dict(), "heads": heads.state_dict(),
                             "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                             "torch_rng": torch.get_rng_state(), "history": history,
                             "spent": {"wall": spent["wall"] + time.time() - t_start,
                                       "cpu": spent["cpu"] + time.process_time() - cpu_start}})
        if progress:
            p = metrics["probe"]
            tqdm.write(f"step {step}: loss {metrics['loss']:.3f}  val t2v R@1 {metrics['t2v_r1']:.1f}  probe: shape "
                       f"{p['shape']:.1f}% colour {p['colour']:.1f}% position {p['pos_px']:.1f} px "
                       f"turn {p['turn_deg']:.0f} deg")
    bar.close()
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
        "training": f"CLIP4Clip meanP contrastive + per-frame read-out heads (weight {cfg.frame_loss:g}) + "
                    f"per-patch shapes (weight {cfg.patch_loss:g}), "
                    f"{cfg.steps} steps of {cfg.batch_videos} new clips, seed {cfg.seed}",
        "data": f"c4c.synth clips pre{cfg.seed}_* rendered afresh ({cfg.steps * cfg.batch_videos} clips; "
                "synthetic shapes, 20 captions each); none of the train/val/test split ids",
        "val": {k: final[k] for k in ("t2v_r1", "t2v_r5", "v2t_r1", "v2t_r5")},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    full, vision = out_dir / "clip_full.safetensors", out_dir / "backbone.safetensors"
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    save_safetensors(sd, full, {"format": FULL_FORMAT, "clip_config": mcfg.to_dict(), "vocab": tok.words,
                                "train_config": _jsonable(asdict(cfg)), "provenance": provenance})
    Backbone.from_state_dict(model.vision_state_dict(), provenance=provenance, source="trained CLIP").save(vision)
    return {"full": str(full), "backbone": str(vision)}
