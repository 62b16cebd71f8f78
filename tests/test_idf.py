"""IdfTable: document frequencies as coco-caption counts them, JSON round trip, and the idf CLI."""

import argparse
import gzip
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
from pycocoevalcap.cider.cider_scorer import CiderScorer

from c4c.cli import idf as idf_cli
from c4c.errors import C4CError, InputError
from c4c.vote.idf import IdfTable

REPO = Path(__file__).resolve().parents[1]


def _random_docs(seed: int, n_docs: int = 40) -> list[list[str]]:
    rng = random.Random(seed)
    words = "a man woman is playing the guitar dog runs in field A Man".split()
    return [[" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(rng.randint(1, 4))] for _ in range(n_docs)]


def test_document_frequency_counts_each_video_once():
    t = IdfTable.from_captions([["a dog a dog", "a dog runs"], ["a dog"], ["a cat"]], source="toy")
    assert t.n_docs == 3
    assert t.doc_freq(("a",)) == 3
    assert t.doc_freq(("a", "dog")) == 2  # twice in the first video, still one document
    assert t.doc_freq(("dog", "a", "dog")) == 1
    assert t.doc_freq(("cat", "a")) == 0
    assert len(t) == len(t.df)
    assert "3 documents" in t.describe() and "toy" in t.describe()


def test_matches_coco_caption_compute_doc_freq():
    docs = _random_docs(0)
    scorer = CiderScorer(n=4)
    for refs in docs:
        scorer += (refs[0], refs)
    scorer.compute_doc_freq()
    t = IdfTable.from_captions(docs)
    assert dict(t.df) == {g: int(c) for g, c in scorer.document_frequency.items()}


def test_case_and_whitespace():
    t = IdfTable.from_captions([["A  Man\tsings "], ["a man"]])
    assert t.doc_freq(("A", "Man")) == 1 and t.doc_freq(("a", "man")) == 1  # case kept
    assert t.doc_freq(("Man", "sings")) == 1  # whitespace-split


@pytest.mark.parametrize("name", ["idf.json", "idf.json.gz"])
def test_save_load_round_trip(tmp_path, name):
    t = IdfTable.from_captions(_random_docs(1) + [["é ü 日本 |||"]], source="random, with unicode")
    path = t.save(tmp_path / "sub" / name)
    back = IdfTable.load(path)
    assert back == t and back.source == t.source and back.n_docs == t.n_docs
    assert path.read_bytes() == t.save(tmp_path / ("again_" + name)).read_bytes()  # byte-stable
    if name.endswith(".gz"):
        assert json.loads(gzip.decompress(path.read_bytes()))["format"] == "c4c-idf"


def test_immutable_and_picklable():
    t = IdfTable.from_captions([["a b"]])
    with pytest.raises(AttributeError):
        t.n_docs = 5
    with pytest.raises(TypeError):
        t.df[("z",)] = 1
    assert pickle.loads(pickle.dumps(t)) == t


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"format": "other"}',
        b'{"format": "c4c-idf", "version": 1, "n_docs": 0, "df": {}}',
        b'{"format": "c4c-idf", "version": 1, "n_docs": 2, "df": {"a": 3}}',
        b'{"format": "c4c-idf", "version": 1, "n_docs": 2, "df": {"a b c d e": 1}}',
        b'{"format": "c4c-idf", "version": 9, "n_docs": 2, "df": {}}',
        b"\x1f\x8b truncated gzip",
    ],
)
def test_load_rejects_bad_files(tmp_path, content):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(InputError):
        IdfTable.load(p)


def test_bad_construction():
    with pytest.raises(InputError):
        IdfTable.from_captions([])
    with pytest.raises(InputError):
        IdfTable.from_captions(["a bare string, not a list"])
    with pytest.raises(InputError):
        IdfTable({("a",): 5}, n_docs=2)
    with pytest.raises(InputError):
        IdfTable.load("/nonexistent/idf.json")


def cli_main(argv: list[str]) -> int:
    """The idf command in-process, through its own parser only (`python -m c4c` imports every
    command module, torch included; the subprocess tests below cover the dispatcher)."""
    parser = argparse.ArgumentParser()
    idf_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except C4CError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _msrvtt(path: Path, n_videos: int) -> Path:
    # video i has the word w{i}; sentences are listed out of video order, as in the real file
    videos = [{"video_id": f"video{i}", "category": 0} for i in range(n_videos)]
    sentences = [{"video_id": f"video{i}", "caption": f"a clip w{i} {k}", "sen_id": 2 * i + k} for k in range(2) for i in reversed(range(n_videos))]
    path.write_text(json.dumps({"videos": videos, "sentences": sentences}))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "c4c", "idf", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_msrvtt_json_subprocess(tmp_path):
    src = _msrvtt(tmp_path / "MSRVTT_data.json", 5)
    out = tmp_path / "idf.json.gz"
    r = _run(str(src), "--out", str(out), "--videos", "3")
    assert r.returncode == 0, r.stderr
    assert "3 documents, 6 captions" in r.stdout
    t = IdfTable.load(out)
    assert t.n_docs == 3 and t.doc_freq(("a", "clip")) == 3
    assert t.doc_freq(("w2",)) == 1 and t.doc_freq(("w3",)) == 0  # first 3 videos by json order
    assert t.doc_freq(("0",)) == 3  # "0" ends one caption of every video: counted once per video


def test_cli_text_file_subprocess(tmp_path):
    src = tmp_path / "caps.txt"
    src.write_text("a man sings\na man sings\n\n a dog runs \n")
    out = tmp_path / "idf.json"
    r = _run(str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr
    t = IdfTable.load(out)
    assert t.n_docs == 3 and t.doc_freq(("a", "man", "sings")) == 2  # one document per non-blank line
    assert "3 documents, 3 captions" in r.stdout
    assert cli_main(["idf", str(src), "--out", str(out), "--group-by-blank-lines"]) == 0
    t = IdfTable.load(out)
    assert t.n_docs == 2 and t.doc_freq(("a", "man", "sings")) == 1


def test_cli_train_split(tmp_path):
    src = _msrvtt(tmp_path / "MSRVTT_data.json", 6520)
    out = tmp_path / "idf.json"
    assert cli_main(["idf", str(src), "--out", str(out), "--split", "train"]) == 0
    t = IdfTable.load(out)
    assert t.n_docs == 6513 and t.doc_freq(("w6512",)) == 1 and t.doc_freq(("w6513",)) == 0
    assert "train" in t.source


def test_cli_bad_inputs(tmp_path, capsys):
    small = _msrvtt(tmp_path / "small.json", 4)
    assert cli_main(["idf", str(small), "--out", str(tmp_path / "x.json"), "--split", "train"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [], "sentences": [{"caption": "no id"}]}')
    assert cli_main(["idf", str(bad), "--out", str(tmp_path / "x.json")]) == 2
    assert cli_main(["idf", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x.json")]) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert cli_main(["idf", str(empty), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
