"""The team's preprocess step before ner-runner: Prodigy JSONL -> DocBin, as the old spaCy project did it.

    python benchmarks/baseline_preprocess.py IN.jsonl OUT.spacy [IN.jsonl OUT.spacy ...]

spacy.blank, the export's tokens rebuilt with `spacy.util.get_words_and_spaces`, entities with
`doc.char_span`, everything into a DocBin. No validation and no report: this is the baseline the runner is
measured against in benchmarks/overhead.py, kept as plain as the script it replaces.
"""

from __future__ import annotations

import sys

import spacy
import srsly
from spacy.tokens import Doc, DocBin
from spacy.util import get_words_and_spaces


def convert(nlp, in_path: str, out_path: str) -> int:
    db = DocBin()
    for eg in srsly.read_jsonl(in_path):
        if eg.get("answer", "accept") != "accept":
            continue
        words, spaces = get_words_and_spaces([t["text"] for t in eg["tokens"]], eg["text"])
        doc = Doc(nlp.vocab, words=words, spaces=spaces)
        ents = [doc.char_span(s["start"], s["end"], label=s["label"]) for s in eg.get("spans") or []]
        doc.ents = [e for e in ents if e is not None]
        db.add(doc)
    db.to_disk(out_path)
    return len(db)


def main(argv: list) -> None:
    if not argv or len(argv) % 2:
        sys.exit("usage: baseline_preprocess.py IN.jsonl OUT.spacy [IN.jsonl OUT.spacy ...]")
    nlp = spacy.blank("en")
    for in_path, out_path in zip(argv[::2], argv[1::2]):
        print(f"{in_path} -> {out_path}: {convert(nlp, in_path, out_path)} docs")


if __name__ == "__main__":
    main(sys.argv[1:])
