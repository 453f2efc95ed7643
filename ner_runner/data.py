"""Prodigy JSONL -> spaCy DocBin, keeping the export's own tokens and whitespace.

Every problem is collected with its file, 1-based line number and kind, and raised together as one
`DataError`, so a bad export fails in seconds, locally, with a message that says what to fix. Under
`on_error=skip` the same problems drop their examples instead, and every drop is counted per kind.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import NerRunnerError
from .progress import track

log = logging.getLogger(__name__)

# Bump whenever conversion can produce different DocBins from the same input: it is part of the cache key.
CONVERTER_VERSION = "2"
ALIGNMENT_MODES = ("strict", "contract", "expand")
ON_ERROR_MODES = ("fail", "skip")
MAX_PROBLEMS_SHOWN = 20

# Problem kinds: the reason codes in error summaries and in the data report's skip counts.
INVALID_JSON = "invalid_json"
NOT_OBJECT = "not_object"
BAD_TEXT = "bad_text"
BAD_TOKENS = "bad_tokens"
BAD_SPAN = "bad_span"
SPAN_OFFSETS = "span_offsets"
MISALIGNED_SPAN = "misaligned_span"
OVERLAPPING_SPANS = "overlapping_spans"
UNKNOWN_LABEL = "unknown_label"
DUPLICATE = "duplicate"
LEAKAGE = "leakage"
FILE_MISSING = "file_missing"
FILE_EMPTY = "file_empty"
NO_ACCEPTED = "no_accepted"
NOT_UTF8 = "not_utf8"
SPAN_TEXT = "span_text_mismatch"

# Problems about a whole file: never skippable, the run has nothing to train on.
FILE_KINDS = frozenset({FILE_MISSING, FILE_EMPTY, NO_ACCEPTED})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one line of an export."""

    path: str
    line: int  # 1-based; 0 for the file as a whole
    message: str
    kind: str = "invalid"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def format_problems(problems: Sequence[Problem], limit: int = MAX_PROBLEMS_SHOWN, what: str = "problem") -> str:
    """The first `limit` problems in full, one per line, then how many more of each kind."""
    shown = [str(p) for p in problems[:limit]]
    if len(problems) == 1:
        return shown[0]
    kinds = Counter(p.kind for p in problems)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    lines = [f"{len(problems)} {what}s in the data ({counts}):", *shown]
    rest = Counter(p.kind for p in problems[limit:])
    if rest:
        lines.append(
            f"... and {sum(rest.values())} more: "
            + ", ".join(f"{n} {k}" for k, n in sorted(rest.items(), key=lambda kv: (-kv[1], kv[0])))
        )
    return "\n".join(lines)


class DataError(NerRunnerError):
    """One or more problems in the input data."""

    def __init__(self, problems: Sequence[Problem], full_list: Optional[Path] = None):
        self.problems = list(problems)
        text = format_problems(self.problems)
        if full_list is not None and len(self.problems) > MAX_PROBLEMS_SHOWN:
            text += f"\n(all {len(self.problems)} are listed in {full_list})"
        if any(p.kind not in FILE_KINDS for p in self.problems):
            text += "\n(data.on_error=skip drops the bad examples instead, counting them per kind)"
        super().__init__(text)


@dataclass
class Example:
    """A validated example: text, tokens with trailing whitespace, and char-offset spans."""

    line: int
    text: str
    words: List[str]
    spaces: List[bool]
    spans: List[Tuple[int, int, str]]
    input_hash: Any = None
    tokenized: bool = False  # the export had no tokens; spaCy's tokenizer made them

    @property
    def labels(self) -> List[str]:
        return sorted({label for _, _, label in self.spans})


@dataclass
class SplitReport:
    """What happened to one file: nothing is dropped without being counted here."""

    path: str
    read: int = 0
    accepted: int = 0
    skipped: Counter = field(default_factory=Counter)
    entities: Counter = field(default_factory=Counter)
    docs_without_entities: int = 0
    tokenized: int = 0
    warnings: List[Problem] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "read": self.read,
            "accepted": self.accepted,
            "skipped": dict(sorted(self.skipped.items())),
            "entities": dict(sorted(self.entities.items())),
            "docs_without_entities": self.docs_without_entities,
            "tokenized": self.tokenized,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SplitReport":
        return cls(
            path=data["path"],
            read=data["read"],
            accepted=data["accepted"],
            skipped=Counter(data["skipped"]),
            entities=Counter(data["entities"]),
            docs_without_entities=data["docs_without_entities"],
            tokenized=data.get("tokenized", 0),
        )


# --------------------------------------------------------------------------- one line


def _words_and_spaces(text: str, tokens: List[Tuple[int, int]]) -> Tuple[List[str], List[bool]]:
    """Rebuild spaCy words/spaces so that the Doc's text equals `text` exactly.

    Whitespace that a single trailing space cannot express (newlines, double spaces, leading
    whitespace) becomes whitespace tokens, the way spaCy's own tokenizer represents it. Linear in the
    text length, unlike `spacy.util.get_words_and_spaces`, which searches the rest of the text per word.
    """
    words: List[str] = []
    spaces: List[bool] = []
    if tokens and tokens[0][0] > 0:
        words.append(text[: tokens[0][0]])
        spaces.append(False)
    last = len(tokens) - 1
    for i, (start, end) in enumerate(tokens):
        words.append(text[start:end])
        next_start = tokens[i + 1][0] if i < last else len(text)
        if next_start == end:
            spaces.append(False)
            continue
        if text[end] == " ":
            spaces.append(True)
            if next_start > end + 1:
                words.append(text[end + 1 : next_start])
                spaces.append(False)
        else:
            spaces.append(False)
            words.append(text[end:next_start])
            spaces.append(False)
    return words, spaces


def _check_tokens(
    text: str, raw_tokens: Any
) -> Tuple[Optional[List[Tuple[int, int]]], List[str], List[bool], Optional[str]]:
    """(offsets, words, spaces, None) for tokens that match the text, or a message saying where they do not.

    Checks the tokens and builds spaCy's words/spaces (as `_words_and_spaces` does) in the same pass,
    since this runs for every token of every line.
    """
    if not isinstance(raw_tokens, list):
        return None, [], [], "'tokens' is not a list"
    offsets: List[Tuple[int, int]] = []
    words: List[str] = []
    spaces: List[bool] = []
    add_offset, add_word, add_space = offsets.append, words.append, spaces.append
    prev_end = 0
    n = len(text)
    for i, tok in enumerate(raw_tokens):
        try:
            start = tok["start"]
            end = tok["end"]
        except (TypeError, KeyError):
            start = end = None
        if type(start) is not int or type(end) is not int:
            what = "is not an object" if not isinstance(tok, dict) else "has no integer 'start'/'end'"
            return None, [], [], f"token {i} {what}"
        if start != prev_end:
            if start < prev_end:
                return None, [], [], f"token {i} offsets {start}-{end} overlap the previous token"
            if start == prev_end + 1 and words and text[prev_end] == " ":
                spaces[-1] = True  # the common case: one space after the previous word
            else:
                gap = text[prev_end:start]
                if not gap.isspace():
                    return None, [], [], f"text {gap!r} before token {i} is not covered by any token"
                _add_gap(gap, words, spaces)
        if end <= start or end > n:
            return None, [], [], f"token {i} offsets {start}-{end} are empty or outside the text"
        word = text[start:end]
        tok_text = tok.get("text")
        if tok_text is not None and tok_text != word:
            return None, [], [], f"token {i} text {tok_text!r} does not match the text at {start}-{end} ({word!r})"
        add_word(word)
        add_space(False)
        add_offset((start, end))
        prev_end = end
    if prev_end < n:
        gap = text[prev_end:]
        if not gap.isspace():
            return None, [], [], f"text {gap!r} after the last token is not covered by any token"
        _add_gap(gap, words, spaces)
    return offsets, words, spaces, None


def _add_gap(gap: str, words: List[str], spaces: List[bool]) -> None:
    """Whitespace between tokens: one space is the previous word's trailing space, the rest a whitespace token."""
    if words and gap[0] == " ":
        spaces[-1] = True
        gap = gap[1:]
    if gap:
        words.append(gap)
        spaces.append(False)


def _nearest_boundaries(text: str, tokens: List[Tuple[int, int]], start: int, end: int) -> str:
    """What expand and contract would make of a span: the token boundaries around it."""
    inside = [(s, e) for s, e in tokens if s < end and e > start]
    contained = [(s, e) for s, e in inside if s >= start and e <= end]
    parts = []
    for mode, toks in (("expand", inside), ("contract", contained)):
        if toks:
            s, e = toks[0][0], toks[-1][1]
            parts.append(f"{s}-{e} {text[s:e]!r} ({mode})")
        else:
            parts.append(f"none ({mode})")
    return "nearest token boundaries " + " / ".join(parts)


def _snap_span(tokens: List[Tuple[int, int]], start: int, end: int, mode: str) -> Optional[Tuple[int, int]]:
    """A span moved onto token boundaries as `mode` allows (the caller has seen it is not on them)."""
    if mode == "strict":
        return None
    inside = [(s, e) for s, e in tokens if s < end and e > start]
    if mode == "contract":
        inside = [(s, e) for s, e in inside if s >= start and e <= end]
    if not inside:
        return None
    return inside[0][0], inside[-1][1]


def _tokenize(text: str, tokenizer: Any) -> List[Tuple[int, int]]:
    doc = tokenizer(text)
    return [(t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]


def parse_prodigy_line(
    raw: str,
    *,
    path: str,
    line_no: int,
    labels: Optional[Collection[str]],
    alignment: str = "strict",
    tokenizer: Any = None,
) -> Tuple[Optional[Example], List[Problem], Optional[str]]:
    """Parse and validate one JSONL line.

    Returns (example, problems, skip_reason): an example to keep, the problems found, or the
    reason an example is skipped without being an error (a rejected or ignored answer).
    """
    allowed = labels if labels is None or isinstance(labels, (set, frozenset)) else frozenset(labels)

    def problem(msg: str, kind: str) -> Tuple[None, List[Problem], None]:
        return None, [Problem(path, line_no, msg, kind)], None

    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        return problem(f"not valid JSON ({err.msg} at column {err.colno})", INVALID_JSON)
    if not isinstance(obj, dict):
        return problem(f"expected a JSON object, got {type(obj).__name__}", NOT_OBJECT)
    answer = obj.get("answer", "accept")
    if answer != "accept":
        return None, [], f"answer_{answer}"
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        what = "missing" if text is None else "not a string" if not isinstance(text, str) else "empty"
        return problem(f"'text' is {what}", BAD_TEXT)

    tokenized = False
    if "tokens" in obj:
        tokens, words, spaces, msg = _check_tokens(text, obj["tokens"])
        if msg:
            return problem(f"tokens do not match the text: {msg}", BAD_TOKENS)
    elif tokenizer is not None:
        tokens = _tokenize(text, tokenizer)
        words, spaces = _words_and_spaces(text, tokens)
        tokenized = True
    else:
        return problem("'tokens' is missing", BAD_TOKENS)
    assert tokens is not None

    problems: List[Problem] = []
    spans: List[Tuple[int, int, str]] = []
    raw_spans = obj.get("spans") or []
    if not isinstance(raw_spans, list):
        return problem("'spans' is not a list", BAD_SPAN)
    starts: Optional[set] = None
    ends: Optional[set] = None
    n = len(text)
    for i, sp in enumerate(raw_spans):
        if not isinstance(sp, dict):
            problems.append(Problem(path, line_no, f"span {i} is not an object", BAD_SPAN))
            continue
        start, end, label = sp.get("start"), sp.get("end"), sp.get("label")
        if type(start) is not int or type(end) is not int:
            problems.append(Problem(path, line_no, f"span {i} has no integer 'start'/'end'", SPAN_OFFSETS))
            continue
        if start < 0 or end > n or start >= end:
            why = f"are outside the text (length {n})" if start < 0 or end > n else "have start >= end"
            problems.append(Problem(path, line_no, f"span {i} offsets {start}-{end} {why}", SPAN_OFFSETS))
            continue
        ok = True
        if not isinstance(label, str) or not label:
            problems.append(Problem(path, line_no, f"span {i} has no 'label'", BAD_SPAN))
            ok = False
        elif allowed is not None and label not in allowed:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"label {label!r} is not in this phase's label set "
                    f"(allowed: {', '.join(sorted(allowed))})",
                    UNKNOWN_LABEL,
                )
            )
            ok = False
        span_text = sp.get("text")
        if span_text is not None and span_text != text[start:end]:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"span {i} text {span_text!r} differs from the text at {start}-{end} "
                    f"({text[start:end]!r})",
                    SPAN_TEXT,
                )
            )
            continue
        if starts is None:
            starts = {s for s, _ in tokens}
            ends = {e for _, e in tokens}
        assert ends is not None
        if start in starts and end in ends:
            snapped: Optional[Tuple[int, int]] = (start, end)
        else:
            snapped = _snap_span(tokens, start, end, alignment)
        if snapped is None:
            problems.append(
                Problem(
                    path,
                    line_no,
                    f"span {i} {text[start:end]!r} ({start}-{end}) is not on token boundaries; "
                    f"{_nearest_boundaries(text, tokens, start, end)}; data.alignment={alignment}",
                    MISALIGNED_SPAN,
                )
            )
            continue
        if ok:
            spans.append((snapped[0], snapped[1], label))
    if len(spans) > 1:
        spans.sort()
        for (s1, e1, l1), (s2, e2, l2) in zip(spans, spans[1:]):
            if s2 < e1:
                problems.append(
                    Problem(
                        path,
                        line_no,
                        f"overlapping spans {text[s1:e1]!r} ({l1}, {s1}-{e1}) and "
                        f"{text[s2:e2]!r} ({l2}, {s2}-{e2})",
                        OVERLAPPING_SPANS,
                    )
                )
    if problems:
        return None, problems, None
    return Example(line_no, text, words, spaces, spans, obj.get("_input_hash"), tokenized), [], None


# --------------------------------------------------------------------------- one file


def _split_lines(data: bytes) -> List[bytes]:
    """Lines split on \\n and \\r only: a JSON string may hold U+2028, which `str.splitlines` would split on."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.splitlines()


def _decoded_lines(path: Path, lines: Iterable[bytes]) -> Iterator[Tuple[int, Optional[str], Optional[Problem]]]:
    """(line number, text, problem) per non-blank line; a line that is not UTF-8 is a problem, not the end."""
    for line_no, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield line_no, None, Problem(
                str(path), line_no, f"not UTF-8 ({err.reason} at byte {err.start + 1} of the line)", NOT_UTF8
            )
            continue
        if text.strip():
            yield line_no, text, None


def read_prodigy_jsonl(
    path: Path,
    *,
    labels: Optional[Iterable[str]],
    alignment: str = "strict",
    tokenizer: Any = None,
    on_error: str = "fail",
) -> Tuple[List[Example], List[Problem], SplitReport]:
    """Read a whole export, collecting every problem in one pass.

    Returns (examples, problems, report). Duplicates (same `_input_hash` or same text) keep the first
    and count the rest; under on_error=skip the line problems are dropped into the report's counts and
    warnings, and only problems with the file as a whole are returned.
    """
    if alignment not in ALIGNMENT_MODES:
        raise NerRunnerError(f"data.alignment={alignment!r} is not one of {', '.join(ALIGNMENT_MODES)}")
    if on_error not in ON_ERROR_MODES:
        raise NerRunnerError(f"data.on_error={on_error!r} is not one of {', '.join(ON_ERROR_MODES)}")
    name = str(path)
    report = SplitReport(path=name)
    if not path.is_file():
        return [], [Problem(name, 0, "file not found", FILE_MISSING)], report
    allowed = frozenset(labels) if labels is not None else None
    examples: List[Example] = []
    problems: List[Problem] = []
    seen_hash: Dict[Any, int] = {}
    seen_text: Dict[str, int] = {}
    lines = track(_split_lines(path.read_bytes()), f"reading {path.name}", unit="line")
    for line_no, raw, bad in _decoded_lines(path, lines):
        report.read += 1
        if bad is not None:
            problems.append(bad)
            continue
        assert raw is not None
        example, found, skip = parse_prodigy_line(
            raw, path=name, line_no=line_no, labels=allowed, alignment=alignment, tokenizer=tokenizer
        )
        if skip:
            report.skipped[skip] += 1
            continue
        if found:
            problems.extend(found)
            continue
        assert example is not None
        first = seen_hash.get(example.input_hash) if example.input_hash is not None else None
        same = "_input_hash"
        if first is None:
            first, same = seen_text.get(example.text), "text"
        if first is not None:
            report.skipped[DUPLICATE] += 1
            report.warnings.append(
                Problem(name, line_no, f"duplicate of line {first} (same {same}); keeping line {first}", DUPLICATE)
            )
            continue
        if example.input_hash is not None:
            seen_hash[example.input_hash] = line_no
        seen_text[example.text] = line_no
        report.tokenized += example.tokenized
        examples.append(example)
    if on_error == "skip":
        _skip(problems, report)
        problems = []
    if report.read == 0:
        problems.append(Problem(name, 0, "file is empty", FILE_EMPTY))
    elif not examples and not problems:
        kept = ", ".join(f"{n} {k}" for k, n in sorted(report.skipped.items()))
        problems.append(Problem(name, 0, f"no accepted examples ({kept or 'none read'})", NO_ACCEPTED))
    return examples, problems, report


def _skip(problems: Sequence[Problem], report: SplitReport) -> None:
    """Count each bad line once, under the kind of its first problem, and keep the messages as warnings."""
    counted = set()
    for p in problems:
        if p.line not in counted:
            counted.add(p.line)
            report.skipped[p.kind] += 1
        report.warnings.append(p)


# --------------------------------------------------------------------------- DocBins


DOCBIN_ATTRS = ["ORTH", "ENT_IOB", "ENT_TYPE"]  # all a Prodigy NER annotation holds (whitespace is always kept)


def _ner_docbin() -> Any:
    """An empty DocBin whose `add_ner` is `add` without its per-token walk over nine string attributes.

    `DocBin.add` collects each token's text, tag, lemma, norm, morph, dep, entity type, KB id and entity id
    into the string table; for a doc made from words and entity spans only the words and the labels are
    non-empty, and the walk costs more than building the doc. Same arrays, same bytes on disk for
    what spaCy reads back (tests compare the docs with the ones plain `add` gives).
    """
    import numpy
    from spacy.attrs import SPACY
    from spacy.tokens import DocBin

    class NerDocBin(DocBin):
        def add_ner(self, doc: Any, words: List[str], labels: Iterable[str]) -> None:
            self.tokens.append(doc.to_array(self.attrs))
            self.spaces.append(numpy.asarray(doc.to_array(SPACY), dtype=bool).reshape((-1, 1)))
            self.flags.append({"has_unknown_spaces": doc.has_unknown_spaces})
            self.strings.update(words)
            self.strings.update(labels)
            self.cats.append(doc.cats)
            self.span_groups.append(doc.spans.to_bytes())

    return NerDocBin(attrs=DOCBIN_ATTRS, store_user_data=False)


def examples_to_docbin(examples: Iterable[Example], vocab: Any, report: SplitReport) -> Any:
    """Build a DocBin; tokens outside any span are marked O (Prodigy's ner.manual is complete)."""
    from spacy.tokens import Doc

    db = _ner_docbin()
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
        db.add_ner(doc, ex.words, {label for _, _, label in ex.spans})
    return db


def convert_corpus(*args: Any, **kwargs: Any) -> Any:
    """Validate and convert a run's exports: see `ner_runner.corpus.convert_corpus` (split, cache, leakage)."""
    from .corpus import convert_corpus as convert

    return convert(*args, **kwargs)
