"""Caption decoding: beam search with the reference semantics, and greedy decoding.

Beam semantics (UniVL `modules/beam.py` + `eval_epoch`, SPEC 2.5, golden README 5): step 1 expands
only row 0 (every row is `[CLS]`); later steps add each row's cumulative score to its log-softmax,
flatten beam x V, keep the sorted top-k, back-pointer `idx // V`, token `idx % V`. Beams that
emitted `[SEP]` are not frozen and keep being extended. A video stops when the top candidate of a
step is `[SEP]`, else after `max_words` steps; the result is the top beam, backtracked, i.e. every
generated token (it may hold an earlier `[SEP]`; the caption text cuts at the first one).

`beam_search` and `greedy` keep the decoder's keys/values: cross-attention K/V once per video,
self-attention K/V per step (reordered by the back-pointers), and run the classifier on the new
position only. `beam_search_reference` re-runs the decoder (and classifier) on the full prefix
every step as the reference does: a slow baseline for benchmarks and a cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .captioner import CaptionModel, additive_mask
from .errors import InputError

__all__ = ["Hypothesis", "beam_search", "greedy", "beam_search_reference", "BOS_ID", "EOS_ID"]

BOS_ID = 101  # [CLS] in BERT vocabularies: the decoder's start token
EOS_ID = 102  # [SEP]: the end token


@dataclass(frozen=True)
class Hypothesis:
    """The decoded caption of one video."""
    ids: tuple[int, ...]  # generated ids after [CLS]; ends with [SEP] when decoding stopped on it
    score: float          # sum of the tokens' log-softmax values (no length normalisation)


class _CachedState:
    """Decoder state with KV caches; rows are grouped by video, G rows per video."""

    def __init__(self, model: CaptionModel, memory, video_mask, max_words: int):
        cfg = model.cfg
        self.model = model
        self.mem_kv = model.memory_kv(memory)                 # per layer (B, nh, T, dh) x 2
        self.mem_mask = additive_mask(video_mask, memory.dtype)  # (B, 1, 1, T)
        b = memory.shape[0]
        # Self-attention keys/values of every layer and position so far: (layers, 2, N, nh, Lmax, dh).
        self.cache = memory.new_zeros(cfg.td_layers, 2, b, cfg.heads, max_words, cfg.head_dim)

    def select(self, rows, videos):
        """Keep cache rows `rows` (beam reorder) and the memory of `videos` (finished ones leave)."""
        self.cache = self.cache.index_select(2, rows)
        if videos is not None:
            self.mem_kv = [(k.index_select(0, videos), v.index_select(0, videos)) for k, v in self.mem_kv]
            self.mem_mask = self.mem_mask.index_select(0, videos)

    def logp(self, tokens, pos: int):  # tokens (N,) at position pos -> (N, V) log-probabilities
        h = self.model.step(tokens, pos, self.cache, self.mem_kv, self.mem_mask)
        return self.model.logits(h).log_softmax(-1)


class _PrefixState:
    """The reference's way: keep the whole prefix, re-run the decoder on it every step."""

    def __init__(self, model: CaptionModel, memory, video_mask, max_words: int):
        self.model, self.memory, self.video_mask = model, memory, video_mask
        self.prefix = torch.empty(memory.shape[0], 0, dtype=torch.long, device=memory.device)
        self.group = 1

    def select(self, rows, videos):
        self.prefix = self.prefix.index_select(0, rows)
        if videos is not None:
            self.memory = self.memory.index_select(0, videos)
            self.video_mask = self.video_mask.index_select(0, videos)
        self.group = rows.shape[0] // self.memory.shape[0]

    def logp(self, tokens, pos: int):
        self.prefix = torch.cat([self.prefix, tokens[:, None]], 1)
        memory = self.memory.repeat_interleave(self.group, 0)  # the reference repeats the memory per beam
        video_mask = self.video_mask.repeat_interleave(self.group, 0)
        hidden = self.model.decoder_states(self.prefix, memory, video_mask, torch.ones_like(self.prefix))[-1]
        return self.model.logits(hidden)[:, -1].log_softmax(-1)  # classifier on every position, as the reference


def _search(state, n_videos: int, beam: int, max_words: int, bos_id: int, eos_id: int, suppress_eos: bool,
            argmax: bool, device) -> list[Hypothesis]:
    """The beam bookkeeping shared by all decoders (greedy: beam 1 with argmax choices)."""
    hist_tok, hist_back = [], []   # per step: (nA, K) tokens and back-pointers of the active videos
    hist_videos = []               # per step: (nA,) original index of each active video
    finals = [None] * n_videos     # (last step, score) per video
    active = torch.arange(n_videos, device=device)
    tokens = torch.full((n_videos,), bos_id, dtype=torch.long, device=device)
    group = 1                      # state rows per active video (1 before the first step: all rows are [CLS])
    scores = tok = back = None
    for step in range(1, max_words + 1):
        logp = state.logp(tokens, step - 1)                        # (nA * group, V)
        if suppress_eos:
            logp[:, eos_id] = float("-inf")
        vocab = logp.shape[-1]
        if argmax:
            tok = logp.argmax(-1, keepdim=True)                    # (nA, 1)
            gained = logp.gather(-1, tok)
            scores = gained if scores is None else scores + gained
            back = torch.zeros_like(tok)
        elif scores is None:                                       # step 1: expand row 0 only
            scores, tok = logp.topk(beam, -1)                      # (nA, K), sorted
            back = torch.zeros_like(tok)
        else:
            cand = (logp.view(-1, group, vocab) + scores[:, :, None]).view(-1, group * vocab)
            scores, idx = cand.topk(beam, -1)
            back, tok = idx // vocab, idx % vocab
        hist_tok.append(tok)
        hist_back.append(back)
        hist_videos.append(active)
        done = tok[:, 0] == eos_id
        if step == max_words:
            done = torch.ones_like(done)
        if bool(done.any()):
            for i in done.nonzero()[:, 0].tolist():
                finals[int(active[i])] = (step, float(scores[i, 0]))
            keep = (~done).nonzero()[:, 0]
            if keep.numel() == 0:
                break
            active, scores, tok, back = active[keep], scores[keep], tok[keep], back[keep]
        else:
            keep = None
        k = tok.shape[1]
        local = torch.arange(tok.shape[0], device=device) if keep is None else keep
        rows = (local[:, None] * group + back).view(-1)            # reorder by back-pointers, drop finished
        state.select(rows, keep)
        group, tokens = k, tok.reshape(-1)
    # Backtrack on the host, once: per step, the row each video occupied and its beams' tokens/pointers.
    toks = [t.tolist() for t in hist_tok]
    backs = [b.tolist() for b in hist_back]
    rows_of = [{v: r for r, v in enumerate(a.tolist())} for a in hist_videos]
    out = []
    for v in range(n_videos):
        last, score = finals[v]
        ids, k = [], 0
        for s in range(last - 1, -1, -1):
            r = rows_of[s][v]
            ids.append(toks[s][r][k])
            k = backs[s][r][k]
        out.append(Hypothesis(ids=tuple(reversed(ids)), score=score))
    return out


def _run(state_cls, model: CaptionModel, video, video_mask, beam: int, max_words, suppress_eos: bool,
         bos_id: int, eos_id: int, argmax: bool) -> list[Hypothesis]:
    cfg = model.cfg
    max_words = cfg.max_words if max_words is None else int(max_words)
    if not 1 <= max_words <= cfg.decoder_positions:
        raise InputError(f"max_words {max_words} must be between 1 and the decoder's {cfg.decoder_positions} positions")
    if beam < 1 or beam > cfg.vocab_size:
        raise InputError(f"beam size {beam} must be between 1 and the vocabulary size {cfg.vocab_size}")
    if video.ndim != 3 or video_mask.shape != video.shape[:2]:
        raise InputError(f"video must be (B, T, D) with a (B, T) mask; got {tuple(video.shape)} and "
                         f"{tuple(video_mask.shape)}")
    with torch.inference_mode():
        memory = model.encode(video, video_mask)
        state = state_cls(model, memory, video_mask, max_words)
        return _search(state, video.shape[0], beam, max_words, bos_id, eos_id, suppress_eos, argmax, video.device)


def beam_search(model: CaptionModel, video, video_mask, beam: int = 5, max_words: int | None = None,
                suppress_eos: bool = False, *, bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> list[Hypothesis]:
    """Beam-search captions for a batch: video (B, T, D), video_mask (B, T) -> one Hypothesis per video.

    Reference semantics (module docstring), with KV caches. `max_words` defaults to the model's;
    `suppress_eos` forbids [SEP] so every caption runs to exactly max_words tokens (benchmarks).
    Call model.eval() first for deterministic results.
    """
    return _run(_CachedState, model, video, video_mask, beam, max_words, suppress_eos, bos_id, eos_id, False)


def greedy(model: CaptionModel, video, video_mask, max_words: int | None = None, suppress_eos: bool = False,
           *, bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> list[Hypothesis]:
    """Greedy (argmax) captions: stop after [SEP] (included in ids) or max_words tokens."""
    return _run(_CachedState, model, video, video_mask, 1, max_words, suppress_eos, bos_id, eos_id, True)


def beam_search_reference(model: CaptionModel, video, video_mask, beam: int = 5, max_words: int | None = None,
                          suppress_eos: bool = False, *, bos_id: int = BOS_ID,
                          eos_id: int = EOS_ID) -> list[Hypothesis]:
    """`beam_search` without caches: the full prefix and every position's logits are recomputed each
    step, as the reference does (quadratic in length; a benchmark baseline and cross-check)."""
    return _run(_PrefixState, model, video, video_mask, beam, max_words, suppress_eos, bos_id, eos_id, False)
