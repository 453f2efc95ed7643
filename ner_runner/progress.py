"""Progress for long work that spaCy does not show itself: conversion, uploads, Vertex polling.

A bar is drawn only when someone is watching (stderr is a terminal). Anywhere else (CI logs, Vertex's log
stream, a file) a bar redraws into one line per update, so instead the work logs a few milestone lines:
nothing for work that finishes within `quiet_s`, then one line per quarter done (or one per `interval_s`
when the total is unknown), every status change, and a closing line.

`NER_RUNNER_PROGRESS=bar|log|off` overrides the choice (`auto`, the default, decides by the terminal).

Typical uses::

    for raw in track(lines, "reading train.jsonl", unit="line"):
        ...

    with Progress("Vertex jobs", total=len(jobs), unit="job") as bar:   # a polling loop
        while pending:
            bar.set_status(f"{running} running, {queued} queued")       # logged when it changes
            bar.update(newly_finished)
            time.sleep(poll_interval)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, List, Optional, Tuple, TypeVar

T = TypeVar("T")

log = logging.getLogger("ner_runner.progress")

ENV_MODE = "NER_RUNNER_PROGRESS"
MODES = ("auto", "bar", "log", "off")


def is_interactive(stream: Optional[IO] = None) -> bool:
    """True when the stream (stderr by default) is a terminal someone is watching."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_mode(stream: Optional[IO] = None) -> str:
    """`bar`, `log` or `off`: from NER_RUNNER_PROGRESS, else by whether stderr is a terminal."""
    mode = os.environ.get(ENV_MODE, "auto").strip().lower() or "auto"
    if mode not in MODES:
        log.warning("%s=%r is not one of %s; using auto", ENV_MODE, mode, ", ".join(MODES))
        mode = "auto"
    if mode == "auto":
        return "bar" if is_interactive(stream) else "log"
    return mode


def quiet_library_bars(stream: Optional[IO] = None) -> None:
    """Turn off libraries' own bars (MLflow artifact transfers) unless bars are wanted here.

    Only sets defaults: a value the user exported wins.
    """
    if progress_mode(stream) != "bar":
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _amount(n: float, unit: str, unit_scale: bool) -> str:
    if unit_scale:
        for prefix in ("", "k", "M", "G", "T"):
            if abs(n) < 1000 or prefix == "T":
                return f"{n:.0f}{prefix}{unit}" if prefix == "" else f"{n:.1f}{prefix}{unit}"
            n /= 1000.0
    return f"{int(n)} {unit}"


class Progress:
    """One piece of long work: a tqdm bar on a terminal, a few log lines elsewhere.

    `clock` is injectable so the milestone policy can be checked without sleeping.
    """

    def __init__(
        self,
        desc: str,
        total: Optional[float] = None,
        unit: str = "it",
        *,
        unit_scale: bool = False,
        mode: Optional[str] = None,
        stream: Optional[IO] = None,
        quiet_s: float = 10.0,
        interval_s: float = 60.0,
        logger: Optional[logging.Logger] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.desc = desc
        self.total = total if total else None
        self.unit = unit
        self.unit_scale = unit_scale
        self.stream = sys.stderr if stream is None else stream
        self.mode = mode or progress_mode(self.stream)
        self.quiet_s = quiet_s
        self.interval_s = interval_s
        self.log = logger or log
        self.clock = clock
        self.n: float = 0
        self.status: Optional[str] = None
        self.lines = 0  # milestone lines written (log mode)
        self._start = clock()
        self._last_line = self._start
        self._next_quarter = 1
        self._closed = False
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=desc,
                unit=unit,
                unit_scale=unit_scale,
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
            )

    # -- reporting ---------------------------------------------------------------------------

    def update(self, n: float = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            self._maybe_milestone()

    def set_status(self, status: str) -> None:
        """A short state ("2 running, 1 queued"); logged whenever it changes."""
        if status == self.status:
            return
        self.status = status
        if self._bar is not None:
            self._bar.set_postfix_str(status)
        elif self.mode == "log":
            self._line(f"{self.desc}: {status}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log" and (self.lines or self.clock() - self._start >= self.quiet_s):
            self._line(f"{self.desc}: done, {self._count()} in {_duration(self.clock() - self._start)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._bar is not None:
            self._closed = True
            self._bar.close()
        # in log mode a failed piece of work says nothing here: the error itself is reported

    # -- log mode ----------------------------------------------------------------------------

    def _count(self) -> str:
        done = _amount(self.n, self.unit, self.unit_scale)
        if self.total:
            return f"{done} of {_amount(self.total, self.unit, self.unit_scale)}"
        return done

    def _maybe_milestone(self) -> None:
        now = self.clock()
        elapsed = now - self._start
        if elapsed < self.quiet_s:
            # quick work stays silent, but quarters passed meanwhile are not reported late
            if self.total:
                while self._next_quarter <= 3 and self.n >= self.total * self._next_quarter / 4:
                    self._next_quarter += 1
            return
        if self.total:
            crossed = False
            while self._next_quarter <= 3 and self.n >= self.total * self._next_quarter / 4:
                self._next_quarter += 1
                crossed = True
            if not crossed and now - self._last_line < self.interval_s:
                return
            rate = self.n / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.n) / rate if rate > 0 else None
            pct = 100.0 * self.n / self.total
            tail = f", about {_duration(eta)} left" if eta is not None and self.n < self.total else ""
            self._line(f"{self.desc}: {pct:.0f}% ({self._count()}, {_duration(elapsed)}{tail})")
        elif now - self._last_line >= self.interval_s:
            self._line(f"{self.desc}: {self._count()} in {_duration(elapsed)}")

    def _line(self, text: str) -> None:
        self.lines += 1
        self._last_line = self.clock()
        self.log.info(text)


def track(
    iterable: Iterable[T],
    desc: str,
    total: Optional[float] = None,
    unit: str = "it",
    **kwargs: Any,
) -> Iterator[T]:
    """Iterate with progress; `total` defaults to len(iterable) when it has one."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(desc, total=total, unit=unit, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def _files_to_upload(path: Path, artifact_path: Optional[str]) -> List[Tuple[Path, Optional[str]]]:
    """(file, artifact sub-path) pairs: a directory keeps its layout under `artifact_path`."""
    if not path.is_dir():
        return [(path, artifact_path)]
    pairs = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel_parent = file.relative_to(path).parent.as_posix()
        parts = [p for p in (artifact_path, rel_parent if rel_parent != "." else None) if p]
        pairs.append((file, "/".join(parts) or None))
    return pairs


def upload_with_progress(
    path: Path,
    artifact_path: Optional[str],
    log_file: Callable[[str, Optional[str]], Any],
    *,
    desc: Optional[str] = None,
    **kwargs: Any,
) -> int:
    """Upload a file or a directory one file at a time through `log_file(local, artifact_path)`.

    Progress is counted in bytes, so one large model file does not look stuck behind many small
    ones. `log_file` is e.g. `mlflow.log_artifact`. Returns the number of files uploaded.
    """
    path = Path(path)
    pairs = _files_to_upload(path, artifact_path)
    total = sum(f.stat().st_size for f, _ in pairs)
    with Progress(desc or f"uploading {path.name}", total=total, unit="B", unit_scale=True, **kwargs) as bar:
        for file, sub in pairs:
            log_file(str(file), sub)
            bar.update(file.stat().st_size)
    return len(pairs)
