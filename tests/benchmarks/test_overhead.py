"""benchmarks/overhead.py compares like with like: the old preprocess step and the runner's conversion
produce the same documents, so the same config and seed must give the same dev ents_f."""

from __future__ import annotations

import subprocess
import sys

from ner_runner.data import convert_corpus
from tests.conftest import ROOT


def _docs(path):
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    return [
        ([t.text for t in doc], [bool(t.whitespace_) for t in doc], [(e.start_char, e.end_char, e.label_) for e in doc.ents],
         [t.ent_iob_ for t in doc])
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab)
    ]  # fmt: skip


def test_baseline_preprocess_and_runner_conversion_give_identical_docs(tmp_path, fashion_small):
    corpus = convert_corpus(
        fashion_small["train"], fashion_small["dev"], labels=["FASHION_BRAND"], out_dir=tmp_path / "runner"
    )
    base = tmp_path / "baseline"
    base.mkdir()
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "baseline_preprocess.py"),
         str(fashion_small["train"]), str(base / "train.spacy"), str(fashion_small["dev"]), str(base / "dev.spacy")],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    for split, runner_path in (("train", corpus.train), ("dev", corpus.dev)):
        runner_docs, baseline_docs = _docs(runner_path), _docs(base / f"{split}.spacy")
        assert len(runner_docs) == len(baseline_docs) > 0
        assert runner_docs == baseline_docs
        assert any(ents for _, _, ents, _ in runner_docs)
