"""Prodigy JSONL -> spaCy DocBin, keeping the export's own tokens and whitespace.

Every problem is collected with its file and 1-based line number and raised together as one
`DataError`, so a bad export fails in seconds, locally, with a message that says what to fix.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import NerRunnerError
from .progress import track

ALIGNMENT_MODES = ("strict", "contract", "expand")
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one line of an export."""

    path: str
    line: int  # 1-based; 0 for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class DataError(NerRunnerError):
    """One or more problems in the input data."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        more = len(self.problems) - len(shown)
        text = "\n".join(shown)
        if more > 0:
            text += f"\n... and {more} more problem(s)"
        if len(self.problems) > 1:
            text = f"{len(self.problems)} problems in the data:\n{text}"
        super().__init__(text)


@dataclass
class Example:
    """A validated example: text, tokens with trailing whitespace, and char-offset spans."""

    line: int
    text: str
    words: List[str]
    spaces: List[bool]
    spans: List[Tuple[int, int, str]]


@dataclass
class SplitReport:
    """What happened to one file: nothing is dropped without being counted here."""

    path: str
    read: int = 0
    accepted: int = 0
    skipped: Counter = field(default_factory=Counter)
    entities: Counter = field(default_factory=Counter)
    docs_without_entities: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "read": self.read,
            "accepted": self.accepted,
            "skipped": dict(sorted(self.skipped.items())),
            "entities": dict(sorted(self.entities.items())),
            "docs_without_entities": self.docs_without_entities,
        }


def _words_and_spaces(
    text: str, tokens: List[Tuple[int, int]]
) -> Tuple[List[str], List[bool]]:
    """Rebuild spaCy words/spaces so that the Doc's text equals `text` exactly.

    Whitespace that a single trailing space cannot express (newlines, double spaces, leading
    whitespace) becomes whitespace tokens, the way spaCy's own tokenizer represents it.
    """
    words: List[str] = []
    spaces: List[bool] = []
    if tokens and tokens[0][0] > 0:
        words.append(text[: tokens[0][0]])
        spaces.append(False)
    for i, (start, end) in enumerate(tokens):
        words.append(text[start:end])
        next_start = tokens[i + 1][0] if i + 1 < len(tokens) else len(text)
        gap = text[end:next_start]
        if gap.startswith(" "):
            spaces.append(True)
            gap = gap[1:]
        else:
            spaces.append(False)
        if gap:
            words.append(gap)
            spaces.append(False)
    return words, spaces


def _check_tokens(text: str, raw_tokens: Any) -> Tuple[Optional[List[Tuple[int, int]]], Optional[str]]:
    """Token offsets that match the text, or a message saying where they do not."""
    if not isinstance(raw_tokens, list):
        return None, "'tokens' is not a list"
    offsets: List[Tuple[int, int]] = []
    prev_end = 0
    for i, tok in enumerate(raw_tokens):
        if not isinstance(tok, dict):
            return None, f"token {i} is not an object"
        start, end, tok_text = tok.get("start"), tok.get("end"), tok.get("text")
        if not isinstance(start, int) or not isinstance(end, int):
            return None, f"token {i} has no integer 'start'/'end'"
        if start < prev_end or end < start or end > len(text):
            return None, f"token {i} offsets {start}-{end} are out of order or outside the text"
        if tok_text is not None and text[start:end] != tok_text:
            return None, (
                f"token {i} text {tok_text!r} does not match the text at {start}-{end} "
                f"({text[start:end]!r})"
            )
        if text[prev_end:start].strip():
            return None, f"text {text[prev_end:start]!r} before token {i} is not covered by any token"
        offsets.append((start, end))
        prev_end = end
    if text[prev_end:].strip():
        return None, f"text {text[prev_end:]!r} after the last token is not covered by any token"
    return offsets, None


def _nearest_boundaries(tokens: List[Tuple[int, int]], start: int, end: int) -> str:
    starts = [s for s, _ in tokens]
    ends = [e for _, e in tokens]
    s_lo = max([s for s in starts if s <= start], default=0)
    e_hi = min([e for e in ends if e >= end], default=ends[-1] if ends else end)
    return f"nearest token boundaries {s_lo}-{e_hi}"


def _snap_span(
    tokens: List[Tuple[int, int]], start: int, end: int, mode: str
) -> Optional[Tuple[int, int]]:
    """Char span on token boundaries: unchanged, or contracted/expanded as `mode` allows."""
    starts = {s for s, _ in tokens}
    ends = {e for _, e in tokens}
    if start in starts and end in ends:
        return start, end
    if mode == "strict":
        return None
    inside = [(s, e) for s, e in tokens if s < end and e > start]
    if mode == "expand":
        if not inside:
            return None
        return inside[0][0], inside[-1][1]
    contained = [(s, e) for s, e in inside if s >= start and e <= end]
    if not contained:
        return None
    return contained[0][0], contained[-1][1]


def _tokenize(text: str, tokenizer: Any) -> List[Tuple[int, int]]:
    doc = tokenizer(text)
    return [(t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]


def parse_prodigy_line(
    raw: str,
    *,
    path: str,
    line_no: int,
    labels: Optional[Iterable[str]],
    alignment: str = "strict",
    tokenizer: Any = None,
) -> Tuple[Optional[Example], List[Problem], Optional[str]]:
    """Parse and validate one JSONL line.

    Returns (example, problems, skip_reason): an example to keep, the problems found, or the
    reason an example is skipped without being an error (e.g. a rejected answer).
    """
    allowed = set(labels) if labels is not None else None

    def problem(msg: str) -> Tuple[None, List[Problem], None]:
        return None, [Problem(path, line_no, msg)], None

    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        return problem(f"not valid JSON ({err.msg} at column {err.colno})")
    if not isinstance(obj, dict):
        return problem(f"expected a JSON object, got {type(obj).__name__}")
    answer = obj.get("answer", "accept")
    if answer != "accept":
        return None, [], f"answer_{answer}"
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return problem("'text' is missing, not a string or empty")

    if "tokens" in obj:
        tokens, msg = _check_tokens(text, obj["tokens"])
        if msg:
            return problem(f"tokens do not match the text: {msg}")
    elif tokenizer is not None:
        tokens = _tokenize(text, tokenizer)
    else:
        return problem("'tokens' is missing")
    assert tokens is not None

    problems: List[Problem] = []
    spans: List[Tuple[int, int, str]] = []
    raw_spans = obj.get("spans") or []
    if not isinstance(raw_spans, list):
        return problem("'spans' is not a list")
    for i, sp in enumerate(raw_spans):
        if not isinstance(sp, dict):
            problems.append(Problem(path, line_no, f"span {i} is not an object"))
            continue
        start, end, label = sp.get("start"), sp.get("end"), sp.get("label")
        if not isinstance(start, int) or not isinstance(end, int):
            problems.append(Problem(path, line_no, f"span {i} has no integer 'start'/'end'"))
            continue
        if start < 0 or end > len(text) or start >= end:
            problems.append(
                Problem(path, line_no, f"span {i} ({start}-{end}) is outside the text or empty")
            )
            continue
        if not isinstance(label, str) or not label:
            problems.append(Problem(path, line_no, f"span {i} has no 'label'"))
            continue
        if allowed is not None and label not in allowed:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"label {label!r} is not in this phase's label set "
                    f"(allowed: {', '.join(sorted(allowed))})",
                )
            )
            continue
        if "text" in sp and sp["text"] != text[start:end]:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"span {i} text {sp['text']!r} differs from the text at {start}-{end} "
                    f"({text[start:end]!r})",
                )
            )
            continue
        snapped = _snap_span(tokens, start, end, alignment)
        if snapped is None:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"span {i} {text[start:end]!r} ({start}-{end}) is not on token boundaries; "
                    f"{_nearest_boundaries(tokens, start, end)} "
                    f"(data.alignment={alignment}; try contract or expand)",
                )
            )
            continue
        spans.append((snapped[0], snapped[1], label))
    spans.sort()
    for (s1, e1, l1), (s2, e2, l2) in zip(spans, spans[1:]):
        if s2 < e1:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"overlapping spans {text[s1:e1]!r} ({l1}, {s1}-{e1}) and "
                    f"{text[s2:e2]!r} ({l2}, {s2}-{e2})",
                )
            )
    if problems:
        return None, problems, None
    words, spaces = _words_and_spaces(text, tokens)
    return Example(line_no, text, words, spaces, spans), [], None


def read_prodigy_jsonl(
    path: Path,
    *,
    labels: Optional[Iterable[str]],
    alignment: str = "strict",
    tokenizer: Any = None,
) -> Tuple[List[Example], List[Problem], SplitReport]:
    """Read a whole export, collecting every problem in one pass."""
    if alignment not in ALIGNMENT_MODES:
        raise NerRunnerError(
            f"data.alignment={alignment!r} is not one of {', '.join(ALIGNMENT_MODES)}"
        )
    report = SplitReport(path=str(path))
    if not path.is_file():
        return [], [Problem(str(path), 0, "file not found")], report
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = path.read_bytes()[: err.start].count(b"\n") + 1
        return [], [Problem(str(path), line_no, f"not UTF-8 ({err.reason} at byte {err.start})")], report
    label_list = list(labels) if labels is not None else None
    examples: List[Example] = []
    problems: List[Problem] = []
    lines = track(content.splitlines(), f"reading {path.name}", unit="line")
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        report.read += 1
        example, found, skip = parse_prodigy_line(
            raw,
            path=str(path),
            line_no=line_no,
            labels=label_list,
            alignment=alignment,
            tokenizer=tokenizer,
        )
        if skip:
            report.skipped[skip] += 1
            continue
        if found:
            problems.extend(found)
            continue
        assert example is not None
        examples.append(example)
    if report.read == 0:
        problems.append(Problem(str(path), 0, "file is empty"))
    elif not examples and not problems:
        problems.append(Problem(str(path), 0, "no accepted examples"))
    return examples, problems, report


def examples_to_docbin(examples: Iterable[Example], vocab: Any, report: SplitReport) -> Any:
    """Build a DocBin; tokens outside any span are marked O (Prodigy's ner.manual is complete)."""
    from spacy.tokens import Doc, DocBin

    db = DocBin(store_user_data=False)
    for ex in examples:
        doc = Doc(vocab, words=ex.words, spaces=ex.spaces)
        ents = []
        for start, end, label in ex.spans:
            span = doc.char_span(start, end, label=label)
            if span is None:  # only possible if whitespace tokens split a span
                span = doc.char_span(start, end, label=label, alignment_mode="expand")
            ents.append(span)
            report.entities[label] += 1
        doc.set_ents(ents, default="outside")
        if not ents:
            report.docs_without_entities += 1
        report.accepted += 1
        db.add(doc)
    return db


def iter_problems_text(problems: Sequence[Problem]) -> Iterator[str]:
    for p in problems:
        yield str(p)


@dataclass
class Corpus:
    """The converted corpus a run trains on, and what conversion saw."""

    train: Path
    dev: Path
    reports: Dict[str, SplitReport]

    def to_dict(self) -> Dict[str, Any]:
        return {name: rep.to_dict() for name, rep in self.reports.items()}


def convert_corpus(
    train: Path,
    dev: Path,
    *,
    labels: Sequence[str],
    out_dir: Path,
    lang: str = "en",
    alignment: str = "strict",
    on_error: str = "fail",
) -> Corpus:
    """Validate both exports together and write `train.spacy` and `dev.spacy` into `out_dir`.

    All problems of both files are reported at once. Under on_error=skip, bad examples are left out
    and counted per file as `invalid`.
    """
    import spacy

    if on_error not in ("fail", "skip"):
        raise NerRunnerError(f"data.on_error={on_error!r} is not one of fail, skip")
    nlp = spacy.blank(lang)
    results = {}
    all_problems: List[Problem] = []
    for name, path in (("train", train), ("dev", dev)):
        examples, problems, report = read_prodigy_jsonl(
            Path(path), labels=labels, alignment=alignment, tokenizer=nlp.tokenizer
        )
        fatal = [p for p in problems if p.line == 0]
        if on_error == "skip" and not fatal:
            report.skipped["invalid"] += len({p.line for p in problems})
            problems = []
        all_problems.extend(problems)
        results[name] = (examples, report)
    if all_problems:
        raise DataError(all_problems)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    reports = {}
    for name, (examples, report) in results.items():
        db = examples_to_docbin(examples, nlp.vocab, report)
        paths[name] = out_dir / f"{name}.spacy"
        db.to_disk(paths[name])
        reports[name] = report
    return Corpus(train=paths["train"], dev=paths["dev"], reports=reports)
