"""Our DocBins hold the same documents as the preprocess.py way (spaCy's get_words_and_spaces + char_span)."""

from __future__ import annotations

import json

from ner_runner.corpus import convert_corpus


def _baseline_docs(path, vocab):
    from spacy.tokens import Doc
    from spacy.util import get_words_and_spaces

    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        eg = json.loads(line)
        words, spaces = get_words_and_spaces([t["text"] for t in eg["tokens"]], eg["text"])
        doc = Doc(vocab, words=words, spaces=spaces)
        doc.ents = [doc.char_span(s["start"], s["end"], label=s["label"]) for s in eg.get("spans") or []]
        docs.append(doc)
    return docs


def _view(doc):
    return (
        doc.text,
        [t.text for t in doc],
        [t.whitespace_ for t in doc],
        [(e.start, e.end, e.label_) for e in doc.ents],
        [t.ent_iob_ for t in doc],
    )


def test_docbins_match_the_preprocess_way(tmp_path, fashion_dir):
    import spacy
    from spacy.tokens import DocBin

    corpus = convert_corpus(fashion_dir / "train.jsonl", fashion_dir / "dev.jsonl", labels=["FASHION_BRAND"],
                            out_dir=tmp_path / "corpus")
    nlp = spacy.blank("en")
    ours = list(DocBin().from_disk(corpus.dev).get_docs(spacy.blank("en").vocab))  # a fresh vocab: strings travel
    expected = _baseline_docs(fashion_dir / "dev.jsonl", nlp.vocab)
    assert len(ours) == len(expected) == 500
    assert [_view(d) for d in ours] == [_view(d) for d in expected]
    assert len(DocBin().from_disk(corpus.train)) == 1235
    assert corpus.reports["train"].entities["FASHION_BRAND"] == 527
    assert corpus.reports["dev"].entities["FASHION_BRAND"] == 238
    assert corpus.reports["train"].docs_without_entities == 930
