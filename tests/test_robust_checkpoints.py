"""Broken checkpoints and zoos, end to end: `Zoo(folder)` and `python -m c4c caption --zoo` each refuse
them with one line naming the file and the problem, and no checkpoint can run code while loading.

Every broken zoo is a copy of one small random zoo with one thing wrong. All cases go through the CLI's
entry point in-process (`c4c.cli.main`, the code `python -m c4c` runs: exit status 2, one `error:`
line, nothing else); a few also go through a real `python -m c4c` subprocess, which costs seconds each.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from c4c.checkpoints import load_state_dict
from c4c.cli import main as cli_main
from c4c.errors import C4CError, CheckpointError, VocabError, ZooError
from c4c.zoo.random_zoo import RandomZooSpec, make_random_zoo
from c4c.zoo import Zoo

REPO = Path(__file__).resolve().parents[1]
MARKER_ENV = "C4C_TEST_PWNED"  # where an evil pickle would write if it ever ran


@pytest.fixture(scope="module")
def good_zoo(tmp_path_factory) -> Path:
    return make_random_zoo(tmp_path_factory.mktemp("good") / "zoo", RandomZooSpec(n_decoders=3, max_words=4))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from badfiles import build_corpus
    return build_corpus(tmp_path_factory.mktemp("vid"), ["mkv_h264"])["mkv_h264"]


class Evil:
    """Unpickling this calls exec(): the attack a weights_only load must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def _manifest(zoo: Path) -> dict:
    return json.loads((zoo / "manifest.json").read_text())


def _write_manifest(zoo: Path, m: dict) -> None:
    (zoo / "manifest.json").write_text(json.dumps(m))


def _decoder(zoo: Path) -> Path:
    return zoo / _manifest(zoo)["decoders"][0]["file"]


def _edit(path: Path, edit) -> None:
    """Load a safetensors file, change its tensors with `edit(sd)`, write it back with its metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    sd = load_state_dict(path)
    edit(sd)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)


def _edit_decoder(zoo: Path, edit) -> None:
    _edit(_decoder(zoo), edit)


def _key(sd: dict, part: str) -> str:
    return next(k for k in sorted(sd) if part in k)


def _evil_zip(zoo: Path, marker: Path) -> None:
    torch.save({"w": torch.zeros(2), "payload": Evil(marker)}, _decoder(zoo))


def _evil_legacy(zoo: Path, marker: Path) -> None:
    _decoder(zoo).write_bytes(pickle.dumps({"w": Evil(marker)}, protocol=2))


def _torchscript(zoo: Path, marker: Path) -> None:
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(_decoder(zoo)))


def _truncate(path: Path, frac: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * frac)])


def _set(m: dict, *keys_and_value):
    *keys, last, value = keys_and_value
    d = m
    for k in keys:
        d = d[k]
    d[last] = value
    return m


# (case id, mutation(zoo, marker), error class, fragment of the message)
CASES = [
    ("decoder_is_text", lambda z, _: _decoder(z).write_text("these are not weights\n"), CheckpointError,
     "not a checkpoint"),
    ("decoder_empty", lambda z, _: _decoder(z).write_bytes(b""), CheckpointError, "empty"),
    ("decoder_truncated", lambda z, _: _truncate(_decoder(z)), CheckpointError, "truncated"),
    ("decoder_torch_truncated", lambda z, _: (torch.save(load_state_dict(_decoder(z)), _decoder(z)),
                                              _truncate(_decoder(z))), CheckpointError, "truncated"),
    ("decoder_is_optimizer", lambda z, _: torch.save({"state": {0: {"exp_avg": torch.zeros(3)}},
                                                      "param_groups": [{"lr": 1e-4, "params": [0]}]}, _decoder(z)),
     CheckpointError, "optimizer file"),
    ("decoder_not_tensors", lambda z, _: torch.save({"epoch": 3, "note": "hi"}, _decoder(z)), CheckpointError,
     "no state dict of tensors"),
    ("decoder_missing_key", lambda z, _: _edit_decoder(z, lambda sd: sd.pop(_key(sd, "intermediate.dense.bias"))),
     CheckpointError, "missing key"),
    ("decoder_misshaped_key", lambda z, _: _edit_decoder(
        z, lambda sd: sd.__setitem__(k := _key(sd, "intermediate.dense.bias"), torch.zeros(sd[k].shape[0] + 1))),
     CheckpointError, "has shape"),
    ("decoder_nan", lambda z, _: _edit_decoder(z, lambda sd: sd[_key(sd, "intermediate.dense.weight")]
                                               .view(-1).__setitem__(0, float("nan"))), CheckpointError, "NaN or Inf"),
    ("decoder_inf", lambda z, _: _edit_decoder(z, lambda sd: sd[_key(sd, "intermediate.dense.weight")]
                                               .view(-1).__setitem__(3, float("inf"))), CheckpointError, "NaN or Inf"),
    ("decoder_is_backbone", lambda z, _: shutil.copy(z / "backbone.safetensors", _decoder(z)), CheckpointError,
     "not a CLIP4Caption/UniVL caption checkpoint"),
    ("backbone_is_decoder", lambda z, _: shutil.copy(_decoder(z), z / "backbone.safetensors"), CheckpointError,
     "not a CLIP ViT image tower"),
    ("backbone_nan", lambda z, _: _edit(z / "backbone.safetensors", lambda sd: sd[_key(sd, "c_fc.weight")]
                                        .view(-1).__setitem__(0, float("nan"))), CheckpointError, "NaN or Inf"),
    ("safetensors_huge_header", lambda z, _: _decoder(z).write_bytes(struct.pack("<Q", 10**7) + b"{" + b" " * 64),
     CheckpointError, "safetensors"),
    ("evil_pickle_zip", _evil_zip, CheckpointError, "refused to load"),
    ("evil_pickle_legacy", _evil_legacy, CheckpointError, "refused to load"),
    ("torchscript_decoder", _torchscript, CheckpointError, "TorchScript"),
    ("vocab_too_small", lambda z, _: (z / "vocab.txt").write_text(
        "\n".join((z / "vocab.txt").read_text().splitlines()[:200]) + "\n"), VocabError, "entries but decoder"),
    ("vocab_no_sep", lambda z, _: (z / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\nword\n"), VocabError, "[SEP]"),
    ("vocab_binary", lambda z, _: (z / "vocab.txt").write_bytes(b"\xff\xfe\x00garbage"), VocabError, "UTF-8"),
    ("idf_garbage", lambda z, _: (z / "idf.json").write_text("{not json"), C4CError, "idf.json"),
    ("manifest_not_json", lambda z, _: (z / "manifest.json").write_text("{'name': 'single quotes',}"), ZooError,
     "not valid JSON"),
    ("manifest_not_object", lambda z, _: (z / "manifest.json").write_text("[1, 2]"), ZooError, "JSON object"),
    ("manifest_missing_file", lambda z, _: _write_manifest(z, _set(_manifest(z), "decoders", 0, "file", "gone.safetensors")),
     ZooError, "gone.safetensors"),
    ("manifest_no_decoders", lambda z, _: _write_manifest(z, {k: v for k, v in _manifest(z).items() if k != "decoders"}),
     ZooError, "'decoders'"),
    ("manifest_backbone_not_object", lambda z, _: _write_manifest(z, _set(_manifest(z), "backbone", "backbone.safetensors")),
     ZooError, "backbone"),
    ("manifest_decoder_without_file", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "decoders", 0, {"name": "x"})), ZooError, "file"),
    ("manifest_duplicate_names", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "decoders", 1, "name", _manifest(z)["decoders"][0]["name"])), ZooError, "unique"),
    ("manifest_path_escapes", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "decoders", 0, "file", "../good/zoo/" + _manifest(z)["decoders"][0]["file"])),
     ZooError, "inside the zoo folder"),
    ("manifest_absolute_path", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "vocab", str((z / "vocab.txt").resolve()))), ZooError, "inside the zoo folder"),
    ("manifest_bad_settings", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "decoders", 0, "settings", {"heads": "two"})), ZooError, "heads"),
    ("manifest_bad_mask", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "decoders", 0, "settings", "mask", "sideways")), ZooError, "unknown mask convention 'sideways'"),
    ("manifest_heads_do_not_divide", lambda z, _: _write_manifest(
        z, _set(_manifest(z), "decoders", 0, "settings", "heads", 7)), ZooError, "do not divide"),
    ("no_manifest", lambda z, _: (z / "manifest.json").unlink(), ZooError, "no manifest.json"),
]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def broken(request, good_zoo, tmp_path):
    name, mutate, error, fragment = request.param
    zoo = tmp_path / "zoo"
    shutil.copytree(good_zoo, zoo)
    marker = tmp_path / "PWNED"
    mutate(zoo, marker)
    return name, zoo, marker, error, fragment


def test_zoo_refuses_with_one_clear_line(broken):
    name, zoo, marker, error, fragment = broken
    with pytest.raises(C4CError) as e:
        Zoo(zoo)
    msg = str(e.value)
    assert isinstance(e.value, error), f"{name}: {type(e.value).__name__}: {msg}"
    assert fragment in msg, msg
    assert "\n" not in msg and len(msg) < 400, msg
    assert not marker.exists(), "a checkpoint ran code while loading"


def test_cli_refuses_with_one_error_line(broken, video, capsys):
    name, zoo, marker, error, fragment = broken
    rc = cli_main(["caption", str(video), "--zoo", str(zoo), "--beam", "1"])
    out, err = capsys.readouterr()
    assert rc == 2, (name, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert out == "" and not marker.exists()


SUBPROCESS_CASES = ["evil_pickle_zip", "manifest_not_json"]  # a real process costs 5-20 s on a busy 2-core box


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_python_m_c4c_refuses(case, good_zoo, video, tmp_path):
    _, mutate, _, fragment = next(c for c in CASES if c[0] == case)
    zoo = tmp_path / "zoo"
    shutil.copytree(good_zoo, zoo)
    marker = tmp_path / "PWNED"
    mutate(zoo, marker)
    p = subprocess.run([sys.executable, "-m", "c4c", "caption", str(video), "--zoo", str(zoo)], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], p.stderr
    assert "Traceback" not in p.stderr and p.stdout == "" and not marker.exists()


def test_evil_pickle_would_run_without_weights_only(tmp_path):
    """The attack in the tests is real: a plain unpickle runs it (so the refusal above means something)."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps({"w": Evil(marker)}))
    assert marker.read_text() == "code ran"


def _small_files(tmp: Path) -> dict[str, bytes]:
    sd = {"layer.weight": torch.randn(3, 4), "layer.bias": torch.zeros(3), "step": torch.tensor(7)}
    from c4c.checkpoints import save_safetensors
    save_safetensors(sd, tmp / "a.safetensors", {"heads": 2})
    torch.save(sd, tmp / "a.zip.bin")
    torch.save(sd, tmp / "a.legacy.bin", _use_new_zipfile_serialization=False)
    return {p.name: p.read_bytes() for p in sorted(tmp.iterdir())}


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    return _small_files(tmp_path_factory.mktemp("small"))


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(which=st.sampled_from(["a.safetensors", "a.zip.bin", "a.legacy.bin"]), data=st.data())
def test_damaged_bytes_give_a_checkpoint_error_or_a_state_dict(small_files, tmp_path, which, data):
    """Any cut, flipped or overwritten bytes of a valid checkpoint: CheckpointError, never another error."""
    raw = bytearray(small_files[which])
    how = data.draw(st.sampled_from(["cut", "flip", "overwrite", "name"]))
    if how == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "overwrite":
        at = data.draw(st.integers(0, len(raw) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=64))
        raw[at:at + len(chunk)] = chunk
    name = data.draw(st.sampled_from(["x.bin", "x.safetensors", "x.pt"])) if how == "name" else "x.bin"
    path = tmp_path / f"{data.draw(st.integers(0, 10**9))}-{name}"
    path.write_bytes(bytes(raw))
    try:
        sd = load_state_dict(path)
    except CheckpointError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) |
                    st.sampled_from(["", "vocab.txt", "idf.json", "w.safetensors", "../w.safetensors", "/etc/hosts"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["name", "file", "settings", "heads", "mask", "max_frames"]), inner,
                        max_size=3), max_leaves=12)
FILES = st.sampled_from(["vocab.txt", "idf.json", "w.safetensors", "w.safetensors", "missing.bin", "../w.safetensors",
                         "/etc/hosts", "", "C:\\w.safetensors", "sub/../w.safetensors"]) | JSON
SETTING = st.sampled_from([None, 1, 2, 0, -1, "two", True, 2.5, "frames"])
VALID_MANIFEST = {"backbone": {"file": "w.safetensors"}, "vocab": "vocab.txt", "idf": "idf.json",
                  "decoders": [{"name": "a", "file": "w.safetensors", "settings": {"heads": 2, "mask": "frames"}},
                               {"name": "b", "file": "w.safetensors"}]}
# Where one value of a valid manifest is replaced (or, with None, removed).
SPOTS = [(), ("backbone",), ("backbone", "file"), ("vocab",), ("idf",), ("decoders",), ("decoders", 0),
         ("decoders", 0, "name"), ("decoders", 1, "file"), ("decoders", 0, "settings"),
         ("decoders", 0, "settings", "heads"), ("decoders", 1, "settings")]


@st.composite
def one_field_broken(draw):
    m = json.loads(json.dumps(VALID_MANIFEST))
    spot = draw(st.sampled_from(SPOTS))
    if not spot:
        return m
    parent = m
    for key in spot[:-1]:
        parent = parent[key]
    value = draw(st.one_of(FILES, SETTING, JSON, st.just(None)))
    if value is None and isinstance(parent, dict):
        parent.pop(spot[-1], None)
    else:
        parent[spot[-1]] = value
    return m


MANIFESTS = st.one_of(JSON, one_field_broken())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=MANIFESTS)
def test_any_manifest_gives_a_zoo_error_or_a_valid_manifest(tmp_path, manifest):
    from c4c.zoo import read_manifest
    for name in ("vocab.txt", "idf.json", "w.safetensors"):
        (tmp_path / name).write_text("x")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    try:
        m = read_manifest(tmp_path)
    except ZooError as e:
        event("refused")
        assert "\n" not in str(e)
    else:
        event("accepted")
        names = [m["backbone"]["file"], m["vocab"], m["idf"]] + [d["file"] for d in m["decoders"]]
        assert all((tmp_path / n).is_file() and ".." not in n and not n.startswith("/") for n in names)


def test_safetensors_whose_header_length_starts_with_0x80(tmp_path):
    """The 8-byte header length is little-endian: 1 file in 32 starts with 0x80, the pickle marker."""
    from c4c.checkpoints import read_safetensors_metadata, save_safetensors
    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    for pad in range(300):
        p = tmp_path / "w.safetensors"
        save_safetensors(sd, p, {"note": "x" * pad})
        if p.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length starting with 0x80")
    assert torch.equal(load_state_dict(p)["w"], sd["w"]) and read_safetensors_metadata(p)["note"] == "x" * pad


def test_good_zoo_still_loads(good_zoo):
    zoo = Zoo(good_zoo)
    assert len(zoo.decoders) == 3 and zoo.backbone.embed_dim > 0


def test_zoo_folder_problems(tmp_path, good_zoo):
    with pytest.raises(ZooError, match="model zoo folder not found"):
        Zoo(tmp_path / "nowhere")
    with pytest.raises(ZooError, match="model zoo folder not found"):
        Zoo(good_zoo / "manifest.json")  # a file, not a folder
