"""The end-of-sweep table: read back from job directories, best first, failures named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import pytest

from ner_runner.sweep_summary import collect, format_table, ranked, summarize
from tests.conftest import job_runs, quick_overrides, run_py


def _job(
    sweep: Path, num: int, overrides: List[str], status: Optional[str], objective=None, run_id=None, error=None
):
    d = sweep / str(num)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status is not None:
        (d / "result.json").write_text(
            json.dumps({"status": status, "objective": objective, "error": error, "mlflow_run_id": run_id})
        )


def test_table_ranks_completed_jobs_first_and_names_failures(tmp_path, capsys):
    fixed = "data.train=/x/train.jsonl"
    _job(tmp_path, 0, [fixed, "hyperparameters.learning_rate=0.001"], "COMPLETED", 0.5, "run0")
    _job(tmp_path, 1, [fixed, "hyperparameters.learning_rate=0.002"], "FAILED", error="DataError: bad line")
    _job(tmp_path, 2, [fixed, "hyperparameters.learning_rate=0.003"], "COMPLETED", 0.75, "run2")
    _job(tmp_path, 10, [fixed, "hyperparameters.learning_rate=0.004"], None)  # died before writing a result
    (tmp_path / "multirun.yaml").write_text("{}")  # not a job

    jobs = collect(tmp_path)
    assert [j.job for j in jobs] == ["0", "1", "2", "10"]
    assert [j.job for j in ranked(jobs)] == ["2", "0", "1", "10"]

    text = summarize(tmp_path)
    lines = text.splitlines()
    assert lines[1].split()[:6] == ["rank", "job", "status", "dev", "ents_f", "MLflow"]
    assert lines[2].split()[:5] == ["1", "2", "COMPLETED", "0.7500", "run2"]
    assert lines[3].split()[:5] == ["2", "0", "COMPLETED", "0.5000", "run0"]
    # only the swept override is shown, not the ones every job shares
    assert lines[2].endswith("hyperparameters.learning_rate=0.003") and fixed not in text
    assert "job 1 FAILED: DataError: bad line" in text
    assert "job 10 NO RESULT" in text
    assert text in capsys.readouterr().out
    saved = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert [j["job"] for j in saved] == ["2", "0", "1", "10"]
    assert saved[0]["mlflow_run_id"] == "run2" and saved[0]["objective"] == 0.75


def test_one_job_shows_all_its_overrides(tmp_path):
    _job(tmp_path, 0, ["a=1", "b=2"], "COMPLETED", 0.1, "r")
    assert format_table(collect(tmp_path)).splitlines()[1].endswith("a=1 b=2")



@pytest.mark.slow
def test_grid_preset_2x2_gives_4_runs_and_the_right_best(tmp_path, fashion_small):
    # the preset's grid, narrowed on the command line to 2 x 2 values that a few steps tell apart
    proc = run_py(
        [
            "-m",
            "hparams_search=grid_cpu",
            *quick_overrides(fashion_small, tmp_path, steps=12),
            "tracking.log_model=false",
            "hyperparameters.learning_rate=0.002,0.02",
            "hyperparameters.batch_size=100,1000",
        ]
    )
    runs = job_runs(tmp_path)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    grid = {
        (r.data.params["hyperparameters.learning_rate"], r.data.params["hyperparameters.batch_size"]) for r in runs
    }
    assert grid == {("0.002", "100"), ("0.002", "1000"), ("0.02", "100"), ("0.02", "1000")}
    scores = {r.info.run_id: r.data.metrics["dev_ents_f"] for r in runs}
    assert len(set(scores.values())) > 1, "the grid should not tie everywhere"

    summary = json.loads((tmp_path / "multirun" / "sweep_summary.json").read_text())
    assert len(summary) == 4
    assert [s["objective"] for s in summary] == pytest.approx(sorted(scores.values(), reverse=True))
    best = summary[0]
    assert scores[best["mlflow_run_id"]] == pytest.approx(max(scores.values()))
    # the printed table starts with the best run and shows the swept values
    table = proc.stdout[proc.stdout.index("rank  job"):]
    first_row = table.splitlines()[1]
    assert best["mlflow_run_id"] in first_row and f"{max(scores.values()):.4f}" in first_row
    assert "hyperparameters.learning_rate=" in first_row and "hyperparameters.batch_size=" in first_row


@pytest.mark.slow
def test_basic_sweeper_failure_still_prints_the_table(tmp_path, fashion_small):
    # Hydra's basic sweeper raises at a failed job and skips on_multirun_end: the table comes out anyway
    missing = tmp_path / "missing-dev.jsonl"
    proc = run_py(
        ["-m", *quick_overrides(fashion_small, tmp_path, steps=2), f"data.dev={missing}",
         "hyperparameters.seed=1,2"],
        check=False,
    )
    assert proc.returncode != 0
    assert "job 0 FAILED" in proc.stdout and "job 1 FAILED" in proc.stdout
    assert str(missing) in proc.stdout
