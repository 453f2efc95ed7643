"""Extra wall time that tracking to a local MLflow server adds to a CPU training run.

Runs the same `python run.py` twice on fashion_brands, once with `tracking.enabled=false` (the baseline)
and once with `tracking=server` against a real `mlflow server` on 127.0.0.1 whose artifacts go to a GCS
emulator bucket, and prints both wall times and the ratio. Usage:

    python benchmarks/tracking_overhead.py [--steps 1000] [--data ../shared/data/fashion_brands]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import GcsEmulator, MlflowServer  # noqa: E402


def timed_run(args, env) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run.py failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fashion_brands")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as tmp:
        tmp = Path(tmp)
        emulator = GcsEmulator().start()
        server = MlflowServer(tmp / "server", artifacts_destination=f"gs://{emulator.bucket}/mlflow",
                              env=emulator.env()).start()
        try:
            common = [
                f"data.train={args.data / 'train.jsonl'}", f"data.dev={args.data / 'dev.jsonl'}",
                "phase.labels=[FASHION_BRAND]", "phase.experiment=fashion-bench",
                "phase.registered_model=fashion-bench", f"hyperparameters.max_steps={args.steps}",
                f"data.cache_dir={tmp / 'cache'}",
            ]
            baseline = timed_run([*common, "tracking.enabled=false", f"hydra.run.dir={tmp / 'off'}"], env)
            tracked = timed_run([*common, "tracking=server", f"tracking.uri={server.uri}",
                                 f"hydra.run.dir={tmp / 'on'}"], env)
        finally:
            server.kill()
            emulator.stop()
    print(f"{args.steps}-step CPU run on {args.data.name}:")
    print(f"  tracking.enabled=false : {baseline:7.1f} s")
    print(f"  tracking=server (local): {tracked:7.1f} s")
    print(f"  extra: {tracked - baseline:+.1f} s  (ratio {tracked / baseline:.3f})")


if __name__ == "__main__":
    main()
