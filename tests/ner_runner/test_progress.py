"""Progress: bars only on a terminal, a bounded number of milestone lines anywhere else."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from ner_runner import progress
from ner_runner.progress import Progress, track, upload_with_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch):
    monkeypatch.delenv(progress.ENV_MODE, raising=False)


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "ner_runner.progress"]


def test_long_work_logs_quarters_and_done_without_touching_the_stream(caplog):
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    clock, stream = Clock(), io.StringIO()
    with Progress("converting", total=1000, unit="line", stream=stream, clock=clock) as bar:
        assert bar.mode == "log"
        for _ in range(1000):
            clock.now += 0.1  # 100 s in all
            bar.update()
    lines = _lines(caplog)
    assert [l.split(": ")[1].split(" ")[0] for l in lines[:3]] == ["25%", "50%", "75%"]
    assert lines[-1] == "converting: done, 1000 line of 1000 line in 1m40s"
    assert len(lines) == 4
    assert stream.getvalue() == ""  # no bar, no carriage returns


def test_quick_work_is_silent(caplog):
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    clock = Clock()
    for _ in track(range(5000), "reading", stream=io.StringIO(), clock=clock):
        clock.now += 0.001  # 5 s: under quiet_s
    assert _lines(caplog) == []


def test_unknown_total_logs_once_per_interval(caplog):
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    clock = Clock()
    with Progress("polling", stream=io.StringIO(), clock=clock, interval_s=60) as bar:
        for _ in range(600):  # 10 minutes of 1 s polls
            clock.now += 1
            bar.update()
    lines = _lines(caplog)
    assert 9 <= len(lines) <= 11, lines
    assert lines[-1].startswith("polling: done, 600 it in 10m00s")


def test_status_changes_are_logged_once_each(caplog):
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    with Progress("Vertex jobs", total=2, unit="job", stream=io.StringIO()) as bar:
        for status in ["QUEUED", "QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"]:
            bar.set_status(status)
        bar.update(2)
    assert _lines(caplog) == ["Vertex jobs: QUEUED", "Vertex jobs: RUNNING", "Vertex jobs: SUCCEEDED", "Vertex jobs: done, 2 job of 2 job in 0.0s"]


def test_terminal_gets_a_tqdm_bar_and_no_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    tty = Tty()
    with Progress("uploading", total=10, stream=tty) as bar:
        assert bar.mode == "bar"
        bar.set_status("model")
        bar.update(10)
    out = tty.getvalue()
    assert "uploading" in out and "\r" in out and "10/10" in out
    assert _lines(caplog) == []


@pytest.mark.parametrize("mode, tty, expect", [("off", True, "off"), ("bar", False, "bar"), ("log", True, "log"), ("auto", True, "bar"), ("bogus", False, "log")])
def test_env_overrides_the_terminal_check(monkeypatch, mode, tty, expect):
    monkeypatch.setenv(progress.ENV_MODE, mode)
    assert progress.progress_mode(Tty() if tty else io.StringIO()) == expect


def test_off_mode_says_nothing(monkeypatch, caplog):
    monkeypatch.setenv(progress.ENV_MODE, "off")
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    clock, tty = Clock(), Tty()
    with Progress("x", total=4, stream=tty, clock=clock) as bar:
        clock.now = 100
        bar.set_status("busy")
        bar.update(4)
    assert tty.getvalue() == "" and _lines(caplog) == []


def test_library_bars_are_turned_off_without_a_terminal(monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    progress.quiet_library_bars(Tty())
    assert "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in __import__("os").environ
    progress.quiet_library_bars(io.StringIO())
    assert __import__("os").environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


def test_upload_keeps_the_directory_layout_and_counts_bytes(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="ner_runner.progress")
    (tmp_path / "report" / "sub").mkdir(parents=True)
    (tmp_path / "report" / "a.txt").write_text("a" * 10)
    (tmp_path / "report" / "sub" / "b.txt").write_text("b" * 20)
    sent = []
    clock = Clock()

    def log_file(local, sub):
        clock.now += 30  # a slow connection: milestones appear
        sent.append((Path(local).name, sub))

    n = upload_with_progress(tmp_path / "report", "run/report", log_file, stream=io.StringIO(), clock=clock)
    assert n == 2
    assert sent == [("a.txt", "run/report"), ("b.txt", "run/report/sub")]
    assert _lines(caplog)[-1] == "uploading report: done, 30B of 30B in 1m00s"
    single = []
    upload_with_progress(tmp_path / "report" / "a.txt", None, lambda f, s: single.append((f, s)), stream=io.StringIO())
    assert single == [(str(tmp_path / "report" / "a.txt"), None)]


def test_data_conversion_shows_a_bar_on_a_terminal(monkeypatch, capsys, fashion_small):
    from ner_runner.data import read_prodigy_jsonl

    monkeypatch.setenv(progress.ENV_MODE, "bar")
    examples, problems, _ = read_prodigy_jsonl(fashion_small["dev"], labels=["FASHION_BRAND"])
    assert len(examples) == 30 and not problems
    err = capsys.readouterr().err
    assert "reading dev.jsonl" in err and "30/30" in err
