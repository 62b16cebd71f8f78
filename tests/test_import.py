"""`python -m c4c import`: real checkpoint formats (the golden sets' files) -> a zoo that captions."""

import json
import subprocess
import sys

import torch

from c4c.vote.idf import IdfTable
from c4c.pipeline import CaptionSettings, Pipeline
from c4c.zoo import read_manifest


def _c4c(*args):
    return subprocess.run([sys.executable, "-m", "c4c", *args], capture_output=True, text=True, timeout=600)


def test_import_golden_checkpoints_into_a_zoo_and_caption(golden_set, tmp_path):
    cfg = json.loads((golden_set / "config.json").read_text())
    golden = json.loads((golden_set / "golden.json").read_text())
    captions = [[v["caption"]] for v in golden["videos"]] + [["a small red ball", "a big blue box"]]
    IdfTable.from_captions(captions, source="golden captions").save(tmp_path / "idf.json")
    # A second decoder: the same weights as a wrapped torch.save file, as training scripts often write.
    sd = torch.load(golden_set / "decoder.bin", map_location="cpu", weights_only=True)
    torch.save({"state_dict": sd}, tmp_path / "wrapped.bin")
    zoo = tmp_path / "zoo"
    p = _c4c("import", "--out", str(zoo), "--backbone", str(golden_set / "clip4clip.bin"),
             "--decoder", str(golden_set / "decoder.bin"), "--decoder", f"{tmp_path / 'wrapped.bin'}",
             "--heads", str(cfg["num_attention_heads"]), "--vocab", str(golden_set / "vocab.txt"),
             "--idf", str(tmp_path / "idf.json"), "--description", "golden test weights")
    assert p.returncode == 0, p.stderr
    m = read_manifest(zoo)
    assert [d["name"] for d in m["decoders"]] == ["decoder", "wrapped"]
    assert m["decoders"][0]["settings"] == {"mask": "repro", "max_frames": 20, "heads": cfg["num_attention_heads"]}
    assert m["backbone"]["provenance"]["imported_from"] == "clip4clip.bin"
    video = next(golden_set.glob("*.mp4"))
    r = Pipeline.from_zoo(zoo, device="cpu").caption(video, CaptionSettings(fps_mode="reference"))
    # the same weights under two names must caption identically (and so tie; the first wins)
    assert r.captions[0].token_ids == r.captions[1].token_ids and r.winner == 0
    # adding to an existing zoo keeps what is there
    p = _c4c("import", "--out", str(zoo), "--decoder", f"{golden_set / 'decoder.bin'}",
             "--heads", str(cfg["num_attention_heads"]), "--mask", "frames")
    assert p.returncode == 0, p.stderr
    assert [d["settings"]["mask"] for d in read_manifest(zoo)["decoders"]] == ["frames", "repro"]


def test_import_refuses_incomplete_or_unsafe_input(golden_set, tmp_path):
    p = _c4c("import", "--out", str(tmp_path / "z"), "--backbone", str(golden_set / "clip4clip.bin"))
    assert p.returncode == 2 and "still missing: decoders, vocab, idf" in p.stderr
    # an OpenAI-style TorchScript archive runs code on load: refused unless explicitly allowed
    ts = torch.jit.script(torch.nn.Linear(2, 2))
    ts.save(str(tmp_path / "ViT.pt"))
    p = _c4c("import", "--out", str(tmp_path / "z2"), "--backbone", str(tmp_path / "ViT.pt"))
    assert p.returncode == 2 and "TorchScript" in p.stderr and "Traceback" not in p.stderr
