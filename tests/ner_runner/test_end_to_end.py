"""`python run.py` on the real fashion_brands export: the MLflow run, its metrics and artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import quick_overrides, run_py

pytestmark = pytest.mark.slow


def _client(tmp: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")


def test_cpu_run_logs_params_metrics_and_artifacts(tmp_path, fashion_small):
    proc = run_py(quick_overrides(fashion_small, tmp_path, steps=6))
    run_dir = tmp_path / "run"
    assert (run_dir / "config.cfg").is_file()
    assert (run_dir / "model-best" / "meta.json").is_file()
    assert (run_dir / "model-last" / "meta.json").is_file()
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert "ents_f" in evaluation and "FASHION_BRAND" in (evaluation["ents_per_type"] or {"FASHION_BRAND": 0})

    client = _client(tmp_path)
    exp = client.get_experiment_by_name("fashion")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["hyperparameters.max_steps"] == "6"
    assert run.data.params["phase.labels"] == "['FASHION_BRAND']"
    assert run.data.tags["phase"] == "phase1"
    assert run.data.tags["hardware"] == "cpu"
    assert run.data.tags["spacy_version"]
    assert run.data.tags["ner_runner_version"]

    # per-step metrics, logged with their step, including the per-entity ones
    history = client.get_metric_history(run.info.run_id, "ents_f")
    assert sorted(m.step for m in history) == [0, 3, 6]
    assert client.get_metric_history(run.info.run_id, "loss/ner")
    assert client.get_metric_history(run.info.run_id, "train_words_per_second")
    per_type = run.data.metrics.get("ents_per_type/FASHION_BRAND/f")
    assert per_type is not None or evaluation["ents_f"] == 0.0
    assert run.data.metrics["dev_ents_f"] == pytest.approx(evaluation["ents_f"])
    # the data report and the exports' lineage
    assert run.data.metrics["data/train/read"] == 60 and run.data.tags["data_cache"] == "miss"
    assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == ["dev.jsonl", "train.jsonl"]

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.cfg", "evaluation.json", "data_report.json", "hydra"} <= artifacts
    hydra_files = {a.path for a in client.list_artifacts(run.info.run_id, "hydra")}
    assert "hydra/config.yaml" in hydra_files and "hydra/overrides.yaml" in hydra_files

    import mlflow.spacy

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    nlp = mlflow.spacy.load_model(f"runs:/{run.info.run_id}/model")
    assert nlp.pipe_names == ["tok2vec", "ner"]
    assert "dev ents_f" in proc.stderr + proc.stdout
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "COMPLETED"
    assert result["objective"] == pytest.approx(evaluation["ents_f"])
    assert result["mlflow_run_id"] == run.info.run_id


def test_train_false_stops_after_config_and_corpus(tmp_path, fashion_small):
    run_py(quick_overrides(fashion_small, tmp_path, extra=["train=false"]))
    run_dir = tmp_path / "run"
    assert (run_dir / "config.cfg").is_file()
    assert (run_dir / "corpus" / "train.spacy").is_file()
    assert (run_dir / "corpus" / "dev.spacy").is_file()
    assert not (run_dir / "model-best").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_bad_label_exits_with_one_clear_line(tmp_path, fashion_small):
    proc = run_py(
        quick_overrides(fashion_small, tmp_path, extra=["phase.labels=[PERSON]"]), check=False
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "label 'FASHION_BRAND' is not in this phase's label set" in proc.stderr
    assert f"{fashion_small['train']}:" in proc.stderr


def test_failed_training_marks_run_failed(tmp_path, fashion_small):
    # a GPU that is not there fails inside the run: the run must end FAILED, not FINISHED
    proc = run_py(quick_overrides(fashion_small, tmp_path, extra=["hardware.gpu_id=0"]), check=False)
    assert proc.returncode != 0
    assert "needs a CUDA GPU" in proc.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "FAILED" and "needs a CUDA GPU" in result["error"]
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("fashion").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_two_job_multirun_gives_two_runs(tmp_path, fashion_small):
    run_py(["-m", *quick_overrides(fashion_small, tmp_path, steps=2), "hyperparameters.learning_rate=0.001,0.002"])
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("fashion").experiment_id])
    parents = [r for r in runs if r.data.tags.get("ner_runner.sweep") == "true"]
    assert len(parents) == 1  # the sweep's parent run groups the jobs
    runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(runs) == 2
    assert sorted(r.data.params["hyperparameters.learning_rate"] for r in runs) == ["0.001", "0.002"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # the parent carries the best child's score and id; sweep_children finds the jobs by their tag
    from ner_runner.sweep_tracking import sweep_children

    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED"
    children = sweep_children(parent.info.run_id, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(c.run_id for c in children) == sorted(r.info.run_id for r in runs)
    best = max(children, key=lambda c: c.dev_ents_f)
    assert parent.data.metrics["best_dev_ents_f"] == pytest.approx(best.dev_ents_f)
    assert parent.data.tags["best_run_id"] == best.run_id
    assert parent.data.params["override.hyperparameters.learning_rate"] == "0.001,0.002"
