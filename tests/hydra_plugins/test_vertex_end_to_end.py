"""`python run.py ... launcher=vertex` as a user runs it; the fake Vertex runs each job's container args for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, quick_overrides, run_py
from tests.fakes.vertex_jobservice import FakeJobService
from tests.hydra_plugins.conftest import BUCKET, launcher_overrides, read_gcs_json

pytestmark = pytest.mark.slow


def test_launcher_vertex_runs_the_container_args_end_to_end(tmp_path, gcs, fashion_small):
    # the image's entrypoint is `python run.py`: here the checkout's run.py plays it
    with FakeJobService(execute=[sys.executable, str(ROOT / "run.py")], workdir=tmp_path / "vertex") as fake:
        proc = run_py(
            [
                *quick_overrides(fashion_small, tmp_path, steps=2),
                *launcher_overrides(fake, tmp_path),
                "launcher=vertex",
                "tracking.log_model=false",  # the model still reaches gs:// with the run directory
                # job 0 trains; job 1 names a label the data does not have and fails in the container
                "phase.labels=[FASHION_BRAND],[PERSON]",
            ],
            env={"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]},
            check=False,
            timeout=300,
        )
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0, logs  # a failed job fails the sweep
    ok = fake.job_by_display_name("-0")
    bad = fake.job_by_display_name("-1")
    assert ok.job.state.name == "JOB_STATE_SUCCEEDED", ok.output[-3000:]
    assert bad.job.state.name == "JOB_STATE_FAILED"
    assert "label 'FASHION_BRAND' is not in this phase's label set" in bad.output

    out = f"gs://{BUCKET}/vertex/multirun/{tmp_path.name}"
    result = read_gcs_json(gcs, f"{out}/0/result.json")
    assert result["status"] == "COMPLETED" and isinstance(result["objective"], float)
    assert read_gcs_json(gcs, f"{out}/0/model-best/meta.json")["components"] == ["tok2vec", "ner"]
    assert read_gcs_json(gcs, f"{out}/1/result.json")["status"] == "FAILED"

    assert "vertex: 1/2 job(s) succeeded, 1 failed" in logs
    assert "exited with a non-zero status of 2" in logs and "is not in this phase's label set" in logs
    assert "Traceback" not in logs
    # the job saw the launcher's environment: its MLflow run is where tracking.uri said
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fashion").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("ner_runner.sweep") == "true"]
    runs = [r for r in runs if r is not parent]
    assert [r.data.metrics["dev_ents_f"] for r in runs] == [pytest.approx(result["objective"])]
    # the job ran in another process (the fake Vertex), and its run is still the sweep's child
    assert runs[0].data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_ctrl_c_cancels_the_jobs_still_running(tmp_path, gcs):
    with FakeJobService(hold=True) as fake:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), *launcher_overrides(fake, tmp_path), "launcher=vertex", "hyperparameters.seed=1,2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline and not (
            len(fake.jobs) == 2 and all(j.job.state.name == "JOB_STATE_RUNNING" for j in fake.jobs.values())
        ):
            time.sleep(0.1)
        assert len(fake.jobs) == 2, proc.communicate(timeout=30)[0] if proc.poll() is not None else "no jobs"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert sorted(fake.cancelled) == sorted(fake.jobs), out
    assert all(j.job.state.name == "JOB_STATE_CANCELLED" for j in fake.jobs.values())
    assert "cancelling the jobs still running" in out
