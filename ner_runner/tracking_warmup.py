"""Pay MLflow's start-up cost while the data is converted instead of in front of training.

`import mlflow` (well over a thousand modules) and opening a database store (SQLAlchemy mappers, the
schema check, the model registry's second store) take seconds that mostly wait on files. Started in a
background thread at the top of a run, that work overlaps validation, conversion and config rendering;
the tracked run then finds everything imported and cached. Nothing here creates runs or experiments, and a
failure only means the tracked run does the work itself (and reports any real error).
benchmarks/tracking_cost.py measures what this saves.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"


def start(tracking_uri: str, *, log_model: bool) -> threading.Thread:
    """Begin warming up in a daemon thread; `join()` it before the tracked run starts."""
    thread = threading.Thread(
        target=_warm_up, args=(tracking_uri, log_model), name="mlflow-warmup", daemon=True
    )
    thread.start()
    return thread


def _warm_up(tracking_uri: str, log_model: bool) -> None:
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient

        if log_model:
            import mlflow.spacy  # noqa: F401

        if _existing_sqlite_store(tracking_uri):
            # Read-only calls that open the tracking and registry stores, which MLflow caches per URI.
            # A new store is left to the tracked run: a run that fails validation creates no database,
            # and no schema is ever half-written by a thread the interpreter stops at exit.
            client = MlflowClient(tracking_uri)
            client.search_experiments(max_results=1)
            if log_model:
                client.search_registered_models(max_results=1)
        if log_model:
            _warm_requirement_check()
    except Exception as err:  # the tracked run repeats this work and reports real errors
        log.debug("MLflow warm-up skipped: %s", err)


def _existing_sqlite_store(tracking_uri: str) -> bool:
    """A sqlite store whose file is already there (other stores are remote: no network calls here)."""
    if not tracking_uri.startswith(SQLITE):
        return False
    return Path(tracking_uri[len(SQLITE) :]).expanduser().is_file()


def _warm_requirement_check() -> Optional[bool]:
    """Logging a model checks its pip requirements against every installed distribution; index them now."""
    try:
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map
    except ImportError:  # moved in another MLflow version: the model logging does it itself
        return None
    _init_packages_to_modules_map()
    return True
