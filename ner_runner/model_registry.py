"""The model in MLflow: spaCy flavor plus our NER pyfunc, registered versions and promotion.

The model is saved into the run directory first (no server needed), then delivered as the run's `model`
artifact; registration is idempotent per run so a resend after an outage never adds a second version.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

log = logging.getLogger(__name__)

CHAMPION = "champion"
CANDIDATE = "candidate"
SCORE_TAG = "dev_ents_f"
PYFUNC_MODULE = "spacy_ner_pyfunc"


def save_model(nlp: Any, path: Path, *, pip_requirements: Iterable[str]) -> Path:
    """MLflow model directory with the spaCy flavor and a pyfunc that returns entity spans."""
    import shutil

    import mlflow.spacy
    from mlflow import pyfunc
    from mlflow.models import Model

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    model = Model()
    # the data dir and env file names are the ones mlflow.spacy.save_model writes
    pyfunc.add_to_model(
        model,
        loader_module=PYFUNC_MODULE,
        data="model.spacy",
        code="code",
        conda_env="conda.yaml",
        python_env="python_env.yaml",
    )
    # its "only the spacy flavor" warning is about its own pyfunc; ours is already in `model`
    flavor_log = logging.getLogger("mlflow.spacy")
    level = flavor_log.level
    flavor_log.setLevel(logging.ERROR)
    try:
        mlflow.spacy.save_model(
            nlp,
            str(path),
            mlflow_model=model,
            code_paths=[str(Path(__file__).with_name(f"{PYFUNC_MODULE}.py"))],
            pip_requirements=list(pip_requirements),
        )
    finally:
        flavor_log.setLevel(level)
    return path


def _version_for_run(client: Any, name: str, run_id: str) -> Optional[Any]:
    for mv in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
        return mv
    return None


def _champion(client: Any, name: str) -> Optional[Any]:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except Exception as err:
        if getattr(err, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _score(client: Any, mv: Any) -> Optional[float]:
    value = (mv.tags or {}).get(SCORE_TAG)
    if value is None and mv.run_id:
        value = client.get_run(mv.run_id).data.metrics.get(SCORE_TAG)
    return None if value is None else float(value)


def register_model_version(
    client: Any,
    *,
    name: str,
    run_id: str,
    artifact_path: str,
    scores: Mapping[str, float],
    promote: bool,
) -> Dict[str, Any]:
    """Register the run's model once, tag it with its dev scores, set `candidate` and maybe `champion`."""
    try:
        client.create_registered_model(name)
    except Exception as err:
        if getattr(err, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
            raise
    mv = _version_for_run(client, name, run_id)
    description = "dev " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items()) if k.count("/") == 0)
    if mv is None:
        mv = client.create_model_version(
            name,
            source=f"runs:/{run_id}/{artifact_path}",
            run_id=run_id,
            tags={k: str(v) for k, v in scores.items()},
            description=description,
        )
    else:
        for k, v in scores.items():
            client.set_model_version_tag(name, mv.version, k, str(v))
    version = str(mv.version)
    client.set_registered_model_alias(name, CANDIDATE, version)
    aliases = [CANDIDATE]
    if promote:
        new = scores.get(SCORE_TAG)
        current = _champion(client, name)
        old = _score(client, current) if current is not None else None
        if current is not None and str(current.version) == version:
            aliases.append(CHAMPION)
        elif new is not None and (current is None or old is None or new > old):
            client.set_registered_model_alias(name, CHAMPION, version)
            aliases.append(CHAMPION)
            log.info("%s version %s is the new champion (dev ents_f %.4f > %s)", name, version, new, old)
        else:
            log.info("%s version %s stays candidate: dev ents_f %s <= champion's %s", name, version, new, old)
    return {"name": name, "version": version, "aliases": aliases}
