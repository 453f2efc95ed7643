"""How long the Vertex launcher takes to submit a 20-job sweep (the fake JobService on 127.0.0.1).

    python benchmarks/vertex_submit.py

Timed: composing each job's config, building its CustomJob and CreateCustomJob over real gRPC, with the
launcher's defaults (wait=false: submit and return). Printed beside it, from the same run: the same sweep
submitted one job at a time (max_concurrent=1, the baseline) and the full round trip with wait=true
(submit, poll until every job finished, read each result.json from the GCS emulator).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from tests.hydra_plugins.conftest import BUCKET, free_port, launch, launcher_overrides  # noqa: E402

JOBS = 20
GOAL_S = 2.0
CPU: dict = {}


def timed(fake: Any, tmp: Path, name: str, *extra: str) -> float:
    import logging

    (tmp / name).mkdir()
    CPU[name] = time.process_time()
    started = time.perf_counter()
    returns = launch(
        launcher_overrides(fake, tmp / name, "launcher=vertex", "hydra.launcher.poll_interval=0.05", *extra),
        [[f"hyperparameters.seed={n}"] for n in range(JOBS)],
    )
    elapsed = time.perf_counter() - started
    CPU[name] = time.process_time() - CPU[name]
    assert len(returns) == JOBS and all(r.status.name != "FAILED" for r in returns)
    return elapsed


def main() -> None:
    import logging

    from gcp_storage_emulator.server import create_server

    service = None
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        # the service runs in its own process, as Vertex does: its CPU is not charged to the launcher
        service = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.vertex_jobservice"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        fake = SimpleNamespace(address=service.stdout.readline().strip())
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            timed(fake, tmp, "warmup", "hydra.launcher.wait=false")  # imports, gRPC channel, first composition
            baseline = timed(fake, tmp, "sequential", "hydra.launcher.wait=false", "hydra.launcher.max_concurrent=1")
            submit = timed(fake, tmp, "submit", "hydra.launcher.wait=false")
            round_trip = timed(fake, tmp, "round_trip")
        service.stdin.close()
        service.wait(timeout=30)
    finally:
        if service is not None and service.poll() is None:
            service.kill()
        server.stop()
    print(f"vertex submit {JOBS} jobs: {submit:.2f} s (goal <= {GOAL_S:.2f})")
    # wall time follows the machine's load; the CPU this process spent does not
    print(f"  cpu time of this process: {CPU['submit']:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  baseline, one at a time (max_concurrent=1): {baseline:.2f} s -> {baseline / submit:.2f}x")
    print(f"  round trip, wait=true (submit, poll to SUCCEEDED, read result.json): {round_trip:.2f} s")
    sys.exit(0 if submit <= GOAL_S else 1)


if __name__ == "__main__":
    main()
