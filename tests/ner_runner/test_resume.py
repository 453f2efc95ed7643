"""Preemption end to end: `kill -9` a training run, start the same command again, it resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from tests.conftest import ROOT, quick_overrides, run_py

pytestmark = pytest.mark.slow

STEPS, EVERY = 20, 2


def _markers(cache: Path) -> List[Path]:
    return sorted((cache / "checkpoints").glob("*/step-*/checkpoint.json"))


def _overrides(data, tmp: Path, run: str, extra=()) -> List[str]:
    args = [a for a in quick_overrides(data, tmp, steps=STEPS) if not a.startswith(("hydra.run.dir", "hyperparameters.eval_frequency"))]
    return [*args, f"hyperparameters.eval_frequency={EVERY}", f"hydra.run.dir={tmp / run}", "tracking.log_model=false", *extra]


def _kill_after_second_eval(args: List[str], tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with (tmp / "killed.log").open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 300
        try:
            # step 0 and step EVERY are the first two evaluations; kill once the second one's checkpoint is complete
            while not any(json.loads(m.read_text())["step"] >= EVERY for m in _markers(tmp / "cache")):
                assert proc.poll() is None, (tmp / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint appeared"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_killed_run_resumes_into_the_same_mlflow_run(tmp_path, fashion_small):
    from mlflow.tracking import MlflowClient

    args = _overrides(fashion_small, tmp_path, "run1")
    _kill_after_second_eval(args, tmp_path)
    markers = _markers(tmp_path / "cache")
    metas = [json.loads(m.read_text()) for m in markers]
    assert not any(m["finished"] for m in metas)
    newest = max(metas, key=lambda m: m["step"])
    assert newest["step"] < STEPS and newest["mlflow_run_id"]

    # A damaged newest checkpoint (truncated mid-write) must be skipped for the previous one.
    assert len(metas) == 2  # checkpoint.keep=2: the previous one stays until a newer one is complete
    victim = max(markers, key=lambda m: json.loads(m.read_text())["step"]).parent / "model-last" / "ner" / "model"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    resume_step = min(m["step"] for m in metas)

    # A changed hyperparameter never resumes from it: it starts fresh and says why.
    changed = run_py(_overrides(fashion_small, tmp_path, "changed", ["hyperparameters.dropout=0.2"]))
    log = changed.stdout + changed.stderr
    assert "starting fresh" in log and "training.dropout: 0.1 -> 0.2" in log
    assert "resuming from" not in log

    # The same command again: resumes at the checkpointed step and finishes in the same MLflow run.
    again = run_py(_overrides(fashion_small, tmp_path, "run2"))
    log = again.stdout + again.stderr
    assert f"step-{resume_step:08d}: step {resume_step}," in log
    assert f"step-{newest['step']:08d} is incomplete or damaged (model-last/ner/model has" in log
    assert f"continuing MLflow run {newest['mlflow_run_id']}" in log
    assert "not restored:" in log

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fashion").experiment_id])
    assert len(runs) == 2  # the resumed run and the changed-config run: no third run
    run = client.get_run(newest["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["ner_runner.resumed_from_step"] == str(resume_step)
    for key in ("score", "loss/ner"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(0, STEPS + 1, EVERY)), key  # one continuous series, no duplicates
    journal = [json.loads(l) for l in (tmp_path / "run2" / "tracking" / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["step"] for r in journal if "score" in r["metrics"]) == list(range(0, STEPS + 1, EVERY))
    result = json.loads((tmp_path / "run2" / "result.json").read_text())
    assert result["status"] == "COMPLETED" and result["mlflow_run_id"] == run.info.run_id
    assert (tmp_path / "run2" / "model-best" / "meta.json").is_file()
    assert not _markers(tmp_path / "cache")  # a finished run removes its checkpoints
