"""The stratified split: its properties, the `ner-runner split` command, and a run that splits one export."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from ner_runner.cli import main as cli_main
from ner_runner.split import stratified_split
from tests.conftest import FASHION_OVERRIDES, run_py


def _synthetic(n: int = 400, seed: int = 7) -> List[List[str]]:
    """Skewed label frequencies, rare labels, documents with several labels and many with none."""
    rng = random.Random(seed)
    weights = {"COMMON": 60, "MID": 20, "LESS": 8, "RARE": 2}
    docs: List[List[str]] = []
    for _ in range(n):
        if rng.random() < 0.45:
            docs.append([])
            continue
        k = 1 + (rng.random() < 0.3)
        docs.append(sorted(set(rng.choices(list(weights), weights=list(weights.values()), k=k))))
    docs += [["TINY"], ["TINY", "COMMON"], ["PAIR"], ["PAIR"], ["SOLO"]]
    return docs


def _check_properties(label_sets: Sequence[Sequence[str]], is_dev: Sequence[bool], test_size: float) -> None:
    total: Counter = Counter()
    dev: Counter = Counter()
    for ls, d in zip(label_sets, is_dev):
        for label in set(ls) or {None}:
            total[label] += 1
            dev[label] += d
    for label, n in total.items():
        if n >= 2:
            assert 1 <= dev[label] <= n - 1, (label, dev[label], n)
        assert abs(dev[label] - test_size * n) <= 1, (label, dev[label], n)
    assert abs(sum(is_dev) - test_size * len(label_sets)) <= len(total)


@pytest.mark.parametrize("test_size", [0.2, 0.5])
def test_split_properties_on_skewed_multi_label_data(test_size):
    docs = _synthetic()
    is_dev = stratified_split(docs, test_size, seed=3)
    assert len(is_dev) == len(docs)  # every document on exactly one side
    _check_properties(docs, is_dev, test_size)
    assert stratified_split(docs, test_size, seed=3) == is_dev  # deterministic per seed
    assert stratified_split(docs, test_size, seed=4) != is_dev


def test_split_rejects_a_bad_test_size():
    from ner_runner.errors import NerRunnerError

    with pytest.raises(NerRunnerError, match="between 0 and 1"):
        stratified_split([["A"]], 1.5, seed=0)


def _labels_of(path: Path) -> Dict[str, List[str]]:
    return {
        json.loads(line)["text"]: sorted({s["label"] for s in json.loads(line).get("spans") or []})
        for line in path.read_text(encoding="utf-8").splitlines()
    }


def test_split_command_on_fashion_brands(tmp_path, fashion_dir, capsys):
    src = fashion_dir / "train.jsonl"
    assert cli_main(["split", str(src), str(tmp_path / "a"), "--test-size", "0.2", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    train, dev = _labels_of(tmp_path / "a" / "train.jsonl"), _labels_of(tmp_path / "a" / "dev.jsonl")
    assert not set(train) & set(dev)  # no document in both
    source = src.read_text(encoding="utf-8").splitlines()
    assert len(train) + len(dev) == len(source) == 1235
    written = (tmp_path / "a" / "train.jsonl").read_text().splitlines() + (tmp_path / "a" / "dev.jsonl").read_text().splitlines()
    assert sorted(written) == sorted(source)  # lines unchanged
    docs = list(train.values()) + list(dev.values())
    _check_properties(docs, [False] * len(train) + [True] * len(dev), 0.2)
    n_brand_docs = sum(1 for ls in docs if ls)
    dev_brand = sum(1 for ls in dev.values() if ls)
    assert f"FASHION_BRAND        {n_brand_docs - dev_brand:>5}  {dev_brand:>3}" in printed
    assert "(no entity)" in printed and "wrote " in printed

    assert cli_main(["split", str(src), str(tmp_path / "b"), "--test-size", "0.2", "--seed", "1"]) == 0
    for name in ("train.jsonl", "dev.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_split_command_reports_bad_lines_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "spans": []}\n{oops\n')
    assert cli_main(["split", str(bad), str(tmp_path / "out"), "--test-size", "0.2"]) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_splits_one_export_when_dev_is_null(tmp_path, fashion_small):
    proc = run_py(
        [
            f"data.train={fashion_small['train']}",
            "data.dev=null",
            "data.split.test_size=0.25",
            "data.split.seed=5",
            *FASHION_OVERRIDES,
            "train=false",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    splits = report
    assert list(splits) == ["input", "train", "dev", "lineage"]
    assert splits["input"]["accepted"] == 60 == splits["train"]["accepted"] + splits["dev"]["accepted"]
    assert splits["dev"]["entities"]["FASHION_BRAND"] >= 1 and splits["dev"]["docs_without_entities"] == 5
    assert report["lineage"]["split"] == {"test_size": 0.25, "seed": 5}
    assert report["lineage"]["inputs"]["input"]["path"] == str(fashion_small["train"])
    assert (tmp_path / "run" / "corpus" / "dev.spacy").is_file()
    assert "split " in proc.stdout + proc.stderr


def test_run_without_dev_or_test_size_says_what_to_set(tmp_path, fashion_small):
    proc = run_py(
        [f"data.train={fashion_small['train']}", "data.dev=null", *FASHION_OVERRIDES, "train=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "data.split.test_size=0.2" in proc.stderr
