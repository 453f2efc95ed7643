"""The spaCy training logger that feeds MLflow.

Registered in spaCy's registry (and as a `spacy_loggers` entry point, so a plain `spacy train` of a rendered
config finds it). It chains spaCy's console logger and hands each evaluation step's metrics to the active
`MetricSink`, which delivers them in the background: it never starts or ends runs, never blocks training,
and no tracking error can stop training. With no active sink it is just the console logger.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import time
from typing import IO, Any, Callable, Dict, Optional, Tuple

import spacy

from . import trial_pruning
from .spacy_config import LOGGER_NAME

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")

_ACTIVE_SINK: Optional[Any] = None


def set_active_sink(sink: Optional[Any]) -> None:
    """Point the logger at a sink (or at nothing); owned by the tracking run."""
    global _ACTIVE_SINK
    _ACTIVE_SINK = sink


def active_sink() -> Optional[Any]:
    return _ACTIVE_SINK


def metric_key(*parts: str) -> str:
    """A valid MLflow metric name for any label: unsafe characters become `_`."""
    return "/".join(_UNSAFE.sub("_", p) for p in parts)


def step_metrics(info: Dict[str, Any]) -> Dict[str, float]:
    """Flatten spaCy's per-evaluation `info` dict into MLflow metrics."""
    metrics: Dict[str, float] = {}
    if info.get("score") is not None:
        metrics["score"] = float(info["score"])
    if info.get("epoch") is not None:
        metrics["epoch"] = float(info["epoch"])
    for component, loss in (info.get("losses") or {}).items():
        metrics[metric_key("loss", component)] = float(loss)
    for name, value in (info.get("other_scores") or {}).items():
        if name == "ents_per_type" and isinstance(value, dict):
            for label, prf in value.items():
                for k in ("p", "r", "f"):
                    if prf.get(k) is not None:
                        metrics[metric_key("ents_per_type", label, k)] = float(prf[k])
        elif name == "speed" and value is not None:
            metrics["eval_words_per_second"] = float(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[metric_key(name)] = float(value)
    return metrics


@spacy.registry.loggers(LOGGER_NAME)
def mlflow_logger(
    console: bool = True, progress_bar: Optional[str] = None
) -> Callable[[Any, IO, IO], Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]]:
    """spaCy logger factory: console output plus MLflow metrics at every evaluation step."""
    # spaCy 3.8 registers its own functions lazily; older versions on importing spacy.training.loggers
    getattr(spacy.registry, "ensure_populated", lambda: None)()
    importlib.import_module("spacy.training.loggers")

    console_factory = spacy.registry.loggers.get("spacy.ConsoleLogger.v3")
    console_setup = console_factory(progress_bar=progress_bar, console_output=console, output_file=None)

    def setup(nlp: Any, stdout: IO = sys.stdout, stderr: IO = sys.stderr):
        log_console, finalize_console = console_setup(nlp, stdout, stderr)
        # A sweep that prunes weak trials listens to this run's per-step dev scores.
        trial = trial_pruning.current_trial()
        # spaCy reports whole seconds only; time the words trained between evaluations ourselves.
        last = {"time": time.perf_counter(), "words": 0}

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            log_console(info)
            if info is None:
                return
            sink = active_sink()
            if sink is not None:
                _to_sink(sink, info)
            if trial is not None:
                # after the step's metrics are queued: a pruned run keeps the scores that got it pruned
                score = (info.get("other_scores") or {}).get("ents_f", info.get("score"))
                if score is not None:
                    trial_pruning.report(trial, int(info.get("step", 0)), float(score))

        def _to_sink(sink: Any, info: Dict[str, Any]) -> None:
            try:
                metrics = step_metrics(info)
                now, words = time.perf_counter(), int(info.get("words") or 0)
                if words > last["words"] and now > last["time"]:
                    metrics["train_words_per_second"] = (words - last["words"]) / (now - last["time"])
                last.update(time=now, words=words)
                sink.log_metrics(metrics, step=int(info.get("step", 0)))
            except Exception as err:  # tracking must never stop training
                log.warning("could not queue metrics for step %s: %s", info.get("step"), err)

        def finalize() -> None:
            finalize_console()

        return log_step, finalize

    return setup
