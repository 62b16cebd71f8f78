"""Reading weights files safely, whatever their format.

Supported: safetensors (c4c's own format), `torch.save` pickles (the reference code's bare state
dicts, loaded with `weights_only=True` so a pickle can never run code) and, only when the caller
asks for it, TorchScript archives (OpenAI's CLIP `.pt`), which *do* run code on load.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointError

__all__ = ["load_state_dict", "save_safetensors", "read_safetensors_metadata", "check_finite", "check_shapes"]

# Keys under which training scripts commonly nest the real state dict.
_WRAPPERS = ("state_dict", "model_state_dict", "model", "module")


def _kind(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); re-download or re-export it")
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except Exception as e:  # zipfile raises BadZipFile, OSError, UnicodeDecodeError, ... on damage
            raise CheckpointError(f"{path}: the file is truncated or corrupted ({_first_line(e)}); "
                                  "re-download it") from None
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "torch"
    # safetensors first: its header length (8 bytes, little-endian) can start with 0x80 too
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol marker: legacy (pre-1.6) torch.save
        return "torch"
    raise CheckpointError(
        f"{path}: not a checkpoint (expected safetensors, a torch.save file or a TorchScript archive)")


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        if "optimizer_state_dict" in obj or ("param_groups" in obj and "state" in obj):
            raise CheckpointError(
                f"{path}: this is an optimizer file, not model weights (use pytorch_model.bin.N, "
                "not pytorch_opt.bin.N)")
        for key in _WRAPPERS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            return tensors
    raise CheckpointError(f"{path}: the file holds no state dict of tensors (found {type(obj).__name__})")


def load_state_dict(path: str | Path, *, allow_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict (name -> tensor, on CPU, dtypes as stored) from any supported file.

    Raises CheckpointError with a readable message for a missing, empty, truncated, unsafe or
    foreign file. TorchScript archives execute code when loaded, so they are refused unless
    `allow_torchscript=True` (only `c4c import` of an OpenAI CLIP `.pt` passes it).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a weights file")
    try:
        kind = _kind(path)
    except PermissionError:
        raise CheckpointError(f"{path}: permission denied; check the file's permissions") from None
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            # load_file maps the file into memory and its tensors keep reading it: if the file were
            # rewritten in place later (a zoo rebuilt while the app serves it), the next read would
            # kill the process with SIGBUS. Private copies cost one model's size, once.
            return {k: v.clone() for k, v in load_file(str(path), device="cpu").items()}
        except (SafetensorError, Exception) as e:  # noqa: BLE001 - any failure here means a damaged file
            raise CheckpointError(f"{path}: unreadable safetensors file ({_first_line(e)}); it may be truncated "
                                  "or corrupted: re-download it") from None
    if kind == "torchscript":
        if not allow_torchscript:
            raise CheckpointError(
                f"{path}: is a TorchScript archive, which runs code when loaded; convert it once with "
                "`python -m c4c import` (which loads it deliberately) and use the safetensors it writes")
        try:
            return {k: v.detach() for k, v in torch.jit.load(str(path), map_location="cpu").state_dict().items()}
        except Exception as e:  # TorchScript raises many unrelated types for a bad archive
            raise CheckpointError(f"{path}: unreadable TorchScript archive ({e})") from None
    try:
        # A file object, not the name: torch.load hands any "*.safetensors" *name* to safetensors,
        # so a pickle named that way would fail there with a foreign error instead of being read here.
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 150": the error says enough
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = next((ln.strip() for ln in str(e).splitlines() if "global" in ln.lower()), None)
        if unsafe is None:  # the weights-only unpickler also says "failed" for plain damage
            raise CheckpointError(f"{path}: the file is truncated or corrupted ({_first_line(e)}); "
                                  "re-download it") from None
        m = re.search(r"GLOBAL\s+(\S+?)[\s,.]", unsafe)
        what = f" ({m[1]})" if m else ""
        raise CheckpointError(
            f"{path}: refused to load: the pickle contains Python objects other than tensors{what}, and "
            "loading it could run code. Only plain state dicts of tensors are accepted") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many unrelated types for damaged files
        raise CheckpointError(f"{path}: the file is truncated or corrupted ({_first_line(e)}); "
                              "re-download it") from None
    return _unwrap(obj, path)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # torch's weights-only errors open with a paragraph about torch.load; the cause follows this marker
    at = next((k for k, ln in enumerate(lines) if "WeightsUnpickler error:" in ln), None)
    if at is not None:
        cause = lines[at].split("WeightsUnpickler error:", 1)[1].strip()
        return (cause or (lines[at + 1] if at + 1 < len(lines) else type(e).__name__))[:160]
    return (lines[0] if lines else type(e).__name__)[:160]


def check_finite(sd: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Raise CheckpointError naming the first tensor that holds NaN or Inf."""
    for name, t in sd.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{source}: weight {name!r} contains NaN or Inf values; the checkpoint is broken")


def check_shapes(sd: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source: str | Path) -> None:
    """Raise CheckpointError for the first key that is missing or has the wrong shape."""
    for name, shape in expected.items():
        if name not in sd:
            raise CheckpointError(f"{source}: missing key {name!r} (expected shape {list(shape)})")
        if tuple(sd[name].shape) != tuple(shape):
            raise CheckpointError(
                f"{source}: key {name!r} has shape {list(sd[name].shape)}, expected {list(shape)}")


def save_safetensors(sd: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, object] | None = None) -> None:
    """Write tensors as safetensors; `metadata` values are stored JSON-encoded under their keys.
    Tied tensors are written once per name (safetensors forbids shared storage), as contiguous copies."""
    from safetensors.torch import save_file
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def read_safetensors_metadata(path: str | Path) -> dict[str, object]:
    """The JSON-decoded metadata of a safetensors file ({} for any other format)."""
    path = Path(path)
    try:
        if _kind(path) != "safetensors":
            return {}
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable safetensors header ({e})") from None
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
