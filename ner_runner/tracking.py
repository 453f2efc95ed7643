"""MLflow run ownership: params, tags, metrics delivery, artifacts and the model.

The runner starts and ends the MLflow run; the spaCy logger only hands metrics to the run's
`MetricSink`. Every metric is written to a local journal in the run directory before it is sent, so a
tracking failure never loses what training produced.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from .errors import NerRunnerError

log = logging.getLogger(__name__)

SECRET_KEY = re.compile(r"(password|passwd|token|secret|key|credential)", re.IGNORECASE)
MASK = "***"
MAX_PARAM_LENGTH = 6000


# --------------------------------------------------------------------------- secrets


def redact_uri(value: str) -> str:
    """Drop user:password from any URI-looking value."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))
    return value


def is_secret_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return bool(SECRET_KEY.search(last))


def scrub(values: Mapping[str, Any]) -> Dict[str, str]:
    """Params safe to log: secret-looking keys masked, credentials in URIs removed."""
    out: Dict[str, str] = {}
    for key, value in values.items():
        text = "" if value is None else str(value)
        if is_secret_key(key) and text:
            text = MASK
        else:
            text = redact_uri(text)
        out[key] = text[:MAX_PARAM_LENGTH]
    return out


def flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """Nested dicts/lists -> {'a.b.0': value}."""
    items: Dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            items.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in tree):
        for i, v in enumerate(tree):
            items.update(flatten(v, f"{prefix}{i}."))
    else:
        items[prefix[:-1]] = list(tree) if isinstance(tree, tuple) else tree
    return items


# --------------------------------------------------------------------------- environment


def configure_client(timeout_s: float, max_retries: int) -> None:
    """Bound MLflow's HTTP retries (its defaults retry for minutes on a dead server)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(timeout_s, 1))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def git_commit(cwd: Optional[Path] = None) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _create_experiment(mlflow: Any, name: str, artifact_location: str) -> None:
    """Create the experiment; another job of the same sweep may create it first, which is as good."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def local_artifact_location(tracking_uri: str) -> Optional[str]:
    """Artifacts of a local sqlite store live beside the database (`mlartifacts/`), not in the cwd."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :]).expanduser().resolve()
    return (db.parent / "mlartifacts").as_uri()


# --------------------------------------------------------------------------- metrics


class MetricSink:
    """Journals metrics locally, then delivers them to MLflow from a background thread.

    `log_metrics` never blocks on the network. Batches that cannot be delivered stay in the queue and
    are retried; whatever is still undelivered at `close` remains in the journal for a later sync.
    """

    def __init__(self, client: Any, run_id: str, journal: Path, retry_s: float = 2.0):
        self.client = client
        self.run_id = run_id
        self.journal = journal
        self.retry_s = retry_s
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        self._queue: "queue.Queue[Optional[dict]]" = queue.Queue()
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed_attempts = 0
        self.undelivered: List[dict] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._work, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        record = {"step": step, "timestamp": int(time.time() * 1000), "metrics": dict(metrics)}
        with self._lock, self.journal.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        self._queue.put(record)

    def _send(self, record: dict) -> None:
        from mlflow.entities import Metric

        metrics = [
            Metric(key=k, value=v, timestamp=record["timestamp"], step=record["step"])
            for k, v in record["metrics"].items()
        ]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000], synchronous=True)

    def _work(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            while True:
                try:
                    self._send(record)
                    self.delivered += 1
                    break
                except Exception as err:  # keep it; training goes on
                    self.failed_attempts += 1
                    log.warning("metrics for step %s not delivered yet: %s", record["step"], err)
                    if self._closing.is_set():
                        self.undelivered.append(record)
                        break
                    time.sleep(self.retry_s)

    def close(self, timeout_s: float = 30.0) -> List[dict]:
        """Flush and stop; returns the records that could not be delivered."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._closing.set()
            self._thread.join(timeout_s)
        return self.undelivered


# --------------------------------------------------------------------------- the run


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    tracking_uri: str


class TrackedRun:
    """Context manager that owns one MLflow run from start to FINISHED/FAILED."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        experiment: str,
        run_name: Optional[str],
        tags: Mapping[str, str],
        run_dir: Path,
        timeout_s: float = 15.0,
        max_retries: int = 2,
        resume_run_id: Optional[str] = None,
    ):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags)
        self.run_dir = run_dir
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.info: Optional[RunInfo] = None
        self.sink: Optional[MetricSink] = None
        self.resume_run_id = resume_run_id  # continue this run (a resumed checkpoint) instead of a new one
        self.resumed = False

    def __enter__(self) -> "TrackedRun":
        configure_client(self.timeout_s, self.max_retries)
        import mlflow
        from mlflow.tracking import MlflowClient

        from . import spacy_logger

        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            location = local_artifact_location(self.tracking_uri)
            if location and mlflow.get_experiment_by_name(self.experiment) is None:
                _create_experiment(mlflow, self.experiment, location)
            mlflow.set_experiment(self.experiment)
            run = self._resume(mlflow) if self.resume_run_id else None
            if run is None:
                run = mlflow.start_run(run_name=self.run_name, tags=self.tags)
        except Exception as err:
            raise NerRunnerError(
                f"cannot start an MLflow run at {redact_uri(self.tracking_uri)}: {err}"
            ) from err
        self.client = MlflowClient(self.tracking_uri)
        self.info = RunInfo(run.info.run_id, run.info.experiment_id, self.tracking_uri)
        self.sink = MetricSink(self.client, run.info.run_id, self.run_dir / "tracking" / "metrics.jsonl")
        spacy_logger.set_active_sink(self.sink)
        (self.run_dir / "tracking").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "tracking" / "run.json").write_text(
            json.dumps({"run_id": self.info.run_id, "experiment_id": self.info.experiment_id})
        )
        return self

    def _resume(self, mlflow: Any) -> Any:
        """Reopen the checkpoint's run; a run that is gone (other server, deleted) means a new one."""
        try:
            run = mlflow.start_run(run_id=self.resume_run_id)
        except Exception as err:
            log.warning("cannot continue MLflow run %s (%s): starting a new run", self.resume_run_id, err)
            return None
        self.resumed = True
        log.info("continuing MLflow run %s", self.resume_run_id)
        return run

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        safe = scrub(params)
        if self.resumed:  # MLflow params are immutable: keep the first attempt's values
            existing = self.client.get_run(self.info.run_id).data.params
            safe = {k: v for k, v in safe.items() if k not in existing}
        items = [Param(k, v) for k, v in sorted(safe.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.info.run_id, params=items[i : i + 100], synchronous=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        assert self.sink is not None
        self.sink.log_metrics(metrics, step)

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None) -> None:
        import mlflow

        from .progress import upload_with_progress

        upload_with_progress(path, artifact_path, lambda f, sub: mlflow.log_artifact(f, artifact_path=sub))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def __exit__(self, exc_type, exc, tb) -> None:
        import mlflow

        from . import spacy_logger
        from .trial_pruning import is_pruned

        spacy_logger.set_active_sink(None)
        undelivered: List[dict] = []
        if self.sink is not None:
            undelivered = self.sink.close()
        if undelivered:
            log.warning(
                "%d metric batch(es) were not delivered; they are kept in %s",
                len(undelivered),
                self.sink.journal,
            )
        status = "FINISHED" if exc_type is None else "FAILED"
        pruned = exc is not None and is_pruned(exc)
        if exc_type is KeyboardInterrupt or pruned:
            status = "KILLED"
        try:
            if pruned:  # stopped on purpose by a sweep's pruner: not a failure
                mlflow.set_tag("pruned", str(exc))
            mlflow.end_run(status=status)
        except Exception as err:
            log.warning("could not mark the MLflow run %s: %s", status, err)


def log_spacy_model(nlp: Any, *, registered_model_name: Optional[str], pip_requirements: Iterable[str]) -> Any:
    """Log the pipeline with MLflow's spaCy flavor and, if named, register a version."""
    import mlflow

    return mlflow.spacy.log_model(
        nlp,
        name="model",
        registered_model_name=registered_model_name,
        pip_requirements=list(pip_requirements),
    )
