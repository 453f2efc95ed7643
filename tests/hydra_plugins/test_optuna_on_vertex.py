"""An Optuna sweep through the Vertex launcher: the fake JobService trains every trial for real.

`python run.py -m hparams_search=optuna_cpu launcher=vertex` as a user types it. The sweeper asks for one
batch of trials, the launcher submits them as CustomJobs, the fake runs each job's container args as
`python run.py ...` against the checkout (outputs to the emulator bucket), and the sweeper must tell the
study what each job's result.json says: its objective, or FAIL for a job that failed in its container.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.conftest import ROOT, quick_overrides, run_py
from tests.fakes.vertex_jobservice import FakeJobService
from tests.hydra_plugins.conftest import BUCKET, launcher_overrides, read_gcs_json

pytestmark = pytest.mark.slow

LR = "hyperparameters.learning_rate"
BS = "hyperparameters.batch_size"


def test_optuna_sweep_on_vertex_reads_back_every_trial(tmp_path, gcs, fashion_small):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the jobs of a batch start together: MLflow's sqlite store cannot create its tables from several
    # processes at once, so they exist beforehand (as on the tracking server a Vertex sweep uses)
    MlflowClient(tracking_uri).search_experiments()

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    dev = str(fashion_small["dev"])
    missing = str(tmp_path / "not-in-the-image" / "dev.jsonl")  # a path the container does not have
    study = optuna.create_study(study_name="vertex", storage=storage, direction="maximize")
    # fixed parameters, so the test knows which trial fails: trial 1's job cannot read its dev set
    study.enqueue_trial({LR: 0.02, BS: 100, "data.dev": dev})
    study.enqueue_trial({LR: 0.01, BS: 100, "data.dev": missing})
    study.enqueue_trial({LR: 0.001, BS: 1000, "data.dev": dev})

    # the image's entrypoint is `python run.py`: here the checkout's run.py plays it
    with FakeJobService(execute=[sys.executable, str(ROOT / "run.py")], workdir=tmp_path / "vertex") as fake:
        proc = run_py(
            [
                "-m",
                "hparams_search=optuna_cpu",
                "launcher=vertex",
                *quick_overrides(fashion_small, tmp_path, steps=2),
                *launcher_overrides(fake, tmp_path),
                "tracking.log_model=false",
                f"hydra.sweeper.storage={storage}",
                "hydra.sweeper.study_name=vertex",
                "hydra.sweeper.n_trials=3",
                "hydra.sweeper.n_jobs=3",
                # 1 of 3 fails, above the rate: the policy stops only a sweep with trials left to run
                "hydra.sweeper.max_failure_rate=0.25",
                f"{LR}=tag(log, interval(1e-3, 3e-2))",
                f"{BS}=choice(100, 1000)",
                "hyperparameters.dropout=0.1",
                f"data.dev=choice({dev}, {missing})",
            ],
            env={"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]},
            check=False,
            timeout=300,
        )
        jobs = {n: fake.job_by_display_name(f"-{n}") for n in range(3)}
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-6000:]
    assert "Traceback" not in logs
    # one launch of n_jobs=3: the three trials trained side by side
    assert logs.count("vertex: submitting 3 job(s)") == 1 and len(fake.jobs) == 3
    assert "VertexLauncher runs trials outside this process" in logs  # the preset's pruner is not used

    study = optuna.load_study(study_name="vertex", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    out = f"gs://{BUCKET}/vertex/multirun/{tmp_path.name}"
    sweep_dir = tmp_path / "multirun" / tmp_path.name
    objectives = {}
    for trial in study.trials:
        n = trial.number
        # job n ran trial n's parameters in its container
        args = list(jobs[n].job.job_spec.worker_pool_specs[0].container_spec.args)
        assert f"{LR}={trial.params[LR]}" in args and f"data.dev={trial.params['data.dev']}" in args
        result = read_gcs_json(gcs, f"{out}/{n}/result.json")
        assert json.loads((sweep_dir / str(n) / "result.json").read_text()) == result
        if trial.state == TrialState.COMPLETE:
            assert jobs[n].job.state.name == "JOB_STATE_SUCCEEDED"
            assert result["status"] == "COMPLETED" and isinstance(result["objective"], float)
            assert trial.value == result["objective"]
            assert trial.user_attrs["mlflow_run_id"] == result["mlflow_run_id"]
            objectives[n] = result["objective"]
        else:
            # told FAIL with the container's error, never a stand-in score
            assert jobs[n].job.state.name == "JOB_STATE_FAILED"
            assert result["status"] == "FAILED" and result["objective"] is None
            assert trial.value is None and trial.intermediate_values == {}
            assert missing in trial.user_attrs["error"] and "FAILED on Vertex" in trial.user_attrs["error"]

    # the two scores differ, so a trial told another job's objective would show above
    assert len(set(objectives.values())) == 2

    # each completed trial's score is its MLflow run's dev_ents_f (the jobs logged where tracking.uri said)
    client = MlflowClient(tracking_uri)
    runs = {r.info.run_id: r for r in client.search_runs([client.get_experiment_by_name("fashion").experiment_id])}
    for n, objective in objectives.items():
        assert runs[study.trials[n].user_attrs["mlflow_run_id"]].data.metrics["dev_ents_f"] == pytest.approx(objective)

    # the summary lists every job, best first, the failed one last with its error
    best = max(objectives, key=lambda n: objectives[n])
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [(j["job"], j["status"]) for j in summary][-1] == ("1", "FAILED")
    assert {j["job"]: j["objective"] for j in summary[:2]} == {str(n): v for n, v in objectives.items()}
    assert summary[0]["objective"] == study.best_value == objectives[best]
    assert "job 1 FAILED" in proc.stdout and missing in proc.stdout
    for n in objectives:
        assert study.trials[n].user_attrs["mlflow_run_id"] in proc.stdout
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_trial: {study.best_trial.number}" in results and "failed_trials:\n- 1" in results


def test_a_dry_run_sweep_prints_one_batch_and_spends_no_trials(tmp_path):
    import optuna

    from hydra_plugins.ner_runner_optuna_sweeper._core import NO_OUTCOME_ATTR, finished

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = run_py(
        [
            "-m",
            "hparams_search=optuna_cpu",
            "launcher=vertex",
            "hydra.launcher.dry_run=true",
            "gcp.project=test-project",
            f"gcp.bucket={BUCKET}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=preview",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
        ],
        check=False,
        timeout=120,
    )
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-4000:]
    assert "Traceback" not in logs and "failed" not in logs
    # the first batch's CustomJobs are printed; with no scores to learn from, the sweep stops there
    assert proc.stdout.count("POST projects/test-project/locations/europe-west2/customJobs") == 2
    assert "the sweep stops here" in logs
    study = optuna.load_study(study_name="preview", storage=storage)
    assert len(study.trials) == 2 and all(t.system_attrs[NO_OUTCOME_ATTR] for t in study.trials)
    assert all(t.value is None and "no outcome" in t.user_attrs["error"] for t in study.trials)
    assert finished(study) == []  # a real sweep with the same storage still runs all 4 trials
