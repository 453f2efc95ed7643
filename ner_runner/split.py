"""Stratified train/dev split of one Prodigy export, per entity label, in linear time.

Labels are served rarest first: a document is placed when its rarest label is, so a label that
appears in five documents is never starved by a common one, and every label ends up as close to the
target ratio as the documents that share it allow. Documents without entities are split in the same
ratio. The result depends only on the input order and the seed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Collection, Dict, List, Sequence, Tuple

from .errors import NerRunnerError


def dev_target(n_docs: int, test_size: float) -> int:
    """How many of a label's documents go to dev: the rounded share, but both sides get one if they can."""
    target = math.floor(n_docs * test_size + 0.5)
    if n_docs >= 2:
        target = min(max(target, 1), n_docs - 1)
    return target


def check_test_size(test_size: float) -> float:
    if not isinstance(test_size, (int, float)) or not 0.0 < float(test_size) < 1.0:
        raise NerRunnerError(f"data.split.test_size={test_size!r} must be a fraction between 0 and 1")
    return float(test_size)


def stratified_split(label_sets: Sequence[Collection[str]], test_size: float, seed: int) -> List[bool]:
    """For each document (given by its set of labels), True if it goes to dev.

    O(total labels over all documents) plus sorting the distinct labels; no membership scans.
    """
    test_size = check_test_size(test_size)
    rng = random.Random(seed)
    doc_labels = [frozenset(ls) for ls in label_sets]
    counts: Counter = Counter(label for ls in doc_labels for label in ls)
    order = sorted(counts, key=lambda label: (counts[label], label))
    rank = {label: i for i, label in enumerate(order)}
    by_rarest: Dict[str, List[int]] = defaultdict(list)
    without: List[int] = []
    for i, ls in enumerate(doc_labels):
        if ls:
            by_rarest[min(ls, key=rank.__getitem__)].append(i)
        else:
            without.append(i)

    is_dev = [False] * len(doc_labels)
    in_dev: Counter = Counter()
    for label in order:
        docs = by_rarest[label]
        # documents of this label placed earlier (through a rarer label) already count towards it
        need = min(max(dev_target(counts[label], test_size) - in_dev[label], 0), len(docs))
        rng.shuffle(docs)
        for i in docs[:need]:
            is_dev[i] = True
            for other in doc_labels[i]:
                in_dev[other] += 1
    rng.shuffle(without)
    for i in without[: dev_target(len(without), test_size)]:
        is_dev[i] = True
    return is_dev


def split_counts(label_sets: Sequence[Collection[str]], is_dev: Sequence[bool]) -> List[Tuple[str, int, int]]:
    """(label, train docs, dev docs) per label, then '(no entity)'."""
    train: Counter = Counter()
    dev: Counter = Counter()
    for ls, d in zip(label_sets, is_dev):
        side = dev if d else train
        for label in set(ls) or {"(no entity)"}:
            side[label] += 1
    labels = sorted(set(train) | set(dev), key=lambda l: (l == "(no entity)", l))
    return [(label, train[label], dev[label]) for label in labels]


def format_split_table(rows: Sequence[Tuple[str, int, int]], n_train: int, n_dev: int) -> str:
    table = [("documents per label", "train", "dev", "dev share")]
    for label, t, d in [*rows, ("all", n_train, n_dev)]:
        share = d / (t + d) if t + d else 0.0
        table.append((label, str(t), str(d), f"{share:.2f}"))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in table
    )


# --------------------------------------------------------------------------- `ner-runner split`


def _read_for_split(path: Path) -> Tuple[List[str], List[List[str]], Counter]:
    """Accepted, de-duplicated lines of an export and their labels; the full checks run at training time."""
    from .data import (
        BAD_TEXT,
        DUPLICATE,
        FILE_EMPTY,
        FILE_MISSING,
        INVALID_JSON,
        NOT_OBJECT,
        DataError,
        Problem,
        _decoded_lines,
        _split_lines,
    )

    name = str(path)
    if not path.is_file():
        raise DataError([Problem(name, 0, "file not found", FILE_MISSING)])
    lines: List[str] = []
    labels: List[List[str]] = []
    skipped: Counter = Counter()
    problems: List[Problem] = []
    seen_hash: set = set()
    seen_text: set = set()
    read = 0
    for line_no, raw, bad in _decoded_lines(path, _split_lines(path.read_bytes())):
        read += 1
        if bad is not None:
            problems.append(bad)
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            problems.append(Problem(name, line_no, f"not valid JSON ({err.msg} at column {err.colno})", INVALID_JSON))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(name, line_no, f"expected a JSON object, got {type(obj).__name__}", NOT_OBJECT))
            continue
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(name, line_no, "'text' is missing, not a string or empty", BAD_TEXT))
            continue
        answer = obj.get("answer", "accept")
        if answer != "accept":
            skipped[f"answer_{answer}"] += 1
            continue
        h = obj.get("_input_hash")
        if text in seen_text or (h is not None and h in seen_hash):
            skipped[DUPLICATE] += 1
            continue
        seen_text.add(text)
        if h is not None:
            seen_hash.add(h)
        spans = obj.get("spans") or []
        labels.append(sorted({s["label"] for s in spans if isinstance(s, dict) and isinstance(s.get("label"), str)}))
        lines.append(raw)
    if read == 0:
        problems.append(Problem(name, 0, "file is empty", FILE_EMPTY))
    if problems:
        raise DataError(problems)
    return lines, labels, skipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN.jsonl", help="Prodigy JSONL export to split")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where train.jsonl and dev.jsonl are written")
    parser.add_argument("--test-size", type=float, required=True, help="share of documents for dev, e.g. 0.2")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    """Write OUT_DIR/train.jsonl and OUT_DIR/dev.jsonl (lines unchanged, input order) and print the counts."""
    check_test_size(args.test_size)
    lines, labels, skipped = _read_for_split(args.input)
    is_dev = stratified_split(labels, args.test_size, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    n_dev = sum(is_dev)
    for name, want in (("train.jsonl", False), ("dev.jsonl", True)):
        with (args.out_dir / name).open("w", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line, d in zip(lines, is_dev) if d is want)
    print(format_split_table(split_counts(labels, is_dev), len(lines) - n_dev, n_dev))
    if skipped:
        print("left out: " + ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))
    print(f"wrote {args.out_dir / 'train.jsonl'} and {args.out_dir / 'dev.jsonl'} (seed {args.seed})")
    return 0
