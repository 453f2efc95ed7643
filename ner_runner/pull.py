"""`ner-runner pull`: fetch a trained pipeline from MLflow into a directory that `spacy.load` reads.

By run (`--run-id`) or by registered model (`--model NAME` with `--alias` or `--version`). Artifacts come
through the tracking server (proxied GCS), so no bucket credentials are needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Tuple

from .errors import NerRunnerError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the MLflow run that logged the model")
    which.add_argument("--model", help="registered model name (with --alias or --version)")
    ver = p.add_mutually_exclusive_group()
    ver.add_argument("--alias", help="registered model alias, e.g. champion")
    ver.add_argument("--version", help="registered model version number")
    p.add_argument("--dest", required=True, type=Path, help="directory to write the spaCy pipeline to")
    p.add_argument("--artifact-path", default="model", help="the model's artifact path in the run (default: model)")
    p.add_argument("--tracking-uri", default=None,
                   help=f"MLflow tracking URI (default: MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})")
    p.add_argument("--force", action="store_true", help="replace --dest if it is not empty")
    p.add_argument("--timeout-s", type=float, default=15.0, help="bound on the server check (default 15)")


def model_uri(args: argparse.Namespace) -> str:
    if args.run_id:
        if args.alias or args.version:
            raise NerRunnerError("--alias/--version go with --model, not with --run-id")
        return f"runs:/{args.run_id}/{args.artifact_path}"
    if args.alias:
        return f"models:/{args.model}@{args.alias}"
    if args.version:
        return f"models:/{args.model}/{args.version}"
    raise NerRunnerError("--model needs --alias or --version (e.g. --alias champion)")


def pull(uri: str, dest: Path, *, tracking_uri: str, force: bool = False, timeout_s: float = 15.0) -> Tuple[Path, Any]:
    """Download the model at `uri`, place its spaCy pipeline at `dest`; returns (dest, loaded nlp)."""
    dest = Path(dest).expanduser().resolve()
    occupied = dest.is_file() or (dest.is_dir() and any(dest.iterdir()))
    if occupied and not force:
        raise NerRunnerError(f"{dest} exists and is not empty (use --force to replace it)")

    import mlflow
    import spacy
    import yaml

    from .tracking import check_tracking_server, redact_uri

    check_tracking_server(tracking_uri, timeout_s)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="ner-runner-pull-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except Exception as err:
            raise NerRunnerError(f"cannot download {uri} from {redact_uri(tracking_uri)}: "
                                 f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
        mlmodel = local / "MLmodel"
        if not mlmodel.is_file():
            raise NerRunnerError(f"{uri} is not an MLflow model (no MLmodel file)")
        flavors = yaml.safe_load(mlmodel.read_text()).get("flavors", {})
        if "spacy" not in flavors:
            raise NerRunnerError(f"{uri} is not a spaCy model (flavors: {', '.join(flavors) or 'none'})")
        pipeline = local / flavors["spacy"].get("data", "model.spacy")
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(pipeline, dest)
    try:
        nlp = spacy.load(dest)
    except Exception as err:
        raise NerRunnerError(f"the pipeline pulled to {dest} does not load with spacy.load: {err}") from err
    return dest, nlp


def run(args: argparse.Namespace) -> int:
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    uri = model_uri(args)
    dest, nlp = pull(uri, args.dest, tracking_uri=tracking_uri, force=args.force, timeout_s=args.timeout_s)
    labels = ", ".join(nlp.get_pipe("ner").labels) if "ner" in nlp.pipe_names else ""
    print(f"pulled {uri} -> {dest}")
    print(f"  pipeline: {', '.join(nlp.pipe_names)}; labels: {labels}; spacy.load('{dest}') works")
    return 0
