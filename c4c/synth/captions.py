"""Reference captions for a synthetic scene: a small grammar with synonyms, MSR-VTT style.

MSR-VTT's 20 captions per clip come from different people: varied wording, lower case, no
punctuation, sometimes vague or mentioning one of two objects. The grammar imitates that. A verb
phrase is written once in the present tense ("slides to the left"); the progressive ("is sliding to
the left") and the participle ("sliding to the left", as in "a video of a ball sliding ...") are
derived from its first word.
"""

from __future__ import annotations

from .rand import Rand
from .scene import Scene, Track

__all__ = ["make_captions", "NOUNS", "VERB_PHRASES", "GRAMMAR"]

# The caption grammar's version, recorded in a zoo's provenance. v2: a colour change's caption always
# names the starting colour (`_np_text`). Scenes, frames and every other caption are as in v1.
GRAMMAR = "v2"

NOUNS = {"circle": (("circle", 4), ("ball", 4), ("disc", 1), ("round shape", 1), ("dot", 1)),
         "square": (("square", 5), ("box", 3), ("block", 2), ("square shape", 1)),
         "triangle": (("triangle", 6), ("triangular shape", 1), ("triangle shape", 1)),
         "diamond": (("diamond", 5), ("rhombus", 1), ("diamond shape", 1)),
         "star": (("star", 6), ("star shape", 1))}
_VAGUE_NOUNS = ("shape", "object", "thing", "figure")
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("big", "large"), "medium": ()}

VERB_PHRASES = {
    ("move", "left"): ("moves to the left", "moves left", "slides to the left", "travels left", "goes to the left",
                       "drifts leftwards", "moves from right to left", "slides left", "glides to the left",
                       "moves towards the left side"),
    ("move", "right"): ("moves to the right", "moves right", "slides to the right", "travels right",
                        "goes to the right", "drifts rightwards", "moves from left to right", "slides right",
                        "glides to the right", "moves towards the right side"),
    ("move", "up"): ("moves up", "rises", "goes up", "floats upwards", "slides upward", "moves to the top",
                     "travels upwards", "moves upward"),
    ("move", "down"): ("moves down", "falls", "goes down", "sinks", "slides downward", "drops down",
                       "moves to the bottom", "travels downwards"),
    ("bounce", None): ("bounces", "bounces up and down", "bounces around", "hops up and down", "jumps up and down",
                       "bounces on the ground"),
    ("grow", None): ("grows", "grows bigger", "gets bigger", "gets larger", "becomes bigger", "expands",
                     "increases in size", "grows in size", "swells up"),
    ("shrink", None): ("shrinks", "gets smaller", "becomes smaller", "shrinks in size", "decreases in size",
                       "gets tiny", "contracts", "shrinks down"),
    ("recolour", None): ("changes color from {a} to {b}", "changes from {a} to {b}", "turns {b}",
                         "turns from {a} to {b}", "becomes {b}", "changes its color to {b}",
                         "switches from {a} to {b}", "goes from {a} to {b}", "changes color to {b}"),
    ("enter", None): ("enters from the {side}", "comes in from the {side}", "enters the frame from the {side}",
                      "appears from the {side}", "slides in from the {side}", "moves into the frame",
                      "enters the screen", "comes into view"),
    ("leave", None): ("leaves to the {side}", "exits to the {side}", "moves off to the {side}",
                      "leaves the frame", "goes off screen to the {side}", "moves out of the frame",
                      "exits the screen", "disappears off the {side} side"),
    ("spin", None): ("spins", "rotates", "spins around", "turns around", "rotates in place", "spins in circles",
                     "twirls", "turns in place"),
    ("still", None): ("stays still", "does not move", "sits still", "stays in place", "remains still",
                      "stays in one place"),
}
# Participles of the first words above; the progressive is "is " + participle.
_ING = {"moves": "moving", "slides": "sliding", "travels": "traveling", "goes": "going", "drifts": "drifting",
        "glides": "gliding", "rises": "rising", "floats": "floating", "falls": "falling", "sinks": "sinking",
        "drops": "dropping", "bounces": "bouncing", "hops": "hopping", "jumps": "jumping", "grows": "growing",
        "gets": "getting", "becomes": "becoming", "expands": "expanding", "increases": "increasing",
        "swells": "swelling", "shrinks": "shrinking", "decreases": "decreasing", "contracts": "contracting",
        "changes": "changing", "turns": "turning", "switches": "switching", "enters": "entering",
        "comes": "coming", "appears": "appearing", "leaves": "leaving", "exits": "exiting",
        "disappears": "disappearing", "spins": "spinning", "rotates": "rotating", "twirls": "twirling",
        "stays": "staying", "sits": "sitting", "remains": "remaining"}
_VIDEO_INTROS = ("a video of", "a clip of", "an animation of", "a cartoon of", "a video showing",
                 "an animation showing")
_BG_PREPS = ("on a", "against a", "in front of a", "over a")
_BG_NOUNS = ("background", "backdrop")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _np_draw(rng: Rand, tr: Track, vague: bool = False) -> tuple[str, str | None, bool, str]:
    """The random choices of a noun phrase: (noun, size word or None, colour named?, determiner)."""
    if vague:
        noun = rng.choice(_VAGUE_NOUNS)
    else:
        words, weights = zip(*NOUNS[tr.shape])
        noun = rng.weighted(words, weights)
    size = rng.choice(_SIZE_WORDS[tr.size]) if tr.size and _SIZE_WORDS[tr.size] and rng.chance(0.35) else None
    named = rng.chance(0.15 if tr.event == "recolour" else 0.9)  # "a ball changes from red to blue"
    return noun, size, named, rng.weighted(("a", "the", "one"), (7, 3, 0.3))


def _np_text(tr: Track, drawn: tuple[str, str | None, bool, str], verb: str) -> str:
    """The noun phrase for the object as it looks at the start ("a small red ball"). A colour change
    whose verb leaves out the starting colour ("turns blue") names it here ("a red ball turns blue"):
    without it the caption would not say what colour the object was (grammar v2; v1 dropped it in
    about a third of recolour captions, and decoders learned to)."""
    noun, size, named, det = drawn
    if tr.event == "recolour" and tr.colour not in verb.split():
        named = True
    words = [w for w in (size, tr.colour if named else None, noun) if w]
    return " ".join([_article(words[0]) if det == "a" else det] + words)


def _np(rng: Rand, tr: Track, verb: str, vague: bool = False) -> str:
    return _np_text(tr, _np_draw(rng, tr, vague), verb)


def _vp(rng: Rand, tr: Track) -> tuple[str, str]:
    """(present, participle) verb phrases for the object's event."""
    phrase = rng.choice(VERB_PHRASES[(tr.event, tr.direction if tr.event == "move" else None)])
    phrase = phrase.format(a=tr.colour, b=tr.colour_to or "", side=tr.direction or "")
    if phrase.startswith("does not "):
        return phrase, "not " + _ING[phrase.split()[2] + "s"] + phrase[len("does not move"):]
    head, _, rest = phrase.partition(" ")
    return phrase, " ".join(w for w in (_ING[head], rest) if w)


def _background(rng: Rand, scene: Scene) -> str:
    bg = scene.background
    adjective = bg.name if bg.kind == "plain" else bg.kind
    return f"{rng.choice(_BG_PREPS)} {adjective} {rng.choice(_BG_NOUNS)}"


def _clause(rng: Rand, tr: Track, form: str, vague: bool = False) -> str:
    present, ing = _vp(rng, tr)
    verb = {"present": present, "progressive": "is " + ing, "participle": ing}[form]
    return f"{_np(rng, tr, verb, vague)} {verb}"


def _one(rng: Rand, scene: Scene) -> str:
    tracks = rng.shuffled(scene.tracks)
    form = rng.weighted(("present", "progressive"), (5, 4))
    if len(tracks) == 1 or rng.chance(0.08):  # the second object is sometimes left out, as people do
        tr = tracks[0]
        kind = rng.weighted(("plain", "background", "there", "intro", "vague"), (9, 3, 2, 2, 1))
        if kind == "plain":
            return _clause(rng, tr, form)
        if kind == "background":
            return f"{_clause(rng, tr, form)} {_background(rng, scene)}"
        if kind == "there":
            if rng.chance(0.5):
                return "there is " + _clause(rng, tr, "participle")
            drawn = _np_draw(rng, tr)  # drawn before the verb, as always (the same captions otherwise)
            verb = _vp(rng, tr)[0]
            return f"there is {_np_text(tr, drawn, verb)} that {verb}"
        if kind == "intro":
            return f"{rng.choice(_VIDEO_INTROS)} {_clause(rng, tr, 'participle')}"
        return _clause(rng, tr, form, vague=True)
    a, b = tracks[0], tracks[1]
    kind = rng.weighted(("and", "while", "intro", "background"), (6, 3, 1.5, 1.5))
    if kind == "intro":
        return f"{rng.choice(_VIDEO_INTROS)} {_clause(rng, a, 'participle')} and {_clause(rng, b, 'participle')}"
    joined = f"{_clause(rng, a, form)} {'while' if kind == 'while' else 'and'} {_clause(rng, b, form)}"
    return f"{joined} {_background(rng, scene)}" if kind == "background" else joined


def make_captions(scene: Scene, n: int = 20) -> list[str]:
    """`n` distinct captions (fewer only if the grammar runs dry), from stream 1 of the video's key."""
    rng = Rand(scene.seed, 1)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(n * 30):
        cap = _one(rng, scene)
        if cap not in seen:
            seen.add(cap)
            out.append(cap)
            if len(out) == n:
                break
    return out
