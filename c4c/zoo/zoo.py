"""A model zoo: a folder with `manifest.json` naming a backbone, several decoders, a vocabulary
and a CIDEr-D document-frequency table. Loading checks every file before any model is built, so a
broken zoo fails with one message naming the problem instead of a traceback half-way through."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import C4CError, InputError, VocabError, ZooError

__all__ = ["Zoo", "DecoderEntry", "read_manifest", "write_manifest", "default_zoo_dir", "default_select", "MANIFEST"]

MANIFEST = "manifest.json"
FORMAT = "c4c.zoo/1"


def default_zoo_dir() -> Path:
    """`weights/demo` of the checkout the package lives in (the zoo that ships with c4c); for an
    installed package, which carries no weights, `weights/demo` under the current folder."""
    checkout = Path(__file__).resolve().parents[2] / "weights" / "demo"
    return checkout if checkout.is_dir() else Path.cwd() / "weights" / "demo"


def default_select(manifest: dict[str, Any]) -> str:
    """The rule `select="auto"` means for this zoo: the one its validation split scored best (manifest
    "selection" -> "best_rule", written by build-zoo or `evaluate --tune-select`), else consensus;
    always consensus for a zoo without a text tower (nothing to ground captions with)."""
    from ..settings import SELECT_RULES
    if "text_tower" not in manifest:
        return "consensus"
    rule = manifest.get("selection", {}).get("best_rule", "consensus")
    return rule if rule in SELECT_RULES else "consensus"


@dataclass(frozen=True)
class DecoderEntry:
    name: str                   # unique within the zoo; shown in tables and the app
    file: str                   # path relative to the zoo folder
    provenance: Any             # free-form: where the weights come from, how they were trained
    settings: dict[str, Any]    # per-model settings: mask ("repro"|"frames"), max_frames, heads


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Parse and validate `folder/manifest.json`; every named file must exist."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ZooError(f"{folder}: model zoo folder not found (build one with `python -m c4c build-zoo` "
                       "or `python -m c4c import`)")
    if not path.is_file():
        raise ZooError(f"{folder}: no {MANIFEST} here; is this a c4c model zoo folder?")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not valid JSON ({e}); fix or regenerate the manifest") from None
    if not isinstance(m, dict):
        raise ZooError(f"{path}: expected a JSON object at the top level")
    for key in ("backbone", "decoders", "vocab", "idf"):
        if key not in m:
            raise ZooError(f"{path}: manifest has no {key!r} entry")
    if not isinstance(m["backbone"], dict) or "file" not in m["backbone"]:
        raise ZooError(f"{path}: 'backbone' must be an object with a 'file' entry, got {_short(m['backbone'])}")
    if not isinstance(m["decoders"], list) or not m["decoders"]:
        raise ZooError(f"{path}: 'decoders' must be a non-empty list")
    for k, d in enumerate(m["decoders"]):
        if not isinstance(d, dict) or "file" not in d:
            raise ZooError(f"{path}: decoder {k} must be an object with 'name' and 'file' entries, got {_short(d)}")
        _check_settings(path, d.get("name"), d.get("settings", {}))
    names = [d.get("name") for d in m["decoders"]]
    if len(set(map(str, names))) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ZooError(f"{path}: decoder names must be unique non-empty strings, got {names}")
    files = [m["backbone"]["file"], m["vocab"], m["idf"]] + [d["file"] for d in m["decoders"]]
    if "text_tower" in m:  # optional: the backbone's text tower, for grounding (vision/text_tower.py)
        if not isinstance(m["text_tower"], dict) or "file" not in m["text_tower"]:
            raise ZooError(f"{path}: 'text_tower' must be an object with a 'file' entry, got {_short(m['text_tower'])}")
        files.append(m["text_tower"]["file"])
    for f in files:
        _check_name(path, folder, f)
        if not (folder / f).is_file():
            raise ZooError(f"{path}: names {f!r}, which is not in {folder}")
    return m


def _short(x: Any) -> str:
    text = json.dumps(x, ensure_ascii=False) if isinstance(x, (dict, list, str, int, float, bool, type(None))) else repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_name(path: Path, folder: Path, name: Any) -> None:
    """Files are named relative to the zoo folder and stay inside it: a manifest from elsewhere must
    not make c4c read other files. (Checked on the name, not the resolved path: a Hub snapshot's
    files are symlinks into its blob store, which is fine.)"""
    if not isinstance(name, str) or not name.strip():
        raise ZooError(f"{path}: file names must be non-empty strings, got {_short(name)}")
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or PureWindowsPath(name).drive or ".." in p.parts:
        raise ZooError(f"{path}: names {name!r}; files must be named relative to, and inside the zoo folder")


# Allowed per-decoder settings: name -> (check, what it must be)
_SETTINGS = {
    "heads": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0), "a positive integer"),
    "max_frames": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0), "a positive integer"),
    "max_words": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0), "a positive integer"),
    "mask": (lambda v: v is None or isinstance(v, str), "a string"),
}


def _check_settings(path: Path, name: Any, settings: Any) -> None:
    if not isinstance(settings, dict):
        raise ZooError(f"{path}: decoder {name!r}: 'settings' must be an object, got {_short(settings)}")
    for key, value in settings.items():
        if key in _SETTINGS and not _SETTINGS[key][0](value):
            raise ZooError(f"{path}: decoder {name!r}: setting {key!r} must be {_SETTINGS[key][1]}, got {_short(value)}")


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` (atomically) after checking it the way `read_manifest` will."""
    folder = Path(folder)
    manifest = {"format": FORMAT, **manifest}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)
    read_manifest(folder)
    return folder / MANIFEST


class Zoo:
    """The loaded models of a zoo, shared read-only by every request."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        from ..vision.backbone import Backbone
        from ..captioning.model import CaptionModel
        from ..vote.idf import IdfTable
        from ..captioning.tokenizer import Tokenizer

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.device = device
        m = self.manifest
        self.name: str = m.get("name", self.folder.name)
        self.description: str = m.get("description", "")
        self.tokenizer = Tokenizer.from_file(self.folder / m["vocab"])
        try:
            self.idf = IdfTable.load(self.folder / m["idf"])
        except C4CError:
            raise
        except Exception as e:
            raise ZooError(f"{self.folder / m['idf']}: unreadable IDF table ({e})") from None
        self.backbone = Backbone.from_file(self.folder / m["backbone"]["file"], device=device)
        self.text_tower, self.no_grounding = None, ""  # no_grounding: why there is no grounding score
        if "text_tower" in m:
            from ..vision.text_tower import TextTower
            path = self.folder / m["text_tower"]["file"]
            self.text_tower = TextTower.from_file(path)
            if self.text_tower.arch.embed_dim != self.backbone.embed_dim:
                raise ZooError(f"{path}: the text tower embeds in {self.text_tower.arch.embed_dim}-d but the "
                               f"backbone in {self.backbone.embed_dim}-d; they do not belong together")
        else:
            self.no_grounding = ("this zoo has no text tower (manifest 'text_tower'), so captions cannot be "
                                 "scored against the video; only the consensus vote selects")
        self.selection: dict[str, Any] = dict(m.get("selection", {}))  # {"combined_weight", "default", ...}
        self.entries = [DecoderEntry(d["name"], d["file"], d.get("provenance"), dict(d.get("settings", {})))
                        for d in m["decoders"]]
        self.decoders: dict[str, CaptionModel] = {}
        for e in self.entries:
            s = e.settings
            try:
                model = CaptionModel.from_file(self.folder / e.file, heads=s.get("heads"), mask=s.get("mask"),
                                               max_frames=s.get("max_frames"))
            except InputError as err:  # a setting that does not fit this checkpoint: name the decoder
                raise ZooError(f"{self.folder / MANIFEST}: decoder {e.name!r} ({e.file}): {err}") from None
            if model.cfg.vocab_size != len(self.tokenizer):
                raise VocabError(
                    f"{self.folder / m['vocab']}: has {len(self.tokenizer)} entries but decoder {e.name!r} "
                    f"has a {model.cfg.vocab_size}-word output layer; use the vocab it was trained with")
            if model.cfg.video_dim != self.backbone.embed_dim:
                raise ZooError(
                    f"decoder {e.name!r} expects {model.cfg.video_dim}-d frame features but the backbone "
                    f"gives {self.backbone.embed_dim}-d; they do not belong together")
            self.decoders[e.name] = model.to(device).eval()

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def summary(self) -> dict[str, Any]:
        """What the result object records about the zoo: name, description, per-model provenance."""
        return {
            "name": self.name,
            "folder": str(self.folder),
            "description": self.description,
            "backbone": self.manifest["backbone"].get("provenance"),
            "decoders": {e.name: e.provenance for e in self.entries},
            "text_tower": self.manifest.get("text_tower", {}).get("provenance") if self.text_tower else None,
        }
