"""The data report in MLflow: counts as metrics, digests as params, and the input files as datasets.

`mlflow.log_input` records each export with its content digest and source, so a model in the MLflow
UI shows exactly which bytes trained it.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Dict

log = logging.getLogger(__name__)

# MLflow's input contexts for the two sides; a split export serves both.
CONTEXTS = {"train": "training", "dev": "validation", "input": "training+validation"}


def report_metrics(corpus: Any) -> Dict[str, float]:
    """`data/<split>/<count>`: read, accepted, skipped per reason, entities per label, docs without entity."""
    from .spacy_logger import metric_key

    metrics: Dict[str, float] = {}
    for name, rep in corpus.reports.items():
        metrics[metric_key("data", name, "read")] = rep.read
        metrics[metric_key("data", name, "accepted")] = rep.accepted
        metrics[metric_key("data", name, "docs_without_entities")] = rep.docs_without_entities
        for reason, n in rep.skipped.items():
            metrics[metric_key("data", name, "skipped", reason)] = n
        for label, n in rep.entities.items():
            metrics[metric_key("data", name, "entities", label)] = n
    return {k: float(v) for k, v in metrics.items()}


def report_params(corpus: Any) -> Dict[str, str]:
    params = {f"data_report.{role}.sha256": d.sha256 for role, d in corpus.inputs.items()}
    params["data_report.converter_version"] = corpus.converter_version
    if corpus.split:
        params.update({f"data_report.split.{k}": str(v) for k, v in corpus.split.items()})
    return params


def log_data_report(run: Any, corpus: Any) -> None:
    """Metrics and params through the TrackedRun; one MLflow dataset input per export."""
    run.log_params(report_params(corpus))
    run.set_tags({"data_cache": "hit" if corpus.cache_hit else "miss"})  # a resumed run may differ: not a param
    run.log_metrics(report_metrics(corpus), step=0)
    for role, digest in corpus.inputs.items():
        try:
            log_input(digest, context=CONTEXTS.get(role, role), split=corpus.split, run=run)
        except Exception as err:  # lineage is a record, not a reason to lose the run
            log.warning("could not record %s as an MLflow dataset input: %s", digest.path, err)


def log_input(digest: Any, *, context: str, split: Any = None, run: Any = None) -> None:
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local file either way
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(digest.path)
    # MLflow keeps at most 36 characters of a digest: the first 32 of the sha256 (the full one is a tag)
    dataset = MetaDataset(source=source, name=digest.path.rsplit("/", 1)[-1], digest=digest.sha256[:32])
    tags = {"sha256": digest.sha256, "size_bytes": str(digest.size)}
    if split:
        tags.update({f"split.{k}": str(v) for k, v in split.items()})
    if run is not None:  # through the run's outbox, like its params and metrics
        run.log_input(dataset, context=context, tags=tags)
    else:
        mlflow.log_input(dataset, context=context, tags=tags)
