"""Real servers for tests, on 127.0.0.1 and free ports: a GCS emulator and an `mlflow server`.

Import these from any test (`from tests.servers import GcsEmulator, MlflowServer`) or use the fixtures
in tests/conftest.py (`gcs_emulator`, `mlflow_server`). The MLflow server stores runs in sqlite and
artifacts in the emulator's bucket through proxied artifact access, as the team's server does on GCS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout_s: float, proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except Exception:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


class GcsEmulator:
    """`gcp-storage-emulator` in this process (a thread), in memory, with one bucket."""

    def __init__(self, bucket: str = "ner-models", port: Optional[int] = None):
        self.bucket = bucket
        self.port = port or free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> "GcsEmulator":
        from gcp_storage_emulator.server import create_server

        self._server = create_server("127.0.0.1", self.port, in_memory=True, default_bucket=self.bucket)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def env(self) -> Dict[str, str]:
        """What a process needs to reach the emulator instead of GCS."""
        return {"STORAGE_EMULATOR_HOST": self.host, "GOOGLE_CLOUD_PROJECT": "test-project"}

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        os.environ["STORAGE_EMULATOR_HOST"] = self.host
        return storage.Client(project="test-project", credentials=AnonymousCredentials())

    def object_names(self, prefix: str = "") -> list:
        return [b.name for b in self.client().list_blobs(self.bucket, prefix=prefix)]


class MlflowServer:
    """A real `mlflow server` subprocess; `kill()` and `start()` again keep its port and stores."""

    def __init__(self, workdir: Path, *, artifacts_destination: str, env: Optional[Dict[str, str]] = None,
                 port: Optional[int] = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.backend_uri = f"sqlite:///{self.workdir / 'mlflow.db'}"
        self.artifacts_destination = artifacts_destination
        self.env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.workdir / "server.log"

    def start(self, timeout_s: float = 90) -> "MlflowServer":
        env = {**os.environ, **self.env, "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLFLOW_TRACKING_URI", None)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "mlflow", "server",
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--workers", "1",
                    "--backend-store-uri", self.backend_uri,
                    "--artifacts-destination", self.artifacts_destination,
                ],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_for_http(f"{self.uri}/health", timeout_s, self.proc)
        except Exception:
            self.kill()
            raise RuntimeError(f"mlflow server did not start:\n{self.log_path.read_text()[-3000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL the server and its workers: an outage, not a clean shutdown."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None
        # the port is free again once nothing listens on it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    stop = kill


# --------------------------------------------------------------------------- pytest fixtures
# Re-exported by tests/conftest.py; function-scoped tests that kill a server build their own MlflowServer.

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gcs_emulator():
    emu = GcsEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, gcs_emulator):
    """A real `mlflow server` storing artifacts in the emulator's bucket under `mlflow/`."""
    srv = MlflowServer(
        tmp_path_factory.mktemp("mlflow-server"),
        artifacts_destination=f"gs://{gcs_emulator.bucket}/mlflow",
        env=gcs_emulator.env(),
    ).start()
    yield srv
    srv.kill()
