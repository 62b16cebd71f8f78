"""The speed benchmark's harness at tiny sizes: both pipelines run, give the same captions, and the
JSON has the promised keys. Not a timed test: the numbers mean nothing at this size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from c4c.cli.bench import load_benchmark

REPO = Path(__file__).resolve().parents[1]
KEYS = {"reference_s", "c4c_s", "ratio", "identical_captions", "stages", "backbone_gflops", "matmul_gflops"}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


def test_reference_and_c4c_pipelines_agree(bench, tmp_path):
    from c4c.pipeline import Pipeline
    cfg = bench.BenchConfig.tiny(tmp_path)
    zoo, video = bench.prepare(cfg)
    pipe = Pipeline.from_zoo(zoo, device="cpu", cache_size=0)
    ref = bench.reference_pipeline(pipe, video, cfg)
    ours = bench.c4c_pipeline(pipe, video, cfg)
    assert ref[1] == ours[1] and ref[2] == ours[2]                   # token ids and texts, every decoder
    assert all(len(ids) == cfg.max_words for ids in ours[1])        # [SEP] unreachable: every caption full length
    assert ref[3] == ours[3] == cfg.max_frames                      # the same frames reach the backbone
    for tm in (ref[0], ours[0]):
        assert {"decode", "preprocess", "backbone", "captioning", "ensemble", "total"} <= set(tm)
    assert bench.backbone_flops(bench.REAL_SPEC.vision) / 1e9 == pytest.approx(8.8, abs=0.1)  # ViT-B/32


def test_cli_json(tmp_path):
    r = subprocess.run([sys.executable, "-m", "c4c", "bench", "--tiny", "--runs", "1", "--json", "--work",
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert KEYS <= set(res) and res["identical_captions"] is True
    assert set(res["stages"]) == {"hash", "decode", "preprocess", "backbone", "captioning", "ensemble", "end_to_end"}
    assert res["c4c_s"] > 0 and res["reference_s"] > 0 and res["matmul_gflops"] > 0
    assert res["ratio"] == pytest.approx(res["reference_s"] / res["c4c_s"], rel=0.02)
    assert "round 1/1" in r.stderr  # progress goes to stderr, the JSON alone to stdout


def test_cli_rejects_bad_arguments(tmp_path):
    from c4c.cli import main
    assert main(["bench", "--runs", "0", "--work", str(tmp_path)]) == 2
