"""A content-addressed cache of converted corpora, so an unchanged re-run skips conversion.

An entry is keyed by everything that can change the DocBins: the input files' bytes, the label set,
the alignment and error modes, the language, the split settings, the converter version and spaCy's
version. Entries are written to a temporary folder and renamed into place, so parallel jobs of a
multirun never see half an entry; the cache folder can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

ENTRY_FILES = ("train.spacy", "dev.spacy", "report.json")


@dataclass(frozen=True)
class FileDigest:
    """A file's identity by content (what `sha256sum` prints), for the cache key and for lineage."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def file_digest(path: Path) -> FileDigest:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(str(path), sha.hexdigest(), size)


def cache_key(
    digests: Mapping[str, FileDigest],
    *,
    labels: Sequence[str],
    alignment: str,
    on_error: str,
    lang: str,
    split: Optional[Mapping[str, Any]],
    converter_version: str,
) -> str:
    from importlib.metadata import version

    ident = {
        "inputs": {role: d.sha256 for role, d in sorted(digests.items())},
        "labels": sorted(set(labels)),
        "alignment": alignment,
        "on_error": on_error,
        "lang": lang,
        "split": dict(split) if split else None,
        "converter": converter_version,
        "spacy": version("spacy"),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (instant, no extra disk), copying where links are not possible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class CorpusCache:
    """`<root>/corpus/<key>/{train.spacy,dev.spacy,report.json}`."""

    def __init__(self, root: Path):
        self.root = Path(root) / "corpus"

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> Optional[Path]:
        entry = self.entry(key)
        if all((entry / name).is_file() for name in ENTRY_FILES):
            return entry
        return None

    def store(self, key: str, write: Any) -> Path:
        """Call `write(folder)` on a fresh temporary folder and publish it as the entry for `key`."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
        try:
            write(tmp)
            try:
                os.rename(tmp, self.entry(key))
            except OSError:  # another job published the same entry first: same content, keep theirs
                if self.lookup(key) is None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.entry(key)
