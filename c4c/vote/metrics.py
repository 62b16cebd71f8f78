"""Caption metrics as the reference evaluation computes them (reference.md 4): pycocoevalcap's BLEU-4,
METEOR 1.5 (`-norm`), ROUGE-L and coco-caption CIDEr-D, with no PTB tokenisation: a caption is
only `.strip()`ped and split on whitespace, as nlg-eval does.

Conventions beyond the reference, for inputs it never sees:
* A hypothesis that is empty after normalisation scores 0 under every metric (pycocoevalcap
  would give ROUGE-L 1 for an empty hypothesis against an empty reference).
* Text sent to METEOR has every run of "|||" removed (nlg-eval does this to hypotheses; here
  to references too) and whitespace collapsed, so no caption can break the jar's line protocol,
  and is cut to its first 100 tokens (longer repetitive text makes the jar's aligner explode).
* Every hypothesis needs at least one reference (empty strings are allowed).

CIDEr-D is computed here (`_CiderD`, the coco-caption math: n = 4, sigma = 6, clipped tf-idf,
gaussian length penalty, x10) so that its IDF can come from a stored `IdfTable`; with the IDF
built from the references of the call it equals pycocoevalcap's `Cider` (tested).
"""

from __future__ import annotations

import atexit
import math
import os
import select
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.meteor import meteor as _pycoco_meteor  # only for the jar's location
from pycocoevalcap.rouge.rouge import Rouge

from ..errors import C4CError, InputError
from ..settings import METRICS
from .idf import MAX_N, IdfTable, ngram_counts

__all__ = ["METRICS", "normalize", "sentence_scores", "corpus_scores", "meteor_pid", "start_meteor", "close_meteor"]

_SIGMA = 6.0  # CIDEr-D gaussian length penalty


def normalize(text: str) -> str:
    """The reference's tokenisation: strip and split on whitespace; tokens joined by one space."""
    return " ".join(str(text).split())


def _prepare(refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    if isinstance(hyps, str) or len(refs) != len(hyps):
        raise InputError(f"need one reference list per hypothesis, got {len(refs)} reference lists for {len(hyps)} hypotheses")
    out_refs = []
    for i, rs in enumerate(refs):
        if isinstance(rs, str) or len(rs) == 0:
            raise InputError(f"hypothesis {i} needs a non-empty list of reference captions, got {rs!r}")
        out_refs.append([normalize(r) for r in rs])
    return out_refs, [normalize(h) for h in hyps]


def _zero_empty(scores: list[float], hyps: list[str]) -> list[float]:
    return [0.0 if not h else float(s) for s, h in zip(scores, hyps)]


def _bleu(refs: list[list[str]], hyps: list[str]) -> tuple[list[float], float]:
    """Per-sentence BLEU-4 (the `scores` list) and corpus BLEU-4, 'closest' reference length."""
    scorer = BleuScorer(n=4)
    for h, rs in zip(hyps, refs):
        scorer += (h, rs)
    corpus, per_sentence = scorer.compute_score(option="closest", verbose=0)
    return _zero_empty(per_sentence[3], hyps), float(corpus[3])


def _rouge(refs: list[list[str]], hyps: list[str]) -> list[float]:
    rouge = Rouge()
    return [rouge.calc_score([h], rs) if h else 0.0 for h, rs in zip(hyps, refs)]


class _CiderD:
    """coco-caption CIDEr-D against a fixed IDF. Arithmetic in the order of pycocoevalcap's
    `CiderScorer.compute_cider` so results agree to rounding; tf-idf vectors are cached per text."""

    def __init__(self, idf: IdfTable) -> None:
        self._df = idf.df
        self._ref_len = idf.log_n_docs
        self._cache: dict[str, tuple[list[dict], list[float], int]] = {}

    def _vec(self, text: str) -> tuple[list[dict], list[float], int]:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        vec: list[dict] = [{} for _ in range(MAX_N)]
        norm = [0.0] * MAX_N
        length = 0
        for gram, tf in ngram_counts(text).items():
            n = len(gram) - 1
            v = float(tf) * (self._ref_len - math.log(max(1.0, float(self._df.get(gram, 0)))))
            vec[n][gram] = v
            norm[n] += v * v
            # coco-caption's "length" counts bigrams (n == 1), i.e. words - 1; kept for parity
            if n == 1:
                length += tf
        out = (vec, [math.sqrt(x) for x in norm], length)
        self._cache[text] = out
        return out

    def score(self, hyp: str, refs: list[str]) -> float:
        vh, nh, lh = self._vec(hyp)
        total = [0.0] * MAX_N
        for ref in refs:
            vr, nr, lr = self._vec(ref)
            delta = float(lh - lr)
            penalty = math.e ** (-(delta**2) / (2 * _SIGMA**2))
            for n in range(MAX_N):
                val = 0.0
                ref_n = vr[n]
                for gram, x in vh[n].items():
                    y = ref_n.get(gram, 0.0)
                    val += min(x, y) * y  # clipping: a repeated n-gram earns no more than the reference has
                if nh[n] != 0 and nr[n] != 0:
                    val /= nh[n] * nr[n]
                total[n] += val * penalty
        return sum(total) / MAX_N / len(refs) * 10.0


def _cider(refs: list[list[str]], hyps: list[str], idf: IdfTable | None) -> list[float]:
    if idf is None:
        # the reference convention: document frequencies over the reference sets of this call
        idf = IdfTable.from_captions(refs, source="the references being scored")
    scorer = _CiderD(idf)
    return [scorer.score(h, rs) if h else 0.0 for h, rs in zip(hyps, refs)]


# METEOR: one JVM per process, started on first use. Its start costs ~10 s and ~1.1 GB (paraphrase
# table), so it is never started per call. Same jar and flags as pycocoevalcap/nlg-eval; the
# encoding is pinned so results do not depend on the locale.
_METEOR_DIR = Path(_pycoco_meteor.__file__).parent
_METEOR_CMD = ["java", "-Dfile.encoding=UTF-8", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"]
_METEOR_START_TIMEOUT_S = 600.0  # first answer includes JVM start + table load on a busy machine
_METEOR_TIMEOUT_S = 120.0  # longest silence tolerated once running
_METEOR_CHUNK = 256  # SCORE lines in flight; their answers (~120 B each) stay below the 64 KiB pipe


# The jar's aligner explodes on long repetitive text (500 x "a" takes ~50 s, 1000 exhausts its 2 GB
# heap), so METEOR sees at most this many tokens per caption; c4c captions have at most 48 wordpieces.
_METEOR_MAX_TOKENS = 100


def _meteor_text(text: str) -> str:
    # "|||" separates fields in the jar's protocol; newlines would split a request in two
    return " ".join(text.replace("|||", "").split()[:_METEOR_MAX_TOKENS])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _MeteorProcess:
    """The `meteor-1.5.jar -stdio` subprocess: SCORE lines give statistics, one EVAL line turns
    them into segment scores plus the aggregate. Thread-safe; restarts if the JVM died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = os.getpid()  # a forked child must not share the parent's pipes
        self._buf = b""
        self._fresh = False
        self._stderr: deque[str] = deque(maxlen=20)

    @property
    def pid(self) -> int | None:
        p = self._proc
        return p.pid if p is not None and p.poll() is None and self._owner == os.getpid() else None

    def start(self) -> None:
        """Spawn the JVM now, if none runs: it loads its tables while the caller does other work."""
        with self._lock:
            if self.pid is None:
                self._start()

    def _start(self) -> None:
        try:
            proc = subprocess.Popen(_METEOR_CMD, cwd=_METEOR_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except FileNotFoundError:
            raise C4CError("METEOR needs Java on PATH (`java -version` must work); install a JRE 8 or newer") from None
        os.set_blocking(proc.stdin.fileno(), False)
        self._stderr.clear()
        # drain stderr so a chatty JVM can never block on a full pipe; keep the tail for errors
        threading.Thread(target=self._drain, args=(proc.stderr,), daemon=True).start()
        self._proc, self._owner, self._buf, self._fresh = proc, os.getpid(), b"", True

    def _drain(self, pipe) -> None:
        for line in iter(pipe.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _wait(self, fd: int, event: int, timeout: float) -> None:
        # poll, not select: select() fails on descriptors above 1024 (busy servers have those)
        poller = select.poll()
        poller.register(fd, event | select.POLLHUP | select.POLLERR)
        if not poller.poll(timeout * 1000):
            raise TimeoutError(f"METEOR gave no sign of progress for {timeout:.0f} s")

    def _write(self, data: bytes) -> None:
        fd = self._proc.stdin.fileno()
        while data:
            self._wait(fd, select.POLLOUT, _METEOR_TIMEOUT_S)
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                continue

    def _readlines(self, count: int) -> list[str]:
        fd = self._proc.stdout.fileno()
        lines: list[str] = []
        while len(lines) < count:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                lines.append(self._buf[:nl].decode("utf-8", "replace").strip())
                self._buf = self._buf[nl + 1 :]
                continue
            self._wait(fd, select.POLLIN, _METEOR_START_TIMEOUT_S if self._fresh else _METEOR_TIMEOUT_S)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("METEOR exited")
            self._fresh = False
            self._buf += chunk
        return lines

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._owner == os.getpid():
            proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()

    def score(self, refs: list[list[str]], hyps: list[str]) -> tuple[list[float], float]:
        lines = [("SCORE ||| " + " ||| ".join(map(_meteor_text, rs)) + " ||| " + _meteor_text(h) + "\n").encode("utf-8", "replace") for h, rs in zip(hyps, refs)]
        with self._lock:
            if self._owner != os.getpid():
                self._proc = None  # inherited through fork: that JVM belongs to the parent
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self._start()
            try:
                stats: list[str] = []
                for i in range(0, len(lines), _METEOR_CHUNK):
                    chunk = lines[i : i + _METEOR_CHUNK]
                    self._write(b"".join(chunk))
                    stats += self._readlines(len(chunk))
                for line in stats:
                    if not line or not all(map(_is_number, line.split())):
                        raise ValueError(f"unexpected answer {line[:80]!r}")  # stay in sync: never guess
                self._write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
                out = [float(x) for x in self._readlines(len(lines) + 1)]
            except (OSError, EOFError, TimeoutError, ValueError) as e:
                self._kill()
                tail = " | ".join(list(self._stderr)[-3:])
                raise RuntimeError(f"METEOR subprocess failed ({e}); its stderr ended: {tail or '(empty)'}") from e
            except BaseException:
                self._kill()  # interrupted mid-exchange: unread answers would shift every later score
                raise
        return out[:-1], out[-1]

    def close(self) -> None:
        if self._lock.acquire(timeout=5):
            try:
                self._kill()
            finally:
                self._lock.release()


_METEOR = _MeteorProcess()
atexit.register(_METEOR.close)


def meteor_pid() -> int | None:
    """Process id of this process's METEOR JVM, or None when none is running."""
    return _METEOR.pid


def start_meteor() -> None:
    """Start the METEOR JVM in the background (it takes ~6 s to be ready; the first METEOR score
    waits for what is left). `c4c caption` calls this before loading the models, so the two overlap."""
    _METEOR.start()


def close_meteor() -> None:
    """Stop the METEOR JVM (it restarts on the next METEOR score); also done at exit."""
    _METEOR.close()


def _meteor(refs: list[list[str]], hyps: list[str]) -> tuple[list[float], float]:
    segments, aggregate = _METEOR.score(refs, hyps)
    return _zero_empty(segments, hyps), aggregate


def sentence_scores(metric: str, refs: Sequence[Sequence[str]], hyps: Sequence[str], idf: IdfTable | None = None) -> list[float]:
    """Score each hypothesis `hyps[i]` against its references `refs[i]` with `metric` (one of
    METRICS), unscaled (papers report x100; CIDEr-D can exceed 1). CIDEr-D takes document frequencies
    from `idf` when given, else from all of `refs` (so its per-sentence values depend on the batch);
    the other metrics score each sentence independently of the rest of the batch."""
    r, h = _prepare(refs, hyps)
    if not h:
        return []
    if metric == "bleu4":
        return _bleu(r, h)[0]
    if metric == "meteor":
        return _meteor(r, h)[0]
    if metric == "rouge":
        return _rouge(r, h)
    if metric == "cider":
        return _cider(r, h, idf)
    raise InputError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")


def corpus_scores(refs: Sequence[Sequence[str]], hyps: Sequence[str], idf: IdfTable | None = None) -> dict[str, float]:
    """Corpus scores as nlg-eval reports them (before x100): corpus BLEU-4 with 'closest'
    reference length, METEOR's own aggregate (from summed statistics, not a mean of segments),
    mean ROUGE-L, mean CIDEr-D with IDF from the evaluated references unless `idf` is given."""
    r, h = _prepare(refs, hyps)
    if not h:
        raise InputError("corpus_scores needs at least one hypothesis")
    return {
        "bleu4": _bleu(r, h)[1],
        "meteor": _meteor(r, h)[1],
        "rouge": float(np.mean(_rouge(r, h))),
        "cider": float(np.mean(_cider(r, h, idf))),
    }
