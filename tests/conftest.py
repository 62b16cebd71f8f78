"""Shared test helpers: the golden sets under ../shared/golden (or $C4C_GOLDEN_DIR)."""

import os
from pathlib import Path

import pytest

GOLDEN_DIR = Path(os.environ.get("C4C_GOLDEN_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "golden"))


def golden_sets() -> list[Path]:
    """Every set folder in GOLDEN_DIR, sorted (empty when the folder is absent)."""
    if not GOLDEN_DIR.is_dir():
        return []
    return sorted(p for p in GOLDEN_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))


def pytest_generate_tests(metafunc):
    """A test taking a `golden_set` argument runs once per set folder, and is skipped if there is none."""
    if "golden_set" in metafunc.fixturenames:
        sets = golden_sets()
        if sets:
            metafunc.parametrize("golden_set", sets, ids=[p.name for p in sets])
        else:
            skip = pytest.mark.skip(reason=f"no golden sets under {GOLDEN_DIR}")
            metafunc.parametrize("golden_set", [pytest.param(None, marks=skip)], ids=["no-golden"])
