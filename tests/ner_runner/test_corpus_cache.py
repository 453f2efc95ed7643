"""The conversion cache: an unchanged input skips conversion, any change converts again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ner_runner.corpus import convert_corpus
from tests.conftest import quick_overrides, run_py


@pytest.fixture()
def inputs(tmp_path, fashion_small):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("train", "dev"):
        shutil.copy(fashion_small[name], d / f"{name}.jsonl")
    return d / "train.jsonl", d / "dev.jsonl"


def _convert(tmp_path: Path, train: Path, dev, out: str, **kw):
    kw.setdefault("labels", ["FASHION_BRAND"])
    return convert_corpus(train, dev, out_dir=tmp_path / out / "corpus", cache_dir=tmp_path / "cache", **kw)


def test_hit_then_miss_on_every_change(tmp_path, inputs, caplog):
    train, dev = inputs
    first = _convert(tmp_path, train, dev, "r1")
    assert not first.cache_hit
    with caplog.at_level("INFO"):
        again = _convert(tmp_path, train, dev, "r2")
    assert again.cache_hit and again.cache_key == first.cache_key
    assert "inputs unchanged, skipping conversion" in caplog.text
    assert {k: v for k, v in again.to_dict().items() if k != "lineage"} == {
        k: v for k, v in first.to_dict().items() if k != "lineage"
    }
    for name in ("train.spacy", "dev.spacy"):  # the run sees its own corpus, same bytes
        assert (tmp_path / "r2" / "corpus" / name).read_bytes() == (tmp_path / "r1" / "corpus" / name).read_bytes()

    keys = {first.cache_key}
    for out, kw in [
        ("labels", {"labels": ["FASHION_BRAND", "PERSON"]}),
        ("alignment", {"alignment": "expand"}),
        ("on_error", {"on_error": "skip"}),
    ]:
        corpus = _convert(tmp_path, train, dev, out, **kw)
        assert not corpus.cache_hit, out
        keys.add(corpus.cache_key)

    split = _convert(tmp_path, train, None, "split", test_size=0.2, seed=1)
    assert not split.cache_hit
    assert _convert(tmp_path, train, None, "split2", test_size=0.2, seed=1).cache_hit
    assert not _convert(tmp_path, train, None, "split3", test_size=0.2, seed=2).cache_hit
    keys.add(split.cache_key)

    lines = dev.read_text(encoding="utf-8").splitlines()
    dev.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # content changed, same path
    edited = _convert(tmp_path, train, dev, "edited")
    assert not edited.cache_hit and edited.reports["dev"].read == len(lines) - 1
    keys.add(edited.cache_key)
    assert len(keys) == 6


def test_no_cache_dir_converts_into_the_run(tmp_path, inputs):
    corpus = convert_corpus(*inputs, labels=["FASHION_BRAND"], out_dir=tmp_path / "corpus")
    assert corpus.cache_key is None and corpus.train == tmp_path / "corpus" / "train.spacy"
    assert corpus.train.is_file() and corpus.dev.is_file()


def test_run_py_rerun_skips_conversion(tmp_path, fashion_small):
    args = quick_overrides(fashion_small, tmp_path, extra=["train=false"])
    first = run_py(args)
    assert "skipping conversion" not in first.stdout + first.stderr
    shutil.rmtree(tmp_path / "run")
    second = run_py(args)
    assert "inputs unchanged, skipping conversion" in second.stdout + second.stderr
    run_dir = tmp_path / "run"
    assert (run_dir / "corpus" / "train.spacy").is_file() and (run_dir / "corpus" / "dev.spacy").is_file()
    assert str(run_dir / "corpus" / "train.spacy") in (run_dir / "config.cfg").read_text()
