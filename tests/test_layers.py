"""The package's layers: no module imports a layer above its own (lazy imports inside functions
included), siblings of one layer do not import each other, and no module grows past MAX_LINES.

    python tests/test_layers.py     # prints the layer map and every violation
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "c4c"
# Bottom to top. A module may import its own unit and units of lower layers; the ground floor's
# modules may also import each other (settings uses errors, result uses settings).
LAYERS = [
    ("ground", {"errors", "checkpoints", "cpu", "settings", "result", "subtitles", "kernels"}),
    ("stages", {"video", "vision", "captioning", "vote", "synth"}),
    ("assembly", {"zoo", "features"}),
    ("segments", {"segments"}),  # segmented captioning; given the Pipeline by the layer above
    ("pipeline", {"pipeline"}),
    ("jobs", {"batch", "train"}),
    ("ui", {"ui"}),
    ("entry", {"cli"}),
    ("top", {"__main__", "__init__"}),
]
RANK = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}
MAX_LINES = 400


def _unit(module: str) -> str:
    """c4c.video.frames -> video; c4c.settings -> settings."""
    return module.split(".")[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts)


def c4c_imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every c4c import in a file, at any depth (lazy ones too)."""
    name = _module_name(path)
    package = name.removesuffix(".__init__") if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("c4c.") or target == "c4c":
                # `from . import x` / `from c4c import x`: the imported names are the modules
                targets = [f"{target}.{a.name}" for a in node.names] if target.count(".") == 0 else [target]
                found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("c4c.")]
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        src = _module_name(path)
        unit = "__init__" if src == "c4c.__init__" else _unit(src)
        if unit not in RANK:
            out.append(f"{path.relative_to(PKG.parent)}: unit {unit!r} is in no layer")
            continue
        n_lines = len(path.read_text().splitlines())
        if n_lines > MAX_LINES:
            out.append(f"{path.relative_to(PKG.parent)}: {n_lines} lines (> {MAX_LINES})")
        for line, target in c4c_imports(path):
            other = _unit(target)
            if other == unit or other not in RANK:
                continue
            ok = RANK[other] < RANK[unit] or (RANK[other] == RANK[unit] == 0)
            if not ok:
                out.append(f"{path.relative_to(PKG.parent)}:{line}: {unit} ({LAYERS[RANK[unit]][0]}) imports "
                           f"{target} ({LAYERS[RANK[other]][0]})")
    return out


def test_every_unit_is_in_a_layer_and_imports_only_below():
    assert violations() == []


def test_every_module_imports_and_every_lazy_c4c_import_resolves():
    # Lazy imports inside functions only fail when called: resolve each one here (a module moved
    # without its importers fixed shows up at once).
    import importlib
    import importlib.util
    for path in sorted(PKG.rglob("*.py")):
        name = _module_name(path).removesuffix(".__init__")
        if name.endswith("ray_engine") and importlib.util.find_spec("ray") is None:
            continue
        importlib.import_module(name)
        for line, target in c4c_imports(path):
            assert importlib.util.find_spec(target) is not None or _is_attribute(target), \
                f"{path.relative_to(PKG.parent)}:{line}: {target} does not exist"


def _is_attribute(target: str) -> bool:
    """`from c4c.x import y` where y is a name in c4c.x, not a module."""
    import importlib
    module, _, attr = target.rpartition(".")
    return hasattr(importlib.import_module(module), attr)


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    # the checker itself: a lazy relative import inside a function is found and resolved
    f = PKG / "video" / "frames.py"
    targets = {t for _, t in c4c_imports(f)}
    assert "c4c.cpu" in targets and "c4c.errors" in targets


if __name__ == "__main__":
    for name, units in LAYERS:
        print(f"{name:<9} {', '.join(sorted(units))}")
    found = violations()
    print("\n".join(found) if found else "no upward or sideways imports; no module over "
          f"{MAX_LINES} lines ({sum(1 for _ in PKG.rglob('*.py'))} modules checked)")
    raise SystemExit(1 if found else 0)
