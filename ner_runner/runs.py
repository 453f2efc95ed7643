"""`ner-runner runs --phase phase1`: a phase's MLflow runs as a table, best dev ents_f first.

For people on a terminal; the MLflow UI stays the place to compare runs in depth. The experiment name
comes from the composed Hydra config (`conf/`, `phase=<phase>`), so it always matches where `run.py`
logs that phase.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence

from .errors import NerRunnerError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # as conf/tracking/local.yaml
F_METRIC = "dev_ents_f"
PER_TYPE_PREFIX = "dev_ents_per_type/"
# overrides that say where things are rather than what was trained: left out of the table
NOISE_PREFIXES = ("hydra.", "tracking.", "data.train=", "data.dev=", "data.cache_dir=", "launcher=")
MAX_OVERRIDES_WIDTH = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phase", required=True, help="phase config name, e.g. phase1 (conf/phase/)")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help=f"MLflow tracking URI (default: MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})",
    )
    parser.add_argument("--limit", type=int, default=20, help="show at most this many runs (default 20)")
    parser.add_argument("--worst", type=int, default=3, help="entity types shown per run, worst F first (default 3)")


def phase_experiment(phase: str, conf_dir: Path = CONF_DIR) -> str:
    """The MLflow experiment of a phase, read from the composed config."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from .schema import register_configs

    if not (conf_dir / "config.yaml").is_file():
        raise NerRunnerError(f"no Hydra config at {conf_dir} (run from a checkout of the project)")
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose("config", overrides=[f"phase={phase}"])
    except HydraException as err:
        phases = sorted(p.stem for p in (conf_dir / "phase").glob("*.yaml"))
        first = (str(err).strip().splitlines() or [""])[0]
        raise NerRunnerError(f"cannot compose phase={phase!r} ({first}); phases: {', '.join(phases)}") from err
    return str(OmegaConf.select(cfg, "tracking.experiment"))


def key_overrides(overrides: str) -> str:
    """Hydra's override_dirname without the bookkeeping ones (paths, tracking, hydra.*)."""
    parts = [p for p in overrides.split(",") if p and not p.startswith(NOISE_PREFIXES)] if overrides else []
    text = ",".join(parts) or "(defaults)"
    return text if len(text) <= MAX_OVERRIDES_WIDTH else text[: MAX_OVERRIDES_WIDTH - 1] + "…"


def worst_types(metrics: Dict[str, float], n: int) -> List[tuple]:
    """(label, F) of the n lowest-F entity types from the run's dev_ents_per_type/<label>/f metrics."""
    per_type = [
        (key[len(PER_TYPE_PREFIX) : -len("/f")], value)
        for key, value in metrics.items()
        if key.startswith(PER_TYPE_PREFIX) and key.endswith("/f")
    ]
    return sorted(per_type, key=lambda kv: (kv[1], kv[0]))[: max(n, 0)]


def fetch_runs(tracking_uri: str, experiment: str, limit: int) -> List[Any]:
    """Best dev ents_f first (runs without it last, newest first among them)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    from mlflow.tracking import MlflowClient

    from .tracking import redact_uri

    try:
        client = MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return list(
            client.search_runs(
                [exp.experiment_id],
                order_by=[f"metrics.{F_METRIC} DESC", "attributes.start_time DESC"],
                max_results=limit,
            )
        )
    except Exception as err:
        raise NerRunnerError(f"cannot read runs from {redact_uri(tracking_uri)}: {err}") from err


def runs_table(runs: Sequence[Any], worst: int = 3) -> List[List[str]]:
    """Rows: date, key overrides, dev ents_f, worst types' F, run id, status."""
    rows = []
    for run in runs:
        metrics = run.data.metrics
        started = dt.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M")
        f = metrics.get(F_METRIC)
        types = "  ".join(f"{label} {value:.3f}" for label, value in worst_types(metrics, worst))
        rows.append(
            [
                started,
                key_overrides(run.data.tags.get("overrides", "")),
                "-" if f is None else f"{f:.4f}",
                types or "-",
                run.info.run_id,
                run.info.status,
            ]
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from .report import format_table

    if args.limit < 1:
        raise NerRunnerError(f"--limit must be at least 1 (got {args.limit})")
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    experiment = phase_experiment(args.phase)
    runs = fetch_runs(tracking_uri, experiment, args.limit)
    from .tracking import redact_uri

    where = f"experiment {experiment!r} at {redact_uri(tracking_uri)}"
    if not runs:
        print(f"no runs in {where}")
        return 0
    print(f"{where}: best dev ents_f first (at most {args.limit})\n")
    header = ["date", "key overrides", "dev ents_f", "worst types (F)", "run id", "status"]
    print(format_table(runs_table(runs, args.worst), header, align="llrlll"))
    return 0
