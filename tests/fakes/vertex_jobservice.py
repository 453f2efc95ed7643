"""A Vertex AI JobService on 127.0.0.1 that the real `aiplatform_v1.JobServiceClient` talks to over gRPC.

It speaks the real wire format (the `aiplatform_v1` proto-plus types) for CreateCustomJob, GetCustomJob and
CancelCustomJob, and moves each job PENDING -> RUNNING -> SUCCEEDED/FAILED, one step per GetCustomJob.
With `execute=[python, run.py]` a job's container args really run as a subprocess against the local
checkout (the image's entrypoint replaced by the checkout), so a job succeeds only if its argv is a valid CLI.

    with FakeJobService(execute=[sys.executable, "run.py"], workdir=tmp) as fake:
        client = make_client(fake.address, insecure=True)
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc
from google.cloud import aiplatform_v1 as v1

SERVICE = "google.cloud.aiplatform.v1.JobService"
S = v1.JobState

#: decides a job's fate without running it: None succeeds, a string fails it with that error message
Outcome = Callable[[v1.CustomJob], Optional[str]]
#: rejects a CreateCustomJob request: (grpc.StatusCode, message) or None to accept
Rejection = Callable[[v1.CreateCustomJobRequest], Optional[Tuple[grpc.StatusCode, str]]]


@dataclass
class _Job:
    job: v1.CustomJob
    polls: int = 0
    proc: Optional[subprocess.Popen] = None
    output: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class FakeJobService:
    def __init__(
        self,
        *,
        outcome: Optional[Outcome] = None,
        reject: Optional[Rejection] = None,
        get_error: Optional[Callable[[v1.CustomJob], Optional[Tuple[grpc.StatusCode, str]]]] = None,
        execute: Optional[Sequence[str]] = None,
        workdir: Optional[Path] = None,
        env: Optional[Dict[str, str]] = None,
        hold: bool = False,
        polls_per_state: int = 1,
        project_number: str = "123456789",
    ):
        self.outcome = outcome
        self.reject = reject
        self.get_error = get_error  # makes GetCustomJob fail for chosen jobs
        self.execute = list(execute) if execute else None
        self.workdir = Path(workdir) if workdir else None
        self.env = dict(env or {})
        self.hold = hold  # keep jobs RUNNING until cancelled
        self.polls_per_state = max(1, polls_per_state)
        self.project_number = project_number
        self.jobs: Dict[str, _Job] = {}
        self.created: List[v1.CreateCustomJobRequest] = []
        self.cancelled: List[str] = []
        self.calls: List[str] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server: Optional[grpc.Server] = None
        self.port = 0

    # ------------------------------------------------------------------ server
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "FakeJobService":
        def unary(fn, req_type, resp_serializer):
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req_type.deserialize, response_serializer=resp_serializer
            )

        handlers = {
            "CreateCustomJob": unary(self._create, v1.CreateCustomJobRequest, v1.CustomJob.serialize),
            "GetCustomJob": unary(self._get, v1.GetCustomJobRequest, v1.CustomJob.serialize),
            "CancelCustomJob": unary(self._cancel, v1.CancelCustomJobRequest, lambda _: b""),
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        for j in self.jobs.values():
            if j.proc and j.proc.poll() is None:
                j.proc.kill()
        if self._server is not None:
            self._server.stop(grace=None)

    def __enter__(self) -> "FakeJobService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ RPCs
    def _create(self, request: v1.CreateCustomJobRequest, context: grpc.ServicerContext) -> v1.CustomJob:
        self.calls.append("CreateCustomJob")
        if self.reject:
            rejection = self.reject(request)
            if rejection:
                context.abort(*rejection)
        parts = request.parent.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad parent {request.parent!r}")
        job = v1.CustomJob(request.custom_job)
        job.name = f"projects/{self.project_number}/locations/{parts[3]}/customJobs/{next(self._ids)}"
        job.state = S.JOB_STATE_PENDING
        with self._lock:
            self.created.append(request)
            self.jobs[job.name] = _Job(job=job)
        return job

    def _get(self, request: v1.GetCustomJobRequest, context: grpc.ServicerContext) -> v1.CustomJob:
        self.calls.append("GetCustomJob")
        j = self.jobs.get(request.name)
        if j is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        failure = self.get_error(j.job) if self.get_error else None
        if failure:
            context.abort(*failure)
        with self._lock:
            self._advance(j)
            return v1.CustomJob(j.job)

    def _cancel(self, request: v1.CancelCustomJobRequest, context: grpc.ServicerContext):
        self.calls.append("CancelCustomJob")
        j = self.jobs.get(request.name)
        if j is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        with self._lock:
            self.cancelled.append(request.name)
            if j.proc and j.proc.poll() is None:
                j.proc.kill()
            if j.job.state not in (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED):
                j.job.state = S.JOB_STATE_CANCELLED
                j.job.error.message = "CANCELED"
        return None

    # ------------------------------------------------------------------ lifecycle
    def _advance(self, j: _Job) -> None:
        state = j.job.state
        if state in (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED, S.JOB_STATE_CANCELLED):
            return
        j.polls += 1
        if state == S.JOB_STATE_PENDING and j.polls >= self.polls_per_state:
            j.job.state, j.polls = S.JOB_STATE_RUNNING, 0
            if self.execute:
                self._spawn(j)
            return
        if state != S.JOB_STATE_RUNNING or self.hold:
            return
        if self.execute:
            if j.done.is_set():
                self._settle(j, None if j.proc.returncode == 0 else self._exit_message(j))
            return
        if j.polls >= self.polls_per_state:
            self._settle(j, self.outcome(j.job) if self.outcome else None)

    def _settle(self, j: _Job, error: Optional[str]) -> None:
        if error is None:
            j.job.state = S.JOB_STATE_SUCCEEDED
        else:
            j.job.state = S.JOB_STATE_FAILED
            j.job.error.code = 3
            j.job.error.message = error

    @staticmethod
    def _exit_message(j: _Job) -> str:
        # what Vertex reports for a container that exits non-zero
        return (
            f"The replica workerpool0-0 exited with a non-zero status of {j.proc.returncode}. "
            "To find out more about why your job exited please check the logs."
        )

    def _spawn(self, j: _Job) -> None:
        container = j.job.job_spec.worker_pool_specs[0].container_spec
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env.update(self.env)
        env.update({e.name: e.value for e in container.env})
        cwd = (self.workdir or Path.cwd()) / j.job.name.rsplit("/", 1)[1]
        cwd.mkdir(parents=True, exist_ok=True)
        j.proc = subprocess.Popen(
            [*self.execute, *container.args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def reap() -> None:
            j.output, _ = j.proc.communicate()
            j.done.set()

        threading.Thread(target=reap, daemon=True).start()

    # ------------------------------------------------------------------ for assertions
    def job_by_display_name(self, suffix: str) -> _Job:
        return next(j for j in self.jobs.values() if j.job.display_name.endswith(suffix))


def main() -> None:
    """`python -m tests.fakes.vertex_jobservice`: serve in its own process (as the real service is), print the
    address, stop when stdin closes."""
    import sys

    with FakeJobService() as fake:
        print(fake.address, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
