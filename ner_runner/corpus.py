"""Validated Prodigy exports -> the train/dev DocBins a run trains on.

Adds what needs both files or the whole run: the train/dev leakage check, the stratified split of a
single export, the conversion cache, and the record of which input bytes made the corpus.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .corpus_cache import CorpusCache, FileDigest, cache_key, file_digest, link_or_copy
from .data import (
    ALIGNMENT_MODES,
    CONVERTER_VERSION,
    LEAKAGE,
    MAX_PROBLEMS_SHOWN,
    NO_ACCEPTED,
    ON_ERROR_MODES,
    DataError,
    Example,
    Problem,
    SplitReport,
    examples_to_docbin,
    format_problems,
    read_prodigy_jsonl,
)
from .errors import NerRunnerError
from .split import check_test_size, stratified_split

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    """The converted corpus a run trains on, what conversion saw, and which bytes it came from."""

    train: Path
    dev: Path
    reports: Dict[str, SplitReport]
    inputs: Dict[str, FileDigest]  # role (train, dev; or input when split) -> digest
    split: Optional[Dict[str, Any]] = None
    cache_key: Optional[str] = None
    cache_hit: bool = False
    converter_version: str = CONVERTER_VERSION

    def to_dict(self) -> Dict[str, Any]:
        """`data_report.json`: one report per split (train, dev; input when split), then where they came from."""
        out: Dict[str, Any] = {name: rep.to_dict() for name, rep in self.reports.items()}
        out["lineage"] = {
            "inputs": {role: d.to_dict() for role, d in self.inputs.items()},
            "split": self.split,
            "cache": {"key": self.cache_key, "hit": self.cache_hit},
            "converter_version": self.converter_version,
        }
        return out


def convert_corpus(
    train: Path,
    dev: Optional[Path],
    *,
    labels: Sequence[str],
    out_dir: Path,
    lang: str = "en",
    alignment: str = "strict",
    on_error: str = "fail",
    cache_dir: Optional[Path] = None,
    test_size: Optional[float] = None,
    seed: int = 0,
) -> Corpus:
    """Validate the exports together and put `train.spacy` and `dev.spacy` into `out_dir`.

    With `dev=None` and `test_size` set, `train` is split (stratified per label) into both. All
    problems of all files are reported at once. With `cache_dir`, an unchanged input is not converted
    again: the cached DocBins are linked into `out_dir`.
    """
    if alignment not in ALIGNMENT_MODES:
        raise NerRunnerError(f"data.alignment={alignment!r} is not one of {', '.join(ALIGNMENT_MODES)}")
    if on_error not in ON_ERROR_MODES:
        raise NerRunnerError(f"data.on_error={on_error!r} is not one of {', '.join(ON_ERROR_MODES)}")
    train = Path(train)
    split: Optional[Dict[str, Any]] = None
    if dev is None:
        if test_size is None:
            raise NerRunnerError(
                "data.dev is not set: give data.dev=PATH, or data.split.test_size=0.2 to split data.train"
            )
        split = {"test_size": check_test_size(test_size), "seed": int(seed)}
        roles = {"input": train}
    else:
        if test_size is not None:
            raise NerRunnerError(
                f"data.split.test_size={test_size} splits data.train only when there is no dev file, "
                f"but data.dev={dev}: set data.dev=null to split, or drop data.split.test_size"
            )
        roles = {"train": train, "dev": Path(dev)}
    out_dir = Path(out_dir)
    digests = {role: file_digest(p) for role, p in roles.items() if p.is_file()}

    cache = CorpusCache(Path(cache_dir)) if cache_dir is not None else None
    key = None
    if cache is not None and len(digests) == len(roles):
        key = cache_key(
            digests,
            labels=labels,
            alignment=alignment,
            on_error=on_error,
            lang=lang,
            split=split,
            converter_version=CONVERTER_VERSION,
        )
        entry = cache.lookup(key)
        if entry is not None:
            saved = json.loads((entry / "report.json").read_text(encoding="utf-8"))
            reports = {name: SplitReport.from_dict(r) for name, r in saved["splits"].items()}
            paths = _publish(entry, out_dir)
            log.info("data: inputs unchanged, skipping conversion (cached corpus %s)", entry)
            return Corpus(paths["train"], paths["dev"], reports, digests, split, key, cache_hit=True)

    import spacy

    nlp = spacy.blank(lang)
    if split is None:
        parts, reports = _read_pair(roles["train"], roles["dev"], labels, alignment, on_error, nlp.tokenizer, out_dir)
    else:
        parts, reports = _read_and_split(train, labels, alignment, on_error, nlp.tokenizer, split, out_dir)

    def write(folder: Path) -> None:
        for name in ("train", "dev"):
            examples_to_docbin(parts[name], nlp.vocab, reports[name]).to_disk(folder / f"{name}.spacy")
        if "input" in reports:
            _sum_into(reports["input"], [reports["train"], reports["dev"]])
        (folder / "report.json").write_text(
            json.dumps({"splits": {n: r.to_dict() for n, r in reports.items()}}, indent=2), encoding="utf-8"
        )

    if cache is not None and key is not None:
        entry = cache.store(key, write)
        paths = _publish(entry, out_dir)
        log.info("data: converted and cached as %s", entry)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write(out_dir)
        paths = {name: out_dir / f"{name}.spacy" for name in ("train", "dev")}
    return Corpus(paths["train"], paths["dev"], reports, digests, split, key, cache_hit=False)


def _publish(entry: Path, out_dir: Path) -> Dict[str, Path]:
    paths = {name: out_dir / f"{name}.spacy" for name in ("train", "dev")}
    for name, dst in paths.items():
        link_or_copy(entry / f"{name}.spacy", dst)
    return paths


def _raise_or_warn(problems: List[Problem], reports: Sequence[SplitReport], out_dir: Path) -> None:
    """Fail with every problem at once, or (under skip) say what was dropped and go on."""
    if problems:
        full_list = None
        if len(problems) > MAX_PROBLEMS_SHOWN:
            out_dir.mkdir(parents=True, exist_ok=True)
            full_list = out_dir / "problems.txt"
            full_list.write_text("\n".join(str(p) for p in problems) + "\n", encoding="utf-8")
        raise DataError(problems, full_list)
    for report in reports:
        if report.warnings:
            log.warning("%s", format_problems(report.warnings, what="warning"))
        if report.tokenized:
            log.info("data: %s: %d example(s) had no tokens; spaCy's tokenizer made them", report.path, report.tokenized)


def _read_pair(
    train: Path,
    dev: Path,
    labels: Sequence[str],
    alignment: str,
    on_error: str,
    tokenizer: Any,
    out_dir: Path,
) -> Tuple[Dict[str, List[Example]], Dict[str, SplitReport]]:
    kw = dict(labels=labels, alignment=alignment, tokenizer=tokenizer, on_error=on_error)
    train_ex, problems, train_rep = read_prodigy_jsonl(train, **kw)
    dev_ex, dev_problems, dev_rep = read_prodigy_jsonl(dev, **kw)
    problems += dev_problems

    # the same text on both sides inflates every dev score: fail, or keep dev as the fixed yardstick
    train_lines = {ex.text: ex.line for ex in train_ex}
    leaked = {train_lines[ex.text]: ex.line for ex in dev_ex if ex.text in train_lines}
    if leaked and on_error == "fail":
        problems += [
            Problem(str(dev), d, f"same text as {train}:{t} (train/dev leakage)", LEAKAGE)
            for t, d in sorted(leaked.items(), key=lambda td: td[1])
        ]
    elif leaked:
        train_ex = [ex for ex in train_ex if ex.line not in leaked]
        train_rep.skipped[LEAKAGE] += len(leaked)
        train_rep.warnings += [
            Problem(str(train), t, f"same text as {dev}:{d}; dropped from train (train/dev leakage)", LEAKAGE)
            for t, d in sorted(leaked.items())
        ]
        if not train_ex:
            problems.append(Problem(str(train), 0, "no accepted examples left after removing leakage", NO_ACCEPTED))
    _raise_or_warn(problems, [train_rep, dev_rep], out_dir)
    return {"train": train_ex, "dev": dev_ex}, {"train": train_rep, "dev": dev_rep}


def _read_and_split(
    path: Path,
    labels: Sequence[str],
    alignment: str,
    on_error: str,
    tokenizer: Any,
    split: Dict[str, Any],
    out_dir: Path,
) -> Tuple[Dict[str, List[Example]], Dict[str, SplitReport]]:
    examples, problems, source = read_prodigy_jsonl(
        path, labels=labels, alignment=alignment, tokenizer=tokenizer, on_error=on_error
    )
    _raise_or_warn(problems, [source], out_dir)
    is_dev = stratified_split([ex.labels for ex in examples], split["test_size"], split["seed"])
    parts: Dict[str, List[Example]] = {
        "train": [ex for ex, d in zip(examples, is_dev) if not d],
        "dev": [ex for ex, d in zip(examples, is_dev) if d],
    }
    reports = {"input": source}
    for name in ("train", "dev"):
        reports[name] = SplitReport(path=f"{path} ({name} part)", read=len(parts[name]))
    if not parts["train"] or not parts["dev"]:
        raise DataError(
            [Problem(str(path), 0, f"{len(examples)} accepted example(s) are too few to split", NO_ACCEPTED)]
        )
    log.info(
        "data: split %s into %d train / %d dev (test_size %s, seed %s)",
        path,
        len(parts["train"]),
        len(parts["dev"]),
        split["test_size"],
        split["seed"],
    )
    return parts, reports


def _sum_into(total: SplitReport, parts: Sequence[SplitReport]) -> None:
    total.accepted = sum(p.accepted for p in parts)
    total.docs_without_entities = sum(p.docs_without_entities for p in parts)
    total.entities.clear()
    for p in parts:
        total.entities.update(p.entities)
