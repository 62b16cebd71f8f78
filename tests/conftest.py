"""Shared test helpers: the golden sets under tests/data/golden (or $C4C_GOLDEN_DIR; docs/golden-data.md),
the golden caption model of a set, and a one-thread fixture."""

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN_DIR = Path(os.environ.get("C4C_GOLDEN_DIR", Path(__file__).resolve().parent / "data" / "golden"))


def golden_sets() -> list[Path]:
    """Every set folder in GOLDEN_DIR, sorted (empty when the folder is absent)."""
    if not GOLDEN_DIR.is_dir():
        return []
    return sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))


CONVS = ("repro", "univl", "ones")  # the goldens' video-mask conventions
MASK_OF = {"repro": "repro", "univl": "frames", "ones": "ones"}  # golden convention -> CaptionConfig.mask


@lru_cache(maxsize=4)
def golden_decoder(path: Path, need: tuple[str, ...] = ()):
    """(config.json, CaptionModel, golden.json, inputs.npz as tensors) of a golden set; the test is
    skipped when the set lacks one of these files or of `need`."""
    from c4c.captioning.model import CaptionModel
    files = ("config.json", "decoder.bin", "inputs.npz", "golden.json", *need)
    lacking = [f for f in files if not (path / f).is_file()]
    if lacking:
        pytest.skip(f"{path.name} has no {', '.join(lacking)}")
    cfg = json.loads((path / "config.json").read_text())
    model = CaptionModel.from_file(path / "decoder.bin", heads=cfg["num_attention_heads"],
                                   max_frames=cfg["max_frames"], max_words=cfg["max_words"])
    inputs = {k: torch.from_numpy(v) for k, v in np.load(path / "inputs.npz").items()}
    return cfg, model, json.loads((path / "golden.json").read_text()), inputs


@pytest.fixture
def one_thread():
    """torch at one intra-op thread for the test: the CPUs are shared, and with 2 threads on a busy
    machine tiny ops wait on each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_generate_tests(metafunc):
    """A test taking a `golden_set` argument runs once per set folder, and is skipped if there is none."""
    if "golden_set" in metafunc.fixturenames:
        sets = golden_sets()
        if sets:
            metafunc.parametrize("golden_set", sets, ids=[p.name for p in sets])
        else:
            skip = pytest.mark.skip(reason=f"no golden sets under {GOLDEN_DIR}")
            metafunc.parametrize("golden_set", [pytest.param(None, marks=skip)], ids=["no-golden"])
