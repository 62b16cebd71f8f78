"""The top-level API: a few names in `__all__`, loaded lazily so `import c4c` stays light."""

import subprocess
import sys

import c4c


def test_public_names_resolve_to_their_classes():
    from c4c.pipeline import Pipeline
    from c4c.result import CaptionResult
    from c4c.settings import CaptionSettings
    from c4c.zoo import Zoo
    assert (c4c.Pipeline, c4c.CaptionSettings, c4c.CaptionResult, c4c.Zoo) == (Pipeline, CaptionSettings,
                                                                                CaptionResult, Zoo)
    assert set(c4c.__all__) >= {"Pipeline", "CaptionSettings", "CaptionResult", "Zoo"}
    assert all(hasattr(c4c, n) for n in c4c.__all__)


def test_import_c4c_loads_no_torch_and_the_settings_need_none():
    code = ("import sys, c4c; s = c4c.CaptionSettings(beam=3); s.check(['a', 'b']); "
            "print(sorted(m for m in ('torch', 'transformers', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    try:
        c4c.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_default_zoo_is_the_checkouts_shipped_zoo():
    from pathlib import Path

    from c4c.zoo import default_zoo_dir
    assert default_zoo_dir() == Path(__file__).resolve().parents[1] / "weights" / "demo"
    assert (default_zoo_dir() / "manifest.json").is_file()


def test_cpu_features_need_no_transformers():
    # The backbone's CPU float32 path runs on the checkpoint's tensors; importing transformers alone
    # would cost ~2.7 s of every cold start.
    code = ("import sys, c4c; p = c4c.Pipeline.from_zoo(None, device='cpu', cache_size=0); "
            "_, f = p.features('examples/test_00003.mp4', c4c.CaptionSettings()); "
            "print(f.shape[1] == p.zoo.backbone.embed_dim, 'transformers' in sys.modules)")
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split() == ["True", "False"]
