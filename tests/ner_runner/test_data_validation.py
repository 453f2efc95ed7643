"""Every kind of data problem, one fixture file each: message, line number, exit and counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import pytest

from ner_runner import data as d
from ner_runner.corpus import convert_corpus
from ner_runner.data import DataError
from tests.conftest import FASHION_OVERRIDES, run_py

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data"
LABELS = ["FASHION_BRAND"]


def fx(name: str) -> Path:
    return FIXTURES / f"{name}.jsonl"


class Case(NamedTuple):
    kind: str
    train: str
    dev: str
    where: List[Tuple[str, int]]  # (train|dev, 1-based line; 0 = the file)
    message: str
    fatal: bool = False  # a file problem: on_error=skip cannot help


ERRORS = [
    Case(d.INVALID_JSON, "invalid_json", "dev", [("train", 3)], "not valid JSON (Expecting"),
    Case(d.NOT_OBJECT, "not_object", "dev", [("train", 3)], "expected a JSON object, got list"),
    Case(d.BAD_TEXT, "bad_text", "dev", [("train", 3), ("train", 4), ("train", 5)], "'text' is "),
    Case(d.BAD_TOKENS, "bad_tokens", "dev", [("train", 3)], "tokens do not match the text: token 7 text 'Nyke'"),
    Case(d.SPAN_OFFSETS, "span_offsets", "dev", [("train", 3), ("train", 4)], "span 0 offsets 35-"),
    Case(
        d.MISALIGNED_SPAN,
        "misaligned_span",
        "dev",
        [("train", 3)],
        "span 0 'Nik' (37-40) is not on token boundaries; nearest token boundaries 37-41 'Nike' (expand) / "
        "none (contract); data.alignment=strict",
    ),
    Case(
        d.OVERLAPPING_SPANS,
        "overlapping_spans",
        "dev",
        [("train", 3)],
        "overlapping spans 'Ralph Lauren' (FASHION_BRAND, 39-51) and 'Lauren' (FASHION_BRAND, 45-51)",
    ),
    Case(
        d.UNKNOWN_LABEL,
        "unknown_label",
        "dev",
        [("train", 3)],
        "label 'PERSON' is not in this phase's label set (allowed: FASHION_BRAND)",
    ),
    Case(d.LEAKAGE, "leakage_train", "leakage_dev", [("dev", 2)], "(train/dev leakage)"),
    Case(d.FILE_MISSING, "does_not_exist", "dev", [("train", 0)], "file not found", fatal=True),
    Case(d.FILE_EMPTY, "dev", "empty", [("dev", 0)], "file is empty", fatal=True),
    Case(d.NO_ACCEPTED, "no_accepted", "dev", [("train", 0)], "no accepted examples (2 answer_reject)", fatal=True),
    Case(d.NOT_UTF8, "not_utf8", "dev", [("train", 3)], "not UTF-8 (invalid continuation byte at byte"),
    Case(
        d.SPAN_TEXT,
        "span_text_mismatch",
        "dev",
        [("train", 3)],
        "span 0 text 'Adidas' differs from the text at 40-44 ('Nike')",
    ),
]


def _convert(tmp_path: Path, train: str, dev: str, **kw):
    return convert_corpus(fx(train), fx(dev), labels=LABELS, out_dir=tmp_path / "corpus", **kw)


@pytest.mark.parametrize("case", ERRORS, ids=[c.kind for c in ERRORS])
def test_each_kind_is_reported_with_file_line_and_counted_under_skip(tmp_path, case):
    with pytest.raises(DataError) as err:
        _convert(tmp_path, case.train, case.dev)
    paths = {"train": str(fx(case.train)), "dev": str(fx(case.dev))}
    problems = err.value.problems
    assert [(p.path, p.line, p.kind) for p in problems] == [(paths[r], line, case.kind) for r, line in case.where]
    assert all(case.message in p.message for p in problems), [p.message for p in problems]
    text = str(err.value)
    for role, line in case.where:  # one line per problem, file:line first
        prefix = f"{paths[role]}:{line}: " if line else f"{paths[role]}: "
        assert any(row.startswith(prefix) and case.message in row for row in text.splitlines()), text

    if case.fatal:
        with pytest.raises(DataError):
            _convert(tmp_path, case.train, case.dev, on_error="skip")
        return
    corpus = _convert(tmp_path, case.train, case.dev, on_error="skip")
    side = "train" if case.kind == d.LEAKAGE else case.where[0][0]
    assert corpus.reports[side].skipped == {case.kind: len(case.where)}
    assert corpus.reports["train"].accepted == corpus.reports["train"].read - len(case.where)
    assert corpus.train.is_file() and corpus.dev.is_file()


def test_misaligned_span_snaps_under_expand(tmp_path):
    corpus = _convert(tmp_path, "misaligned_span", "dev", alignment="expand")
    assert corpus.reports["train"].skipped == {}
    assert corpus.reports["train"].entities["FASHION_BRAND"] == 3
    with pytest.raises(DataError, match="none \\(contract\\)"):
        _convert(tmp_path, "misaligned_span", "dev", alignment="contract")


def test_missing_tokens_are_made_by_spacys_tokenizer(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    corpus = _convert(tmp_path, "no_tokens", "dev")
    rep = corpus.reports["train"]
    assert (rep.read, rep.accepted, rep.tokenized, rep.entities["FASHION_BRAND"]) == (4, 4, 1, 3)
    docs = list(DocBin().from_disk(corpus.train).get_docs(spacy.blank("en").vocab))
    assert [(e.text, e.label_) for e in docs[2].ents] == [("Zara", "FASHION_BRAND")]


def test_rejected_and_ignored_answers_are_skipped_and_counted(tmp_path):
    rep = _convert(tmp_path, "answers", "dev").reports["train"]
    assert (rep.read, rep.accepted, dict(rep.skipped)) == (5, 3, {"answer_reject": 1, "answer_ignore": 1})


def test_duplicates_keep_the_first_warn_and_count(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        rep = _convert(tmp_path, "duplicate", "dev").reports["train"]
    assert (rep.read, rep.accepted, dict(rep.skipped)) == (5, 3, {"duplicate": 2})
    assert [(w.line, w.message) for w in rep.warnings] == [
        (3, "duplicate of line 1 (same _input_hash); keeping line 1"),
        (4, "duplicate of line 2 (same _input_hash); keeping line 2"),
    ]
    assert f"{fx('duplicate')}:3: duplicate of line 1" in caplog.text


def test_many_problems_show_the_first_in_full_and_count_the_rest(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "tokens": [{"text": f"t{i}", "start": 0, "end": 2}]}) for i in range(3)]
    lines += ["{"] * 30
    train = tmp_path / "many.jsonl"
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        convert_corpus(train, fx("dev"), labels=LABELS, out_dir=tmp_path / "corpus")
    text = str(err.value)
    assert text.splitlines()[0] == "30 problems in the data (30 invalid_json):"
    assert f"{train}:4: not valid JSON" in text and f"{train}:23: not valid JSON" in text
    assert f"{train}:24:" not in text
    assert "... and 10 more: 10 invalid_json" in text
    assert (tmp_path / "corpus" / "problems.txt").read_text().count("not valid JSON") == 30


# --------------------------------------------------------------------------- through run.py

LINE_KINDS = [c for c in ERRORS if not c.fatal and c.kind != d.LEAKAGE]


def _all_kinds_export(tmp_path: Path) -> Tuple[Path, Path, List[Tuple[str, int, str]]]:
    """One export holding every line-level kind (plus duplicates, answers, missing tokens), and a dev
    file that leaks one of its texts; returns the problems `run.py` must report, as (path, line, text)."""
    train = tmp_path / "all_kinds.jsonl"
    dev = tmp_path / "all_kinds_dev.jsonl"
    chunks: List[bytes] = []
    expected: List[Tuple[str, int, str]] = []
    offset = 0
    for case in LINE_KINDS:
        raw = fx(case.train).read_bytes().splitlines()
        expected += [(str(train), offset + line, case.message) for _, line in case.where]
        chunks += raw
        offset += len(raw)
    for extra in ("duplicate", "answers", "no_tokens"):
        chunks += fx(extra).read_bytes().splitlines()
    leaked_at = len(chunks) + 1
    chunks += fx("leakage_train").read_bytes().splitlines()
    train.write_bytes(b"\n".join(chunks) + b"\n")
    dev.write_bytes(fx("leakage_dev").read_bytes())
    expected.append((str(dev), 2, f"same text as {train}:{leaked_at} (train/dev leakage)"))
    return train, dev, expected


def _run(tmp_path: Path, train: Path, dev: Path, *extra: str):
    return run_py(
        [
            f"data.train={train}",
            f"data.dev={dev}",
            *FASHION_OVERRIDES,
            "train=false",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}",
            *extra,
        ],
        check=False,
    )


def test_run_py_reports_every_kind_at_once_then_skips_them_on_request(tmp_path):
    train, dev, expected = _all_kinds_export(tmp_path)
    proc = _run(tmp_path, train, dev)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"{len(expected)} problems in the data" in proc.stderr
    errors = proc.stderr[proc.stderr.index("error: ") :]
    for path, line, message in expected:
        assert any(r.startswith(f"{path}:{line}: ") and message in r for r in errors.splitlines()), (line, errors)
    assert not (tmp_path / "run" / "corpus" / "train.spacy").exists()

    proc = _run(tmp_path, train, dev, "data.on_error=skip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    skipped = report["train"]["skipped"]
    for case in LINE_KINDS:
        assert skipped[case.kind] == len(case.where), case.kind
    assert skipped["duplicate"] == 2 and skipped["answer_reject"] == 1 and skipped["leakage"] == 1
    assert report["train"]["tokenized"] == 1
    out = proc.stdout + proc.stderr
    assert "skipped: misaligned_span" in out  # the printed table
    assert f"{train}:{expected[0][1]}: not valid JSON" in out  # what was dropped is said, not just counted
    assert (tmp_path / "run" / "corpus" / "train.spacy").is_file()


def test_run_py_file_problems_and_alignment_mode(tmp_path):
    proc = _run(tmp_path, tmp_path / "nope.jsonl", fx("empty"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'nope.jsonl'}: file not found" in proc.stderr
    assert f"{fx('empty')}: file is empty" in proc.stderr

    proc = _run(tmp_path, fx("misaligned_span"), fx("no_accepted"), "data.alignment=expand", "data.on_error=skip")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{fx('no_accepted')}: no accepted examples (2 answer_reject)" in proc.stderr
    assert "misaligned" not in proc.stderr
