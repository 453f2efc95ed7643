"""Conversion throughput: our validating converter against the team's preprocess.py way, same run.

The baseline does what preprocess.py does: `spacy.blank`, then per line `get_words_and_spaces` on the
token texts, a `Doc`, `doc.char_span` per span, into a `DocBin` written to disk. Ours validates every
line (all fifteen checks) and writes the same two DocBins. Each is timed as the minimum of N repeats,
interleaved; a third timing re-runs ours on unchanged input with the conversion cache warm.

    python benchmarks/conversion.py [--data ../shared/data/fashion_brands] [--repeats 5]

Ends with `conversion: ratio X.XX (goal >= 1.00)` (our examples/s over the baseline's) and
`conversion cache: ratio X.XX (goal <= 0.05)` (cached re-run time over uncached time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def baseline_convert(train: Path, dev: Path, out_dir: Path, lang: str = "en") -> int:
    """What preprocess.py does: spacy.blank + get_words_and_spaces + char_span into a DocBin."""
    import spacy
    from spacy.tokens import Doc, DocBin
    from spacy.util import get_words_and_spaces

    nlp = spacy.blank(lang)
    n = 0
    for name, path in (("train", train), ("dev", dev)):
        db = DocBin()
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                eg = json.loads(line)
                if eg.get("answer", "accept") != "accept":
                    continue
                words, spaces = get_words_and_spaces([t["text"] for t in eg["tokens"]], eg["text"])
                doc = Doc(nlp.vocab, words=words, spaces=spaces)
                ents = [doc.char_span(s["start"], s["end"], label=s["label"]) for s in eg.get("spans", [])]
                doc.ents = [e for e in ents if e is not None]
                db.add(doc)
                n += 1
        db.to_disk(out_dir / f"{name}.spacy")
    return n


def best_of(repeats: int, *fns: Callable[[], object]) -> List[float]:
    """Min time of each function over `repeats` rounds, interleaved so a busy machine slows all alike."""
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [min(ts) for ts in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fashion_brands")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--label", action="append", default=None, help="label set (default FASHION_BRAND)")
    args = parser.parse_args()
    train, dev = args.data / "train.jsonl", args.data / "dev.jsonl"
    labels = args.label or ["FASHION_BRAND"]

    import spacy  # noqa: F401  (imported once, outside every timing)

    from ner_runner.corpus import convert_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        n_docs = baseline_convert(train, dev, tmp_path)  # warm-up: file cache, vocab, imports
        runs = iter(range(10**6))

        def ours_uncached() -> None:  # a fresh cache folder each time: always a miss
            convert_corpus(
                train, dev, labels=labels, out_dir=tmp_path / "ours", cache_dir=tmp_path / f"cache{next(runs)}"
            )

        def ours_cached() -> None:
            corpus = convert_corpus(train, dev, labels=labels, out_dir=tmp_path / "ours", cache_dir=tmp_path / "warm")
            assert corpus.cache_hit

        convert_corpus(train, dev, labels=labels, out_dir=tmp_path / "ours", cache_dir=tmp_path / "warm")
        t_base, t_ours, t_cached = best_of(
            args.repeats, lambda: baseline_convert(train, dev, tmp_path), ours_uncached, ours_cached
        )

    print(f"data: {args.data} ({n_docs} examples), min of {args.repeats} repeats")
    print(f"baseline (preprocess.py way): {t_base:.3f}s  {n_docs / t_base:,.0f} examples/s")
    print(f"ner-runner (validating):      {t_ours:.3f}s  {n_docs / t_ours:,.0f} examples/s")
    print(f"ner-runner (cache hit):       {t_cached:.4f}s")
    print(f"conversion: ratio {t_base / t_ours:.2f} (goal >= 1.00)")
    print(f"conversion cache: ratio {t_cached / t_ours:.2f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
