"""The run's evaluation and its report share one pass over the dev set."""

from __future__ import annotations

from ner_runner import results
from ner_runner.data import convert_corpus
from ner_runner.training import evaluate_with_predictions


def _ents(examples):
    return [[(e.start_char, e.end_char, e.label_) for e in eg.predicted.ents] for eg in examples]


def test_report_reuses_the_evaluation_predictions(tmp_path, fashion_small, monkeypatch):
    import spacy
    from spacy.training import Corpus

    corpus = convert_corpus(
        fashion_small["train"], fashion_small["dev"], labels=["FASHION_BRAND"], out_dir=tmp_path / "corpus"
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    nlp.initialize(lambda: Corpus(str(corpus.train))(nlp))
    nlp.to_disk(tmp_path / "model")

    nlp, scores, examples = evaluate_with_predictions(tmp_path / "model", corpus.dev)
    assert len(examples) == 30 and "ents_f" in scores
    assert _ents(examples) == _ents(results.predict_dev(nlp, corpus.dev))  # what a second pass would give

    def second_pass(*_args, **_kwargs):
        raise AssertionError("the dev set was predicted a second time")

    monkeypatch.setattr(results, "predict_dev", second_pass)
    made = results.write_report(
        out=tmp_path / "report", nlp=nlp, dev=corpus.dev, scores=scores, journal=None, examples=examples
    )
    assert made["confusion"]["examples"] == 30
    assert (tmp_path / "report" / "predictions.html").is_file()
