"""Read a caption back into attributes and judge it against the clip's label.

CIDEr-D cannot tell "a blue star moves left" from "a blue circle shrinks": the captions are
templated, so a wrong caption still shares most n-grams with the references. This module parses a
caption with the grammar's own tables (captions.py, scene.py), so that every phrasing the grammar
can produce reads back to its label, and judges colour, shape, event (with direction, entry/exit side
and target colour) and size per object.

The parser is a small backtracking recogniser of the grammar's sentence shapes:

    [intro | "there is"] NP ["that"] VP [("and" | "while") NP ["that"] VP] [background]

with NP = [a|an|the|one] [size] [colour] noun. It is strict about words (an unknown word anywhere
makes the caption unparsed, which counts as wrong) and lenient about form (any verb form in any
clause), because only the attributes are judged here, not the grammar.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .captions import (_BG_NOUNS, _BG_PREPS, _ING, _SIZE_WORDS, _VAGUE_NOUNS, _VIDEO_INTROS, NOUNS,
                       VERB_PHRASES)
from .scene import BACKGROUND_COLOURS, BACKGROUND_KINDS, COLOURS

__all__ = ["Mention", "Verdict", "parse_caption", "judge", "attribute_report", "oracle_report"]

# The sides scene._track draws for enter/leave; they fill the grammar's "{side}" slot.
_SIDES = ("left", "right", "top", "bottom")
_DETERMINERS = ("a", "an", "the", "one")
_CONNECTIVES = ("and", "while")


@dataclass(frozen=True)
class Mention:
    """One object as a caption describes it; None where the caption does not say."""
    shape: str | None        # one of SHAPES; None for a vague noun ("a red thing")
    colour: str | None       # colour named in the noun phrase
    size: str | None         # "small" | "large" (the grammar never names "medium")
    event: str               # one of EVENTS
    direction: str | None    # move: left/right/up/down; enter/leave: side when stated
    colour_from: str | None  # recolour: "changes from {a} ..."
    colour_to: str | None    # recolour: "... to {b}"


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(re.sub(r"[^a-z ]+", " ", text.lower()).split())


def _participle(present: str) -> str:
    """The grammar's participle of a present-tense verb phrase (captions._vp)."""
    if present.startswith("does not "):
        return "not " + _ING[present.split()[2] + "s"] + present[len("does not move"):]
    head, _, rest = present.partition(" ")
    return " ".join(w for w in (_ING[head], rest) if w)


def _verb_patterns() -> list[tuple[tuple[str, ...], str, str | None]]:
    """(tokens with "{a}"/"{b}"/"{side}" slots, event, move direction) in every form, longest first."""
    out = []
    for (event, direction), phrases in VERB_PHRASES.items():
        for present in phrases:
            ing = _participle(present)
            for form in (present, ing, "is " + ing):
                out.append((tuple(form.split()), event, direction))
    out.sort(key=lambda p: -len(p[0]))  # longest first: "bounces up and down" before "bounces"
    return out


def _phrases(words) -> list[tuple[str, ...]]:
    return sorted({tuple(w.split()) for w in words}, key=lambda t: -len(t))


_VERBS = _verb_patterns()
_NOUNS = sorted([(tuple(w.split()), shape) for shape, syns in NOUNS.items() for w, _ in syns]
                + [((w,), None) for w in _VAGUE_NOUNS], key=lambda p: -len(p[0]))
_SIZE_OF = {w: size for size, words in _SIZE_WORDS.items() for w in words}
_INTROS = _phrases(_VIDEO_INTROS) + [("there", "is")]
_BG_ADJECTIVES = _phrases(list(BACKGROUND_COLOURS) + [k for k in BACKGROUND_KINDS if k != "plain"])
_BACKGROUNDS = {p + a + (n,) for p in _phrases(_BG_PREPS) for a in _BG_ADJECTIVES for n in _BG_NOUNS}


def _at(toks: tuple[str, ...], i: int, phrase: tuple[str, ...]) -> bool:
    return toks[i:i + len(phrase)] == phrase


def _noun_phrases(toks, i):
    """Every (shape, colour, size, next index) reading of a noun phrase at i, longest noun first."""
    if i < len(toks) and toks[i] in _DETERMINERS:
        i += 1
    size = _SIZE_OF.get(toks[i]) if i < len(toks) else None
    i += size is not None
    colour = toks[i] if i < len(toks) and toks[i] in COLOURS else None
    i += colour is not None
    for noun, shape in _NOUNS:
        if _at(toks, i, noun):
            yield shape, colour, size, i + len(noun)


def _verb_phrases(toks, i):
    """Every (event, direction, colour_from, colour_to, next index) reading of a verb phrase at i."""
    for pattern, event, direction in _VERBS:
        if i + len(pattern) > len(toks):
            continue
        slots = {}
        for want, got in zip(pattern, toks[i:i + len(pattern)]):
            if want in ("{a}", "{b}"):
                if got not in COLOURS:
                    break
                slots[want] = got
            elif want == "{side}":
                if got not in _SIDES:
                    break
                slots[want] = got
            elif want != got:
                break
        else:
            yield event, direction or slots.get("{side}"), slots.get("{a}"), slots.get("{b}"), i + len(pattern)


def _clauses(toks, i) -> list[Mention] | None:
    """The mentions of `NP VP [(and|while) NP VP ...] [background]` from i to the end, or None."""
    for shape, colour, size, j in _noun_phrases(toks, i):
        j += j < len(toks) and toks[j] == "that"  # "there is a red ball that rolls ..."
        for event, direction, c_from, c_to, k in _verb_phrases(toks, j):
            rest: list[Mention] | None = None
            if k == len(toks) or toks[k:] in _BACKGROUNDS:
                rest = []
            elif toks[k] in _CONNECTIVES:
                rest = _clauses(toks, k + 1)
            if rest is not None:
                return [Mention(shape, colour, size, event, direction, c_from, c_to)] + rest
    return None


def parse_caption(caption: str) -> list[Mention] | None:
    """The objects a caption describes, in order, or None when its words do not parse."""
    toks = _tokens(caption)
    starts = [len(p) for p in _INTROS if _at(toks, 0, p)] + [0]
    for i in starts:
        mentions = _clauses(toks, i)
        if mentions is not None:
            return mentions
    return None


@dataclass(frozen=True)
class Verdict:
    """One caption judged against one clip's label. On a two-object clip only `both` is judged."""
    parsed: bool
    colour: bool = False
    shape: bool = False
    event: bool = False          # event, with direction / stated side / target colour
    size: bool | None = None     # None: the caption states no size
    both: bool | None = None     # two-object clips: both objects' colour and shape right

    @property
    def all_three(self) -> bool:
        return self.colour and self.shape and self.event


def _colour_right(m: Mention, obj: dict) -> bool:
    # Colour can be named in the noun phrase, in "changes from {a} to {b}", or both; all must agree.
    stated = {c for c in (m.colour, m.colour_from) if c}
    return stated == {obj["colour"]}


def _event_right(m: Mention, obj: dict) -> bool:
    if m.event != obj["event"]:
        return False
    if m.event == "move":
        return m.direction == obj.get("direction")
    if m.event in ("enter", "leave") and m.direction is not None:
        return m.direction == obj.get("direction")
    if m.event == "recolour":
        return m.colour_to == obj.get("colour_to")
    return True


def judge(caption: str, label: dict) -> Verdict:
    """Judge a caption against a label ({"objects": [{shape, colour, size, event, ...}, ...]}).

    One-object clips: the caption's first mention is judged. A size stated for an object whose
    label has none (grow/shrink) is wrong. Two-object clips: `both` needs two mentions that match
    the two objects' colour and shape in some order."""
    objects = label["objects"]
    mentions = parse_caption(caption)
    if mentions is None:
        return Verdict(False, both=False if len(objects) > 1 else None)
    if len(objects) > 1:
        pairs = itertools.permutations(mentions[:2], 2) if len(mentions) >= 2 else ()
        both = any(all(_colour_right(m, o) and m.shape == o["shape"] for m, o in zip(p, objects[:2])) for p in pairs)
        return Verdict(True, both=both)
    m, obj = mentions[0], objects[0]
    return Verdict(True, _colour_right(m, obj), m.shape == obj["shape"], _event_right(m, obj),
                   None if m.size is None else m.size == obj.get("size"))


def _pct(hits: Sequence[bool]) -> float | None:
    return round(100.0 * sum(hits) / len(hits), 2) if hits else None


def _summarise(verdicts: Sequence[Verdict]) -> dict:
    one = [v for v in verdicts if v.both is None]
    sized = [v.size for v in one if v.size is not None]
    return {"n_one": len(one), "n_two": len(verdicts) - len(one),
            "parsed": _pct([v.parsed for v in verdicts]),
            "colour": _pct([v.colour for v in one]), "shape": _pct([v.shape for v in one]),
            "event": _pct([v.event for v in one]), "all_three": _pct([v.all_three for v in one]),
            "size": _pct(sized), "size_stated": _pct([v.size is not None for v in one]),
            "both": _pct([v.both for v in verdicts if v.both is not None])}


def attribute_report(captions: Sequence[str], labels: Sequence[dict]) -> dict:
    """Per-attribute accuracies (x100, 2 decimals) of one caption per clip against the clips' labels.

    Keys: n_one / n_two (one- and two-object clips), parsed (% of all captions that parse),
    colour / shape / event / all_three (% of one-object clips right), size (% right among the
    one-object captions that state a size), size_stated (% of one-object captions that state one),
    both (% of two-object clips with both objects' colour and shape right). A value is None when
    its denominator is 0."""
    if len(captions) != len(labels):
        raise ValueError(f"{len(captions)} captions for {len(labels)} labels")
    return _summarise([judge(c, lab) for c, lab in zip(captions, labels)])


@dataclass(frozen=True)
class _AnyVerdict(Verdict):
    # The oracle's all_three is "one caption has all three", not "each attribute right somewhere".
    any_all_three: bool = False

    @property
    def all_three(self) -> bool:
        return self.any_all_three


def oracle_report(caption_lists: Sequence[Sequence[str]], labels: Sequence[dict]) -> dict:
    """`attribute_report` of an oracle that is right on a clip's attribute when any list's caption
    is (all_three: when one caption has all three right; size: when any stated size is right)."""
    if any(len(caps) != len(labels) for caps in caption_lists):
        raise ValueError(f"every caption list needs one caption per label ({len(labels)})")
    per_list = [[judge(c, lab) for c, lab in zip(caps, labels)] for caps in caption_lists]
    merged = []
    for vs in zip(*per_list):
        sizes = [v.size for v in vs if v.size is not None]
        merged.append(_AnyVerdict(any(v.parsed for v in vs), any(v.colour for v in vs), any(v.shape for v in vs),
                                  any(v.event for v in vs), any(sizes) if sizes else None,
                                  None if vs[0].both is None else any(v.both for v in vs),
                                  any(v.all_three for v in vs)))
    return _summarise(merged)
