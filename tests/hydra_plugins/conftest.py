"""Fixtures for the Vertex launcher: a GCS emulator, the fake JobService, and an in-process launch helper."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pytest

from tests.conftest import ROOT

BUCKET = "ner-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs() -> Iterator[Any]:
    """gcp-storage-emulator on a free port; STORAGE_EMULATOR_HOST points every storage client at it."""
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        yield storage.Client(project="test")
    finally:
        server.stop()
        if old is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = old


def read_gcs_json(client: Any, uri: str) -> Optional[Dict[str, Any]]:
    bucket, _, name = uri[len("gs://") :].partition("/")
    blob = client.bucket(bucket).blob(name)
    return json.loads(blob.download_as_text()) if blob.exists() else None


def write_result(client: Any, output_uri: str, **result: Any) -> None:
    """What the container does at the end of a job (used where the fake decides outcomes without running)."""
    bucket, _, prefix = output_uri[len("gs://") :].partition("/")
    client.bucket(bucket).blob(f"{prefix}/result.json").upload_from_string(json.dumps(result))


def launcher_overrides(fake: Any, tmp: Path, *extra: str) -> List[str]:
    """Hydra overrides that point the vertex launcher at the fake and the emulator bucket."""
    return [
        "gcp.project=test-project",
        f"gcp.bucket={BUCKET}",
        f"hydra.launcher.api_endpoint={fake.address}",
        "hydra.launcher.insecure=true",
        "hydra.launcher.poll_interval=0.02",
        f"hydra.sweep.dir={tmp / 'multirun' / tmp.name}",  # unique gs:// prefix per test
        f"hydra.run.dir={tmp / 'run'}",
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        *extra,
    ]


def launch(overrides: Sequence[str], jobs: Sequence[Sequence[str]]) -> List[Any]:
    """Compose the app as `run.py -m` would and hand `jobs` to the configured launcher; returns its JobReturns.

    Unlike a whole `hydra.main` multirun this keeps FAILED returns inspectable instead of raising the first.
    Each job's overrides are the task overrides in `overrides` followed by its own.
    """
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    from ner_runner.schema import register_configs
    from ner_runner.task import run_task

    register_configs()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    cfg = loader.load_configuration("config", overrides=list(overrides), run_mode=RunMode.MULTIRUN)
    HydraConfig.instance().set_config(cfg)
    ctx = HydraContext(config_loader=loader, callbacks=Callbacks(cfg))
    launcher = Plugins.instance().instantiate_launcher(hydra_context=ctx, task_function=run_task, config=cfg)
    # like Hydra's sweepers: every job carries all task overrides, the hydra ones live in the config
    task = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    return list(launcher.launch([task + list(j) for j in jobs], initial_job_idx=0))
