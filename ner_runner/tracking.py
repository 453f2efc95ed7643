"""MLflow run ownership: params, tags, metrics, artifacts and the model, with nothing lost.

The runner starts and ends the MLflow run; the spaCy logger only hands metrics to the run's sink. Every
param, tag, metric, artifact and the model goes into the run directory's outbox first (see `outbox`) and is
delivered from a background thread, so a tracking server that goes away never stops training and never
loses what it produced; `ner-runner sync RUN_DIR` delivers what was left. Values are scrubbed of secrets
before they are written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from .errors import NerRunnerError
from .outbox import Courier, Outbox, PermanentError

log = logging.getLogger(__name__)

SECRET_KEY = re.compile(r"(password|passwd|token|secret|key|credential)", re.IGNORECASE)
MASK = "***"
MAX_PARAM_LENGTH = 6000
PARENT_RUN_ENV = "NER_RUNNER_PARENT_RUN_ID"
TRACKING_DIR = "tracking"

# scheme://user[:password]@host anywhere in a text
_URI_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"]+)@")
# `some_token: value` / `db.password=value` in YAML, overrides or config text; lists, mappings,
# interpolations and null/booleans are structure, not secrets
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>\b[\w.\-]*(?:password|passwd|token|secret|key|credential)[\w\-]*\s*[:=]\s*)"
    r"(?P<quote>['\"]?)(?!(?:null|true|false|\[|\{|\$|\*\*\*))(?P<value>[^\s'\",}\]]+)",
    re.IGNORECASE,
)
_MIN_ENV_SECRET = 6


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


def env_secrets() -> List[str]:
    """Values of environment variables whose names look secret (`*_TOKEN`, `*_PASSWORD`, ...).

    A config value interpolated from such a variable (`${oc.env:HF_TOKEN}`) is masked wherever it shows
    up, whatever the key it landed under.
    """
    values = {v for k, v in os.environ.items() if SECRET_KEY.search(k) and len(v) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str, secrets: Optional[Iterable[str]] = None) -> str:
    """Mask credentials in URIs, secret-looking assignments and known secret values in free text."""
    for secret in env_secrets() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    text = _URI_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group('key')}{m.group('quote')}{MASK}", text)


def scrub(values: Mapping[str, Any]) -> Dict[str, str]:
    """Params/tags safe to log: secret-looking keys masked, credentials and secret values removed."""
    secrets = env_secrets()
    out: Dict[str, str] = {}
    for key, value in values.items():
        text = "" if value is None else str(value)
        if is_secret_key(key) and text:
            text = MASK
        else:
            text = redact_uri(text)
            for secret in secrets:
                text = text.replace(secret, MASK)
            text = _URI_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
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


def _is_text(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
        head.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return b"\0" not in head


def scrubbed_copy(src: Path, dest: Path) -> Path:
    """Copy a file or directory, masking secrets in every text file (binary files are copied as-is)."""
    secrets = env_secrets()
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    for f in files:
        target = dest if src.is_file() else dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if _is_text(f) and f.stat().st_size < 50_000_000:
            target.write_text(scrub_text(f.read_text(encoding="utf-8"), secrets), encoding="utf-8")
        else:
            shutil.copyfile(f, target)
    if src.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
    return dest


# --------------------------------------------------------------------------- environment


UPLOAD_TIMEOUT_S = 120


def configure_client(timeout_s: float, max_retries: int) -> None:
    """Bound MLflow's HTTP retries (its defaults retry for minutes on a dead server).

    A dead server fails a call after `max_retries` quick retries. The per-request timeout stays long
    enough for a large model file to go through the server to GCS; a hung server only delays the
    background delivery, which the end-of-job wait (`flush_timeout_s`) bounds.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(timeout_s, UPLOAD_TIMEOUT_S))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow prints run links with the tracking URI as given, credentials included; we log our own
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> Optional[str]:
    """The run's page in the MLflow UI, without credentials; None for local stores."""
    if not is_server_uri(tracking_uri):
        return None
    parts = urlsplit(tracking_uri)
    base = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", "")).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_tracking_server(uri: str, timeout_s: float = 15.0, max_retries: int = 2) -> None:
    """Fail fast: the server answers an authenticated request within `timeout_s`, or a clear error.

    Only http(s) servers are checked; local stores are created on first use. Credentials come from
    MLflow's own environment variables (MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD).
    """
    if not is_server_uri(uri):
        return
    configure_client(timeout_s, max_retries)
    # Imported here, in the calling thread: importing is not the server's time, and a package imported
    # from two threads at once can be seen half-initialised.
    from mlflow.tracking import MlflowClient

    outcome: Dict[str, BaseException] = {}

    def probe() -> None:
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except BaseException as err:  # reported by the caller
            outcome["error"] = err

    started = time.monotonic()
    worker = threading.Thread(target=probe, name="mlflow-check", daemon=True)
    worker.start()
    worker.join(timeout_s)
    where = redact_uri(uri)
    if worker.is_alive():
        raise NerRunnerError(
            f"cannot reach the MLflow tracking server at {where}: no answer within {timeout_s:.0f}s; "
            "start it or check tracking.uri / MLFLOW_TRACKING_URI (or run with tracking.enabled=false)"
        )
    err = outcome.get("error")
    if err is None:
        log.info("MLflow server %s answered in %.1fs", where, time.monotonic() - started)
        return
    status = _http_status(err)
    if status in (401, 403):
        raise NerRunnerError(
            f"the MLflow tracking server at {where} refused the credentials (HTTP {status}); "
            "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        ) from err
    raise NerRunnerError(
        f"cannot reach the MLflow tracking server at {where}: {_reason(err)}; "
        "start it or check tracking.uri / MLFLOW_TRACKING_URI (or run with tracking.enabled=false)"
    ) from err


def _http_status(err: BaseException) -> Optional[int]:
    text = str(err)
    m = re.search(r"\b(401|403)\b", text)
    if m and ("Unauthorized" in text or "Forbidden" in text or "status code" in text or "HTTP" in text):
        return int(m.group(1))
    code = getattr(err, "error_code", None)
    if code in ("UNAUTHENTICATED",):
        return 401
    if code in ("PERMISSION_DENIED",):
        return 403
    return None


def _reason(err: BaseException) -> str:
    text = redact_uri(str(err))
    text = _URI_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if "Connection refused" in text or "Failed to establish a new connection" in text:
        return "connection refused"
    if "Max retries exceeded" in text or "timed out" in text.lower():
        return "no answer (timed out)"
    return text.strip().splitlines()[0][:300] if text.strip() else type(err).__name__


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


def local_artifact_location(tracking_uri: str) -> Optional[str]:
    """Artifacts of a local sqlite store live beside the database (`mlartifacts/`), not in the cwd."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :]).expanduser().resolve()
    return (db.parent / "mlartifacts").as_uri()


def get_or_create_experiment(client: Any, name: str, tracking_uri: str) -> str:
    """The experiment's id; created on first use (parallel jobs may race to create it)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=local_artifact_location(tracking_uri))
    except Exception:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


# --------------------------------------------------------------------------- delivery

_PERMANENT_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "MALFORMED_REQUEST"}


class MlflowDelivery:
    """Sends outbox records to one MLflow run; each kind is idempotent on the server side."""

    def __init__(self, client: Any, run_id: str, run_dir: Path):
        self.client = client
        self.run_id = run_id
        self.run_dir = Path(run_dir)

    def __call__(self, record: Dict[str, Any]) -> Any:
        try:
            return getattr(self, f"_{record['kind']}")(record)
        except PermanentError:
            raise
        except Exception as err:
            if getattr(err, "error_code", None) in _PERMANENT_CODES:
                raise PermanentError(str(err)) from err
            raise

    def _path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.run_dir / p

    def _params(self, record: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in sorted(record["params"].items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100], synchronous=True)

    def _tags(self, record: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in sorted(record["tags"].items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, tags=items[i : i + 100], synchronous=True)

    def _metrics(self, record: dict) -> None:
        from mlflow.entities import Metric

        # same key/value/timestamp/step on a resend: the store keeps one row (its primary key)
        metrics = [
            Metric(key=k, value=v, timestamp=record["timestamp"], step=record["step"])
            for k, v in record["metrics"].items()
        ]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000], synchronous=True)

    def _artifact(self, record: dict) -> None:
        path = self._path(record["path"])
        if not path.exists():
            raise PermanentError(f"{path} is gone")
        from .progress import upload_with_progress

        # same paths on a resend: the artifact store overwrites
        upload_with_progress(
            path, record.get("artifact_path"), lambda f, sub: self.client.log_artifact(self.run_id, f, sub)
        )

    def _register(self, record: dict) -> Dict[str, Any]:
        from .model_registry import register_model_version

        return register_model_version(
            self.client,
            name=record["name"],
            run_id=self.run_id,
            artifact_path=record["artifact_path"],
            scores=record.get("scores") or {},
            promote=bool(record.get("promote")),
        )

    def _input(self, record: dict) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        tags = [InputTag(k, v) for k, v in sorted((record.get("tags") or {}).items())]
        if record.get("context"):
            tags.append(InputTag("mlflow.data.context", record["context"]))
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(Dataset(**record["dataset"]), tags=tags)])

    def _end(self, record: dict) -> None:
        self.client.set_terminated(self.run_id, status=record["status"], end_time=record["end_time"])


def sync_run_dir(run_dir: Path, tracking_uri: Optional[str] = None, *, timeout_s: float = 15.0,
                 max_retries: int = 2) -> Dict[str, int]:
    """Deliver what a run directory still holds for MLflow; returns {'delivered': n, 'left': m}."""
    from mlflow.tracking import MlflowClient

    run_dir = Path(run_dir)
    run_json = run_dir / TRACKING_DIR / "run.json"
    if not run_json.is_file():
        raise NerRunnerError(f"{run_dir} has no {TRACKING_DIR}/run.json: it is not a tracked run directory")
    info = json.loads(run_json.read_text())
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or info.get("tracking_uri")
    if not uri or MASK in uri:
        raise NerRunnerError(
            f"give the tracking server of {run_dir} with --tracking-uri or MLFLOW_TRACKING_URI "
            "(its credentials were not stored)"
        )
    check_tracking_server(uri, timeout_s, max_retries)
    configure_client(timeout_s, max_retries)
    outbox = Outbox(run_dir / TRACKING_DIR)
    before = len(outbox.pending())
    left = outbox.flush(MlflowDelivery(MlflowClient(uri), info["run_id"], run_dir))
    return {"delivered": before - left, "left": left}


# --------------------------------------------------------------------------- the run


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    tracking_uri: str


class MetricSink:
    """What the spaCy logger feeds: each step's metrics go to the outbox and on to MLflow.

    Every step is also appended to `tracking/metrics.jsonl` ({step, timestamp, metrics} per line), the
    plain metrics journal that the run report's learning curve reads.
    """

    def __init__(self, outbox: Outbox, courier: Optional[Courier]):
        self.outbox = outbox
        self.courier = courier
        self.journal = outbox.dir / "metrics.jsonl"
        self._lock = threading.Lock()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        record = {"step": int(step), "timestamp": int(time.time() * 1000),
                  "metrics": {k: float(v) for k, v in metrics.items()}}
        with self._lock, self.journal.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        self.outbox.put("metrics", **record)
        if self.courier is not None:
            self.courier.notify()


class TrackedRun:
    """Context manager that owns one MLflow run from start to FINISHED/FAILED.

    Only the run's creation talks to the server synchronously; everything after it goes through the
    run directory's outbox. A sweep's parent run id in NER_RUNNER_PARENT_RUN_ID nests this run under it.
    """

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
        flush_timeout_s: float = 120.0,
        parent_run_id: Optional[str] = None,
        resume_run_id: Optional[str] = None,
    ):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags)
        self.run_dir = Path(run_dir)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.flush_timeout_s = flush_timeout_s
        self.parent_run_id = parent_run_id or os.environ.get(PARENT_RUN_ENV) or None
        self.info: Optional[RunInfo] = None
        self.sink: Optional[MetricSink] = None
        self.outbox: Optional[Outbox] = None
        self.courier: Optional[Courier] = None
        self.undelivered = 0
        self._artifacts = 0
        self.resume_run_id = resume_run_id  # continue this run (a resumed checkpoint) instead of a new one
        self.resumed = False

    @property
    def tracking_dir(self) -> Path:
        return self.run_dir / TRACKING_DIR

    def __enter__(self) -> "TrackedRun":
        configure_client(self.timeout_s, self.max_retries)
        from mlflow.tracking import MlflowClient
        from mlflow.tracking.context.registry import resolve_tags

        from . import spacy_logger

        tags = dict(self.tags)
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        try:
            self.client = MlflowClient(self.tracking_uri)
            experiment_id = get_or_create_experiment(self.client, self.experiment, self.tracking_uri)
            run = self._resume() if self.resume_run_id else None
            if run is None:
                run = self.client.create_run(
                    experiment_id, run_name=self.run_name, tags=scrub(resolve_tags(tags))
                )
            experiment_id = run.info.experiment_id
        except Exception as err:
            raise NerRunnerError(
                f"cannot start an MLflow run at {redact_uri(self.tracking_uri)}: {_reason(err)}"
            ) from err
        self.info = RunInfo(run.info.run_id, experiment_id, self.tracking_uri)
        self.tracking_dir.mkdir(parents=True, exist_ok=True)
        (self.tracking_dir / "run.json").write_text(
            json.dumps(
                {
                    "run_id": self.info.run_id,
                    "experiment_id": experiment_id,
                    "tracking_uri": redact_uri(self.tracking_uri),
                    "parent_run_id": self.parent_run_id,
                }
            )
        )
        self.outbox = Outbox(self.tracking_dir)
        if self.resumed:
            # an earlier attempt's end-of-run would close the run this attempt continues
            for record in self.outbox.pending():
                if record["kind"] == "end":
                    self.outbox.mark(record["seq"], ok=False, error="superseded: the run was resumed")
            # what the earlier attempt could not send arrives first, so the resumed series sees it
            self.outbox.flush(MlflowDelivery(self.client, self.info.run_id, self.run_dir))
        self.courier = Courier(self.outbox, MlflowDelivery(self.client, self.info.run_id, self.run_dir))
        self.sink = MetricSink(self.outbox, self.courier)
        spacy_logger.set_active_sink(self.sink)
        return self

    def _resume(self) -> Any:
        """Reopen the checkpoint's run; a run that is gone (other server, deleted) means a new one."""
        try:
            run = self.client.get_run(self.resume_run_id)
            self.client.update_run(self.resume_run_id, status="RUNNING")
        except Exception as err:
            log.warning("cannot continue MLflow run %s (%s): starting a new run", self.resume_run_id, _reason(err))
            return None
        self.resumed = True
        log.info("continuing MLflow run %s", self.resume_run_id)
        return run

    def _put(self, kind: str, **payload: Any) -> None:
        assert self.outbox is not None and self.courier is not None
        self.outbox.put(kind, **payload)
        self.courier.notify()

    def log_params(self, params: Mapping[str, Any]) -> None:
        safe = scrub(params)
        if self.resumed:  # MLflow params are immutable: keep the first attempt's values
            try:
                existing = self.client.get_run(self.info.run_id).data.params
                safe = {k: v for k, v in safe.items() if k not in existing}
            except Exception as err:  # a changed value is then rejected by the server, and recorded
                log.warning("could not read the params of run %s: %s", self.info.run_id, _reason(err))
        self._put("params", params=safe)

    def log_input(self, dataset: Any, *, context: Optional[str] = None,
                  tags: Optional[Mapping[str, str]] = None) -> None:
        """An MLflow dataset input (e.g. a `MetaDataset`), delivered like everything else."""
        entity = dataset._to_mlflow_entity()
        self._put(
            "input",
            dataset={"name": entity.name, "digest": entity.digest, "source_type": entity.source_type,
                     "source": entity.source, "schema": entity.schema, "profile": entity.profile},
            context=context,
            tags=scrub(dict(tags or {})),
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        assert self.sink is not None
        self.sink.log_metrics(metrics, step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._put("tags", tags=scrub(tags))

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None) -> None:
        """Snapshot (secrets masked) into the run directory now, deliver later."""
        path = Path(path)
        self._artifacts += 1
        dest = self.tracking_dir / "artifacts" / f"{self._artifacts:03d}" / path.name
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        scrubbed_copy(path, dest)
        # like mlflow.log_artifact(s): a file lands in artifact_path, a directory's contents do
        self._put("artifact", path=str(dest.relative_to(self.run_dir)), artifact_path=artifact_path)

    def log_model(
        self,
        nlp: Any,
        *,
        registered_model: Optional[str],
        pip_requirements: Iterable[str],
        scores: Mapping[str, float],
        promote: bool = False,
        artifact_path: str = "model",
    ) -> Path:
        """Save the pipeline as an MLflow model (spaCy flavor + NER pyfunc) in the run directory,
        then deliver it and register a version with the dev scores."""
        from .model_registry import save_model

        local = self.tracking_dir / "model"
        save_model(nlp, local, pip_requirements=pip_requirements)
        self._put("artifact", path=str(local.relative_to(self.run_dir)), artifact_path=artifact_path)
        if registered_model:
            self._put(
                "register",
                name=registered_model,
                artifact_path=artifact_path,
                scores={k: float(v) for k, v in scores.items()},
                promote=promote,
            )
        return local

    def __exit__(self, exc_type, exc, tb) -> None:
        from . import spacy_logger
        from .trial_pruning import is_pruned

        spacy_logger.set_active_sink(None)
        status = "FINISHED" if exc_type is None else "FAILED"
        pruned = exc is not None and is_pruned(exc)
        if exc_type is KeyboardInterrupt or pruned:
            status = "KILLED"
        if self.outbox is None or self.courier is None:
            return
        if pruned:  # stopped on purpose by a sweep's pruner: not a failure
            self._put("tags", tags=scrub({"pruned": str(exc)}))
        self._put("end", status=status, end_time=int(time.time() * 1000))
        self.undelivered = self.courier.drain(self.flush_timeout_s)
        url = run_url(self.tracking_uri, self.info.experiment_id, self.info.run_id)
        if url:
            log.info("MLflow run: %s", url)
        if self.undelivered:
            log.warning(
                "MLflow: %d record(s) not delivered to %s; they are kept in %s. "
                "Deliver them with: ner-runner sync %s",
                self.undelivered, redact_uri(self.tracking_uri), self.outbox.outbox_path, self.run_dir,
            )
