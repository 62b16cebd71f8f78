"""`python -m c4c import`: real checkpoints -> a c4c zoo folder (safetensors + manifest).

Each weights file is loaded with the same strict loaders that serve inference (so a file that
imports is a file that runs), then re-written as safetensors with its provenance. A TorchScript
`.pt` (OpenAI's CLIP release) executes code when loaded; it is read only with --allow-torchscript.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from ..errors import InputError, ZooError
from ..settings import MASKS

HELP = "import real checkpoints (CLIP4Clip, OpenAI CLIP, CLIP4Caption reproduction, UniVL) into a zoo folder"


def add_parser(sub) -> None:
    p = sub.add_parser("import", help=HELP, description=HELP + ". Adds to the zoo when DIR already holds one.")
    p.add_argument("--out", required=True, metavar="DIR", help="zoo folder to create or extend")
    p.add_argument("--name", help="zoo name (default: the folder name)")
    p.add_argument("--description", help="what the models are and what they were trained on (shown to users)")
    p.add_argument("--backbone", metavar="CKPT", help="CLIP4Clip pytorch_model.bin.N, OpenAI CLIP state dict or .pt")
    p.add_argument("--allow-torchscript", action="store_true",
                   help="allow a TorchScript .pt backbone (loading it runs code from the file: trust it first)")
    p.add_argument("--decoder", action="append", default=[], metavar="CKPT[:NAME]",
                   help="caption checkpoint (reproduction .bin or c4c safetensors); repeat for several")
    p.add_argument("--mask", choices=MASKS[:2], default=None,
                   help="video mask convention of the imported decoders (default: repro for .bin files, as the "
                        "released reproduction checkpoint was trained; the file's own setting for safetensors)")
    p.add_argument("--heads", type=int, help="attention heads of the decoders (default: width // 64)")
    p.add_argument("--max-frames", type=int, help="frame slots of the decoders (default 20)")
    p.add_argument("--vocab", metavar="VOCAB", help="vocab.txt (bert-base-uncased for real checkpoints)")
    p.add_argument("--idf", metavar="IDF", help="CIDEr-D document frequencies from `python -m c4c idf`")
    p.add_argument("--univl", metavar="BIN", help="univl.pretrained.bin: store a TE1+TD3 initialisation from it")
    p.add_argument("--video-dim", type=int, default=None, help="feature width for --univl (default: the backbone's)")
    p.set_defaults(func=run)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _provenance(path: Path, kind: str) -> dict:
    return {"imported_from": path.name, "kind": kind, "sha256": _sha256(path)}


def run(args) -> int:
    from ..vision.backbone import Backbone
    from ..captioning.model import CaptionModel
    from ..vote.idf import IdfTable
    from ..captioning.tokenizer import Tokenizer
    from ..zoo import MANIFEST, read_manifest, write_manifest

    out = Path(args.out)
    manifest: dict = {}
    if (out / MANIFEST).exists():
        manifest = read_manifest(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest["name"] = args.name or manifest.get("name") or out.name
    if args.description:
        manifest["description"] = args.description

    if args.backbone:
        src = Path(args.backbone)
        bb = Backbone.from_file(src, allow_torchscript=args.allow_torchscript)
        kind = "TorchScript CLIP" if src.suffix == ".pt" and args.allow_torchscript else str(bb.provenance)
        prov = _provenance(src, kind)
        bb.save(out / "backbone.safetensors", provenance=prov)
        manifest["backbone"] = {"file": "backbone.safetensors", "provenance": prov}
        print(f"backbone: {src} -> backbone.safetensors (ViT patch {bb.arch.patch}, width {bb.arch.width}, "
              f"{bb.arch.layers} layers, {bb.image_size} px, {bb.embed_dim}-d embeddings)")
        _import_text_tower(src, out, manifest, prov, args)

    if args.vocab:
        tok = Tokenizer.from_file(args.vocab)
        shutil.copyfile(args.vocab, out / "vocab.txt")
        manifest["vocab"] = "vocab.txt"
        print(f"vocab: {args.vocab} ({len(tok)} entries)")

    if args.idf:
        table = IdfTable.load(args.idf)
        table.save(out / "idf.json")
        manifest["idf"] = "idf.json"
        print(f"idf: {table.describe()}")

    decoders = {d["name"]: d for d in manifest.get("decoders", [])}
    for spec in args.decoder:
        path_s, _, name = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
        src = Path(path_s)
        name = name or src.name.split(".")[0]
        model = CaptionModel.from_file(src, heads=args.heads, mask=args.mask, max_frames=args.max_frames)
        c = model.cfg
        prov = _provenance(src, f"caption model, TE {c.te_layers} + TD {c.td_layers} layers, width {c.hidden}")
        model.save(out / f"{name}.safetensors", provenance=prov)
        decoders[name] = {"name": name, "file": f"{name}.safetensors", "provenance": prov,
                          "settings": {"mask": c.mask, "max_frames": c.max_frames, "heads": c.heads}}
        print(f"decoder {name}: {src} -> {name}.safetensors (TE {c.te_layers}, TD {c.td_layers}, width {c.hidden}, "
              f"{c.heads} heads, vocab {c.vocab_size}, input {c.video_dim}-d, mask {c.mask})")
    if decoders:
        manifest["decoders"] = list(decoders.values())

    if args.univl:
        _import_univl(Path(args.univl), out, manifest, args)

    missing = [k for k in ("backbone", "decoders", "vocab", "idf") if k not in manifest]
    if missing:
        raise InputError(f"a zoo needs a backbone, decoders, a vocab and an IDF table; still missing: "
                         f"{', '.join(missing)} (pass --{missing[0].rstrip('s')})")
    manifest.setdefault("description", "imported checkpoints (see each model's provenance)")
    write_manifest(out, manifest)
    try:  # load it once, the way `caption` will, so a bad combination fails here and not later
        from ..zoo import Zoo
        Zoo(out)
    except ZooError:
        raise
    print(f"zoo written: {out / MANIFEST} ({len(manifest['decoders'])} decoders)")
    return 0


def _import_text_tower(src: Path, out: Path, manifest: dict, prov: dict, args) -> None:
    """The checkpoint's text tower, when it has one, as text_tower.safetensors (CLIP's BPE tokenizer):
    it scores each caption against the video (grounding)."""
    from ..errors import CheckpointError
    from ..vision.text_tower import TextTower
    try:
        tower = TextTower.from_file(src, allow_torchscript=args.allow_torchscript)
    except CheckpointError as e:
        manifest.pop("text_tower", None)
        print(f"text tower: none stored ({e}); captions will be selected by consensus only")
        return
    tower.save(out / "text_tower.safetensors", provenance=prov)
    manifest["text_tower"] = {"file": "text_tower.safetensors", "provenance": prov, "tokenizer": tower.tokenizer}
    a = tower.arch
    print(f"text tower: {src} -> text_tower.safetensors (width {a.width}, {a.layers} layers, context {a.context}, "
          f"{tower.tokenizer} tokenizer, {a.embed_dim}-d embeddings)")


def _import_univl(src: Path, out: Path, manifest: dict, args) -> None:
    """A paper-layout (TE 1 + TD 3) caption model initialised from UniVL, for `train decoder --init`."""
    import torch

    from ..captioning.model import CaptionConfig, CaptionModel
    from ..captioning.univl import init_from_univl
    from ..checkpoints import load_state_dict
    sd = load_state_dict(src)
    key = "decoder.embeddings.word_embeddings.weight"
    if key not in sd or "visual.embeddings.position_embeddings.weight" not in sd:
        raise InputError(f"{src}: not a UniVL checkpoint (no {key!r})")
    video_dim = args.video_dim
    if video_dim is None and "backbone" in manifest:
        from ..vision.backbone import Backbone
        video_dim = Backbone.from_file(out / manifest["backbone"]["file"]).embed_dim
    vocab, hidden = sd[key].shape
    cfg = CaptionConfig(video_dim=video_dim or 512, hidden=hidden, heads=args.heads or 0,
                        intermediate=sd["decoder.decoder.layer.0.intermediate.dense.weight"].shape[0],
                        te_layers=1, td_layers=3, vocab_size=vocab,
                        visual_positions=sd["visual.embeddings.position_embeddings.weight"].shape[0],
                        decoder_positions=sd["decoder.embeddings.position_embeddings.weight"].shape[0],
                        mask=args.mask or "frames")
    del sd
    torch.manual_seed(0)
    model = CaptionModel(cfg)
    report = init_from_univl(model, src)
    prov = {**_provenance(src, "UniVL initialisation (untrained for captioning)"), "load_report": report.summary()}
    model.save(out / "univl_init.safetensors", provenance=prov)
    manifest["init"] = {"file": "univl_init.safetensors", "provenance": prov}
    print(report.summary())
    print("univl: -> univl_init.safetensors (an initialisation for `train decoder`, not a captioner)")
