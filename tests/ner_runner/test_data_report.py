"""The data report in MLflow: counts as metrics, digests as params, each export as a dataset input."""

from __future__ import annotations

import hashlib

from ner_runner.corpus import convert_corpus
from ner_runner.data_report import log_data_report
from ner_runner.tracking import TrackedRun


def test_report_metrics_params_and_lineage_reach_mlflow(tmp_path, fashion_small):
    from mlflow.tracking import MlflowClient

    corpus = convert_corpus(
        fashion_small["train"], fashion_small["dev"], labels=["FASHION_BRAND"], out_dir=tmp_path / "corpus"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with TrackedRun(tracking_uri=uri, experiment="data", run_name="r", tags={}, run_dir=tmp_path / "run") as run:
        log_data_report(run, corpus)
        run_id = run.info.run_id
    got = MlflowClient(uri).get_run(run_id)
    m = got.data.metrics
    assert m["data/train/read"] == 60 and m["data/dev/accepted"] == 30
    assert m["data/train/entities/FASHION_BRAND"] == corpus.reports["train"].entities["FASHION_BRAND"] > 0
    assert m["data/train/docs_without_entities"] == 20
    sha = hashlib.sha256(fashion_small["train"].read_bytes()).hexdigest()
    assert got.data.params["data_report.train.sha256"] == sha
    assert got.data.tags["data_cache"] == "miss"

    inputs = {i.dataset.name: i for i in got.inputs.dataset_inputs}
    assert set(inputs) == {"train.jsonl", "dev.jsonl"}
    train = inputs["train.jsonl"]
    assert train.dataset.digest == sha[:32]
    assert str(fashion_small["train"]) in train.dataset.source
    tags = {t.key: t.value for t in train.tags}
    assert tags["mlflow.data.context"] == "training" and tags["sha256"] == sha
    assert {t.key: t.value for t in inputs["dev.jsonl"].tags}["mlflow.data.context"] == "validation"
