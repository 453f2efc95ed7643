"""The spaCy logger: valid MLflow names for any label, metrics at eval steps only, never stops training."""

from __future__ import annotations

import io

import pytest
import spacy

from ner_runner import spacy_logger
from ner_runner.spacy_config import LOGGER_NAME

INFO = {
    "epoch": 1,
    "step": 200,
    "score": 0.5,
    "losses": {"ner": 12.5, "tok2vec": 3.0},
    "other_scores": {
        "ents_f": 0.5,
        "ents_p": 0.6,
        "ents_r": 0.4,
        "speed": 1234.0,
        "ents_per_type": {"ORG+CO": {"p": 1.0, "r": 0.5, "f": 0.667}, "a b/../c": {"p": 0.0, "r": 0.0, "f": 0.0}},
    },
    "checkpoints": [],
    "seconds": 0,
    "words": 5000,
}


def test_metric_names_are_valid_for_any_label():
    from mlflow.utils.validation import _validate_metric_name

    metrics = spacy_logger.step_metrics(INFO)
    assert metrics["ents_per_type/ORG_CO/f"] == pytest.approx(0.667)
    assert metrics["loss/ner"] == 12.5 and metrics["eval_words_per_second"] == 1234.0
    assert "ents_per_type/a_b____c/p" in metrics
    for name in metrics:
        _validate_metric_name(name)


class _Sink:
    def __init__(self, fail: bool = False):
        self.fail, self.logged = fail, []

    def log_metrics(self, metrics, step):
        if self.fail:
            raise ConnectionError("tracking server gone")
        self.logged.append((step, metrics))


def _log_step():
    setup = spacy.registry.loggers.get(LOGGER_NAME)(console=False)
    out = io.StringIO()
    log_step, finalize = setup(spacy.blank("en"), out, out)
    return log_step, finalize


@pytest.fixture(autouse=True)
def _no_sink_left():
    yield
    spacy_logger.set_active_sink(None)


def test_logs_eval_steps_with_their_step_and_skips_other_steps():
    sink = _Sink()
    spacy_logger.set_active_sink(sink)
    log_step, finalize = _log_step()
    log_step(None)  # a training step without evaluation
    log_step({**INFO, "step": 0, "words": 0})
    log_step(INFO)
    finalize()
    assert [step for step, _ in sink.logged] == [0, 200]
    assert sink.logged[1][1]["ents_f"] == 0.5
    assert sink.logged[1][1]["train_words_per_second"] > 0


def test_a_failing_sink_never_stops_training():
    spacy_logger.set_active_sink(_Sink(fail=True))
    log_step, finalize = _log_step()
    log_step(INFO)  # must not raise
    finalize()


def test_without_a_run_it_is_only_the_console_logger():
    log_step, finalize = _log_step()
    log_step(INFO)
    finalize()
