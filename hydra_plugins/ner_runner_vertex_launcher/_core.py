"""Submit, watch and cancel Vertex AI custom jobs for a Hydra sweep.

Every job is described by argv only: the training image re-invokes the CLI with the job's overrides, so no
code or config is pickled and what runs on Vertex is exactly what `python run.py ARGS` runs locally.
Heavy imports (grpc, the Vertex and Storage clients) live here so `run.py --help` never pays for them.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus, _save_config, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from ._configs import SweepConfigs
from ._spec import (
    VertexLaunchError,
    _one_line,
    _redact,
    _redact_override,
    build_custom_job,
    check_settings,
    console_url,
    container_args,
    container_env,
    describe_api_error,
    redacted_json,
)

__all__ = ["VertexLaunchError", "VertexJobError", "SweepConfigs", "launch", "make_client", "plan_job"]

log = logging.getLogger("hydra_plugins.ner_runner_vertex_launcher")

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
#: the launcher's own end states besides Vertex's: rejected at submission, or lost while watching
FAILED_STATES = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "SUBMIT_FAILED", "WATCH_FAILED")


class VertexJobError(CompactHydraException):
    """Why one job did not succeed: its JobReturn carries this; Hydra prints it as one line, no traceback."""


class SubmittedJobReturn(JobReturn):
    """A job that was submitted (wait=false) or only printed (dry_run=true): no outcome yet.

    Hydra's JobReturn asserts when an UNKNOWN return value is read; here it is the job's resource name
    (or None for a dry run), so sweepers that touch every return value keep working.
    """

    @property  # type: ignore[override]
    def return_value(self) -> Any:
        if self.status == JobStatus.UNKNOWN:
            return self._return_value
        return JobReturn.return_value.fget(self)  # type: ignore[attr-defined]

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


# --------------------------------------------------------------------------- the client


def make_client(api_endpoint: str, insecure: bool = False) -> Any:
    """The one place the JobService client is built. `insecure` talks plaintext gRPC to a local fake."""
    from google.cloud import aiplatform_v1

    if insecure:
        import grpc
        from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

        return aiplatform_v1.JobServiceClient(
            transport=JobServiceGrpcTransport(channel=grpc.insecure_channel(api_endpoint))
        )
    from google.api_core.client_options import ClientOptions

    return aiplatform_v1.JobServiceClient(client_options=ClientOptions(api_endpoint=api_endpoint))


#: tests and embedding code may swap this for their own factory (same signature)
client_factory: Callable[[str, bool], Any] = make_client


def _read_retry(timeout: float = 120.0) -> Any:
    """Retries for idempotent calls (get/cancel): transient server and network errors only."""
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry

    return gretry.Retry(
        predicate=gretry.if_exception_type(
            gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.TooManyRequests
        ),
        initial=0.5,
        maximum=10.0,
        multiplier=2.0,
        timeout=timeout,
    )


@dataclass
class JobPlan:
    idx: int
    overrides: List[str]
    cfg: DictConfig  # the whole composed config, Hydra node included
    task_cfg: DictConfig  # without the Hydra node: what the task function sees
    settings: Dict[str, Any]
    job_dir: Path
    task_name: str
    output_uri: str
    custom_job: Any
    parent: str
    label: str  # "job #3 (ner-runner-...-3)" in every message about it
    resource_name: Optional[str] = None
    state: str = "QUEUED"
    error: Optional[str] = None
    result: Dict[str, Any] = field(default_factory=dict)

    def note(self, line: str) -> None:
        """The job's local log: what was submitted where, each state change, the outcome."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with (self.job_dir / f"{self.task_name}.log").open("a", encoding="utf-8") as f:
            f.write(f"[{stamp}] {line}\n")


def plan_job(launcher: Any, overrides: Sequence[str], idx: int, sweep_dir: Path, configs: Optional[SweepConfigs] = None) -> JobPlan:
    """Compose the job's config as Hydra would, save it beside the sweep and build its CustomJob."""
    configs = configs or SweepConfigs(launcher.hydra_context.config_loader, launcher.config)
    cfg = configs.load(overrides)
    with open_dict(cfg):
        cfg.hydra.job.id = f"vertex_{idx}"
        cfg.hydra.job.num = idx
    s = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert isinstance(s, dict)
    check_settings(s)
    subdir = str(cfg.hydra.sweep.subdir)
    job_dir = Path(str(cfg.hydra.sweep.dir)) / subdir
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(job_dir.absolute())
    task_name = str(cfg.hydra.job.name)
    job_dir.mkdir(parents=True, exist_ok=True)
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    if cfg.hydra.output_subdir is not None:
        # what the job will run, as Hydra records it (the sweep's multirun.yaml holds the Hydra settings)
        hydra_dir = job_dir / str(cfg.hydra.output_subdir)
        _save_config(task_cfg, "config.yaml", hydra_dir)
        _save_config(OmegaConf.create(list(overrides)), "overrides.yaml", hydra_dir)

    output_uri = "/".join(
        [str(s["base_output_dir"]).rstrip("/")]
        + [p.strip("/") for p in (sweep_dir.absolute().parent.name, sweep_dir.name, subdir) if p.strip("/")]
    )
    display_name = f"{s.get('display_name') or task_name}-{sweep_dir.name}-{idx}"
    display_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", display_name)
    run_dir = f"{str(s.get('container_run_dir') or 'outputs/vertex').rstrip('/')}/{subdir}"
    args = container_args(overrides, cfg, run_dir, output_uri)
    env = container_env(cfg, s.get("env") or {})
    custom_job = build_custom_job(s, display_name=display_name, args=args, env=env, output_uri=output_uri)
    plan = JobPlan(
        idx=idx,
        overrides=list(overrides),
        cfg=cfg,
        task_cfg=task_cfg,
        settings=s,
        job_dir=job_dir,
        task_name=task_name,
        output_uri=output_uri,
        custom_job=custom_job,
        parent=f"projects/{s['project']}/locations/{s['region']}",
        label=f"job #{idx} ({display_name})",
    )
    (job_dir / "vertex_job.json").write_text(redacted_json(custom_job))
    plan.note(f"planned {plan.label}: {' '.join(_redact_override(o) for o in overrides)} -> {output_uri}")
    uri = env.get("MLFLOW_TRACKING_URI", "")
    if uri and not re.match(r"^(https?|databricks)://|^databricks$", uri) and uri not in _warned:
        _warned.add(uri)
        log.warning(
            "%s: tracking.uri %s is local to the container, its MLflow run is lost when the job ends; "
            "set MLFLOW_TRACKING_URI to a tracking server",
            plan.label,
            _redact("", uri),
        )
    return plan


_warned: set = set()


def read_result(storage: Any, output_uri: str) -> Optional[Dict[str, Any]]:
    """The job's result.json from its output prefix, or None when it is not there."""
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket, _, prefix = output_uri[len("gs://") :].partition("/")
    blob = storage.bucket(bucket).blob(f"{prefix.rstrip('/')}/result.json" if prefix else "result.json")
    try:
        return json.loads(blob.download_as_text(retry=DEFAULT_RETRY, timeout=60))
    except gexc.NotFound:
        return None
    except (ValueError, gexc.GoogleAPICallError) as err:
        log.warning("could not read %s/result.json: %s", output_uri, _one_line(str(err)))
        return None


# --------------------------------------------------------------------------- the batch


class Batch:
    """Submits jobs concurrently (at most max_concurrent in flight), polls each with backoff, cancels on Ctrl-C."""

    def __init__(self, client: Any, total: int, *, poll_interval: float, max_concurrent: int, wait_for_jobs: bool, storage_factory: Callable[[], Any]):
        self.client = client
        self.total = total
        self.plans: List[JobPlan] = []
        self.poll_interval = max(0.01, float(poll_interval))
        self.max_concurrent = max(1, int(max_concurrent))
        self.wait_for_jobs = wait_for_jobs
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self._storage_factory = storage_factory
        self._storage: Any = None
        self._last_progress = ""

    # -- progress
    def _set_state(self, plan: JobPlan, state: str) -> None:
        with self.lock:
            if plan.state == state:
                return
            plan.state = state
            plan.note(f"state {state}")
            counts: Dict[str, int] = {}
            for p in self.plans:
                counts[p.state] = counts.get(p.state, 0) + 1
            counts["QUEUED"] = counts.get("QUEUED", 0) + self.total - len(self.plans)  # not planned yet
            done = sum(v for k, v in counts.items() if k in TERMINAL or k in FAILED_STATES or k == "SUBMITTED")
            line = (
                f"vertex: {done}/{self.total} done "
                f"({counts.get('JOB_STATE_SUCCEEDED', 0)} succeeded, "
                f"{sum(counts.get(k, 0) for k in FAILED_STATES)} failed), "
                f"{counts.get('JOB_STATE_RUNNING', 0)} running, "
                f"{sum(counts.get(k, 0) for k in ('JOB_STATE_QUEUED', 'JOB_STATE_PENDING', 'CREATED'))} pending on Vertex, "
                f"{counts.get('QUEUED', 0) + counts.get('SUBMITTING', 0)} not yet submitted"
            )
            if line != self._last_progress:
                self._last_progress = line
                log.info(line)

    # -- one job, in a worker thread
    def _run_one(self, plan: JobPlan) -> None:
        if self.stop.is_set():
            return
        self._set_state(plan, "SUBMITTING")
        try:
            created = self.client.create_custom_job(parent=plan.parent, custom_job=plan.custom_job, timeout=60)
        except Exception as err:  # one failed submission never stops the others
            plan.error = describe_api_error(err, plan.label, plan.settings)
            log.error(plan.error)
            plan.note(plan.error)
            self._set_state(plan, "SUBMIT_FAILED")
            return
        plan.resource_name = created.name
        url = console_url(created.name)
        log.info("%s submitted: %s  %s", plan.label, created.name, url)
        plan.note(f"submitted {created.name} {url}")
        if not self.wait_for_jobs:
            self._set_state(plan, "SUBMITTED")
            return
        self._set_state(plan, "CREATED")
        try:
            self._watch(plan)
        except Exception as err:  # never guess an outcome: the job is reported failed, with where to look
            plan.error = (
                f"{plan.label}: lost track of {plan.resource_name} ({type(err).__name__}: {_one_line(str(err))}); "
                f"its outcome is unknown, see {url}"
            )
            log.error(plan.error)
            plan.note(plan.error)
            self._set_state(plan, "WATCH_FAILED")

    def _watch(self, plan: JobPlan) -> None:
        """Poll until the job ends. Transient errors are retried (for up to 10 minutes); anything else ends
        the watch and the job is reported FAILED with its console link."""
        interval = self.poll_interval
        ceiling = max(self.poll_interval * 10, self.poll_interval)
        retry = _read_retry(timeout=600.0)
        while not self.stop.wait(interval):
            job = self.client.get_custom_job(name=plan.resource_name, retry=retry, timeout=60)
            state = job.state.name
            if state != plan.state:
                interval = self.poll_interval
            else:
                interval = min(interval * 1.5, ceiling)
            if state in TERMINAL:
                if state != "JOB_STATE_SUCCEEDED":
                    plan.error = job.error.message or state
                self._finish(plan, state)
                return
            self._set_state(plan, state)

    def _finish(self, plan: JobPlan, state: str) -> None:
        """Read result.json before the state is published, so the outcome is complete when counted."""
        try:
            with self.lock:
                if self._storage is None:
                    self._storage = self._storage_factory()
            result = read_result(self._storage, plan.output_uri)
        except Exception as err:  # e.g. no credentials for Cloud Storage: Vertex's verdict still stands
            log.warning("%s: could not read %s/result.json: %s", plan.label, plan.output_uri, _one_line(str(err)))
            result = None
        plan.result = result or {}
        if result is not None:  # beside the job's local record, where sweep summaries look for it
            (plan.job_dir / "result.json").write_text(json.dumps(result, indent=2))
        if state == "JOB_STATE_SUCCEEDED" and result is None:
            log.warning("%s succeeded on Vertex but wrote no %s/result.json: objective unknown", plan.label, plan.output_uri)
        self._set_state(plan, state)

    # -- the batch
    def run(self, plans: Iterable[JobPlan]) -> None:
        """Submit each job as soon as it is planned, so composing the next overlaps with the last request.

        A job that cannot be planned (a composition error) stops the batch and cancels what was submitted.
        """
        pool = ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="vertex")
        futures: List[Future] = []
        try:
            for plan in plans:
                with self.lock:
                    self.plans.append(plan)
                futures.append(pool.submit(self._run_one, plan))
            pending = set(futures)
            while pending:
                # short waits keep the main thread responsive to Ctrl-C
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for f in futures:
                f.result()
        except BaseException as err:
            self.stop.set()
            why = "interrupted" if isinstance(err, KeyboardInterrupt) else "stopped"
            log.warning("vertex: %s, cancelling the jobs still running", why)
            pool.shutdown(wait=True, cancel_futures=True)
            self.cancel_running()
            raise
        finally:
            pool.shutdown(wait=False)

    def cancel_running(self) -> None:
        retry = _read_retry()
        for plan in self.plans:
            if plan.resource_name and plan.state not in TERMINAL:
                try:
                    self.client.cancel_custom_job(name=plan.resource_name, retry=retry, timeout=30)
                    log.warning("%s cancelled: %s", plan.label, plan.resource_name)
                    plan.note("cancelled (Ctrl-C)")
                except Exception as err:
                    log.error("%s", describe_api_error(err, f"{plan.label} cancel", plan.settings))


def job_return(plan: JobPlan) -> JobReturn:
    """COMPLETED with the float objective only when Vertex and result.json both say the job succeeded."""
    common = dict(
        overrides=plan.overrides,
        cfg=plan.task_cfg,
        hydra_cfg=plan.cfg,
        working_dir=str(plan.job_dir),
        task_name=plan.task_name,
    )
    if plan.state == "SUBMITTED":
        return SubmittedJobReturn(status=JobStatus.UNKNOWN, _return_value=plan.resource_name, **common)
    result_status = plan.result.get("status")
    if plan.state == "JOB_STATE_SUCCEEDED" and result_status in (None, "COMPLETED"):
        objective = plan.result.get("objective")
        value = float(objective) if objective is not None else None
        plan.note(f"COMPLETED objective={value}")
        return JobReturn(status=JobStatus.COMPLETED, _return_value=value, **common)
    message = job_error(plan)
    plan.note(f"FAILED {message}")
    return JobReturn(status=JobStatus.FAILED, _return_value=VertexJobError(message), **common)


def job_error(plan: JobPlan) -> str:
    if plan.state in ("SUBMIT_FAILED", "WATCH_FAILED"):
        return plan.error or "submission failed"
    detail = plan.error or f"result.json says {plan.result.get('status')}"
    message = f"{plan.label} {plan.state.replace('JOB_STATE_', '')} on Vertex ({plan.resource_name}): {_one_line(detail)}"
    if plan.result.get("error"):
        message += f"; job error: {_one_line(plan.result['error'])}"
    return message


def _storage_client(project: Optional[str]) -> Any:
    from google.cloud import storage

    return storage.Client(project=project)


def launch(launcher: Any, *, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    batch_settings = OmegaConf.to_container(config.hydra.launcher, resolve=True)
    assert isinstance(batch_settings, dict)

    configs = SweepConfigs(launcher.hydra_context.config_loader, config)

    def planned() -> Iterator[JobPlan]:
        for i, overrides in enumerate(job_overrides):
            plan = plan_job(launcher, overrides, initial_job_idx + i, sweep_dir, configs)
            log.info("\t#%d : %s", plan.idx, " ".join(_redact_override(o) for o in filter_overrides(plan.overrides)))
            yield plan

    if batch_settings.get("dry_run"):
        plans = list(planned())
        for p in plans:
            print(f"# {p.label}: POST {p.parent}/customJobs")
            print(redacted_json(p.custom_job))
        return [
            SubmittedJobReturn(
                overrides=p.overrides,
                cfg=p.task_cfg,
                hydra_cfg=p.cfg,
                working_dir=str(p.job_dir),
                task_name=p.task_name,
                status=JobStatus.UNKNOWN,
            )
            for p in plans
        ]

    endpoint = str(batch_settings["api_endpoint"])
    jobs = iter(planned())
    first = next(jobs, None)  # settings and composition errors surface before anything is submitted
    if first is None:
        return []
    log.info(
        "vertex: submitting %d job(s) to %s (at most %s at once)", len(job_overrides), endpoint, batch_settings["max_concurrent"]
    )
    try:
        client = client_factory(endpoint, bool(batch_settings.get("insecure")))
    except Exception as err:  # e.g. google.auth DefaultCredentialsError
        raise VertexLaunchError(
            f"cannot create the Vertex client for {endpoint}: {_one_line(str(err))} -- "
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    batch = Batch(
        client,
        len(job_overrides),
        poll_interval=float(batch_settings["poll_interval"]),
        max_concurrent=int(batch_settings["max_concurrent"]),
        wait_for_jobs=bool(batch_settings.get("wait", True)),
        storage_factory=lambda: _storage_client(batch_settings.get("project")),
    )
    batch.run(itertools.chain([first], jobs))
    plans = batch.plans
    returns = [job_return(p) for p in plans]
    ok = sum(r.status == JobStatus.COMPLETED for r in returns)
    failed = [p for p, r in zip(plans, returns) if r.status == JobStatus.FAILED]
    if batch.wait_for_jobs:
        log.info("vertex: %d/%d job(s) succeeded, %d failed", ok, len(plans), len(failed))
    for p in failed:
        if p.state not in ("SUBMIT_FAILED", "WATCH_FAILED"):  # those were reported as they happened
            log.error("%s", job_error(p))
    return returns
