"""The spaCy logger reports per-step dev scores to a registered Optuna trial, which may prune it."""

from __future__ import annotations

import optuna
import pytest
import spacy

from ner_runner import trial_pruning
from ner_runner.spacy_config import LOGGER_NAME
from ner_runner.spacy_logger import mlflow_logger  # noqa: F401  registers the logger


def _info(step: int, f: float) -> dict:
    return {
        "epoch": 0, "step": step, "score": f, "other_scores": {"ents_f": f, "ents_p": f, "ents_r": f},
        "losses": {"ner": 1.0}, "checkpoints": [], "seconds": 0, "words": 10 * step,
    }


def _log_step():
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    log_step, _ = spacy.registry.loggers.get(LOGGER_NAME)(console=False)(nlp)
    return log_step


def test_a_weak_trial_is_pruned_from_its_step_scores(monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    strong = study.ask()
    for step in (0, 5, 10):
        strong.report(0.1 * step, step)
    study.tell(strong, 1.0)

    weak = study.ask()
    trial_pruning.register("t-weak", weak)
    monkeypatch.setenv(trial_pruning.ENV_VAR, "t-weak")
    try:
        log_step = _log_step()
        log_step(_info(0, 0.0))  # ties the median: goes on
        with pytest.raises(optuna.TrialPruned, match="pruned at step 5"):
            log_step(_info(5, 0.1))
    finally:
        trial_pruning.unregister("t-weak")
    assert study.trials[1].intermediate_values == {0: 0.0, 5: 0.1}
    assert trial_pruning.is_pruned(optuna.TrialPruned()) and not trial_pruning.is_pruned(ValueError())


def test_without_a_registered_trial_nothing_is_reported(monkeypatch):
    monkeypatch.setenv(trial_pruning.ENV_VAR, "nobody")
    log_step = _log_step()
    log_step(_info(0, 0.0))  # no trial under this token: plain logging
    monkeypatch.delenv(trial_pruning.ENV_VAR)
    assert trial_pruning.current_trial() is None
