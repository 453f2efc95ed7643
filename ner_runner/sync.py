"""`ner-runner sync RUN_DIR`: deliver what a run could not send to MLflow while the server was away."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory (holds tracking/outbox.jsonl)")
    p.add_argument("--tracking-uri", default=None,
                   help="the MLflow server (default: MLFLOW_TRACKING_URI, else the run's own, if it had no credentials)")
    p.add_argument("--timeout-s", type=float, default=15.0, help="bound on each server call (default 15)")


def run(args: argparse.Namespace) -> int:
    from .tracking import sync_run_dir

    result = sync_run_dir(args.run_dir, args.tracking_uri, timeout_s=args.timeout_s)
    print(f"{args.run_dir}: delivered {result['delivered']} record(s), {result['left']} left")
    return 0 if result["left"] == 0 else 1
