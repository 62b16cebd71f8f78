"""Safe loading of weights files: every format, every way a file can be bad."""

import pickle

import pytest
import torch

from c4c.checkpoints import check_finite, check_shapes, load_state_dict, read_safetensors_metadata, save_safetensors
from c4c.errors import CheckpointError


def _sd():
    return {"a.weight": torch.randn(3, 4), "a.bias": torch.zeros(3)}


def test_roundtrip_torch_and_safetensors(tmp_path):
    sd = _sd()
    torch.save(sd, tmp_path / "m.bin")
    got = load_state_dict(tmp_path / "m.bin")
    assert set(got) == set(sd) and torch.equal(got["a.weight"], sd["a.weight"])
    save_safetensors(sd, tmp_path / "m.safetensors", {"heads": 2, "mask": "frames"})
    got = load_state_dict(tmp_path / "m.safetensors")
    assert torch.equal(got["a.weight"], sd["a.weight"])
    assert read_safetensors_metadata(tmp_path / "m.safetensors") == {"heads": 2, "mask": "frames"}


def test_wrapped_state_dict_is_unwrapped(tmp_path):
    torch.save({"state_dict": _sd(), "epoch": 3}, tmp_path / "w.bin")
    assert set(load_state_dict(tmp_path / "w.bin")) == {"a.weight", "a.bias"}


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("case", ["empty", "text", "truncated", "optimizer", "evil", "missing", "dir", "not_tensors"])
def test_bad_files_are_refused_with_a_reason(tmp_path, case):
    p = tmp_path / "bad.bin"
    expect = {"empty": "empty", "text": "not a checkpoint", "truncated": "truncated", "optimizer": "optimizer",
              "evil": "refused", "missing": "no such file", "dir": "directory", "not_tensors": "no state dict"}[case]
    if case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("hello, I am not weights\n")
    elif case == "truncated":
        torch.save(_sd(), p)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif case == "optimizer":
        torch.save({"epoch": 1, "optimizer_state_dict": {"state": {}, "param_groups": []}, "loss": 0.5}, p)
    elif case == "evil":
        with open(p, "wb") as f:
            pickle.dump({"x": _Evil()}, f)
    elif case == "dir":
        p.mkdir()
    elif case == "not_tensors":
        torch.save({"a": 1, "b": "two"}, p)
    with pytest.raises(CheckpointError, match=expect):
        load_state_dict(p)


def test_torchscript_needs_explicit_permission(tmp_path):
    m = torch.jit.script(torch.nn.Linear(2, 3))
    m.save(str(tmp_path / "ts.pt"))
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_state_dict(tmp_path / "ts.pt")
    sd = load_state_dict(tmp_path / "ts.pt", allow_torchscript=True)
    assert set(sd) == {"weight", "bias"}


def test_nan_and_shape_checks_name_the_key():
    sd = _sd()
    check_finite(sd, "x")
    sd["a.bias"][1] = float("nan")
    with pytest.raises(CheckpointError, match="'a.bias'.*NaN"):
        check_finite(sd, "x")
    with pytest.raises(CheckpointError, match=r"'a.weight' has shape \[3, 4\], expected \[4, 4\]"):
        check_shapes(sd, {"a.weight": (4, 4)}, "x")
    with pytest.raises(CheckpointError, match="missing key 'c'"):
        check_shapes(sd, {"c": (1,)}, "x")
