"""Per-step dev scores to a live Optuna trial, so a sweep can stop a weak trial early.

The Optuna sweeper registers each trial it launches in this process under a token and puts the token
in the job's environment (`hydra.job.env_set`); the spaCy logger reports every evaluation to the trial
the token names and raises `optuna.TrialPruned` when the study's pruner says so. Only jobs that run in
the sweeper's process (Hydra's basic launcher) see a registered trial; anywhere else, including remote
launchers, reporting is a no-op. Nothing here imports optuna.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, Optional

ENV_VAR = "NER_RUNNER_PRUNING_TRIAL"

_lock = threading.Lock()
_trials: Dict[str, Any] = {}


def register(token: str, trial: Any) -> None:
    with _lock:
        _trials[token] = trial


def unregister(token: str) -> None:
    with _lock:
        _trials.pop(token, None)


def current_trial() -> Optional[Any]:
    """The trial this job reports to, read when training starts (the job's environment names it)."""
    token = os.environ.get(ENV_VAR)
    if not token:
        return None
    with _lock:
        return _trials.get(token)


def report(trial: Any, step: int, score: float) -> None:
    """Give the trial this step's dev score; raise optuna.TrialPruned if the pruner stops it."""
    trial.report(score, step)
    if trial.should_prune():
        import optuna

        raise optuna.TrialPruned(f"trial {trial.number} pruned at step {step} (dev score {score:.4f})")


def is_pruned(err: BaseException) -> bool:
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(err, optuna.TrialPruned)
