"""The end of a run: report files in `<run dir>/report/`, the same files as MLflow artifacts, a printed summary.

Everything here is best effort: the model and its metrics already exist when this runs, so a chart that
cannot be drawn or an upload that fails is a warning, never a failed run; the files stay on disk.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .predictions_html import DEFAULT_LIMIT

log = logging.getLogger(__name__)

REPORT_DIR = "report"


def predict_dev(nlp: Any, dev: Path) -> List[Any]:
    """Dev examples with the model's predictions, made the way `nlp.evaluate` makes them for the scores."""
    from spacy.training import Corpus

    examples = list(Corpus(str(dev), gold_preproc=False)(nlp))
    # nlp.evaluate works on copies, so run the pipeline the same way here and keep the docs
    docs = nlp.pipe((eg.predicted for eg in examples), batch_size=nlp.batch_size)
    for eg, doc in zip(examples, docs):
        eg.predicted = doc
    return examples


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float), encoding="utf-8")
    return path


def write_report(
    *,
    out: Path,
    nlp: Any,
    dev: Path,
    scores: Mapping[str, Any],
    journal: Optional[Path],
    limit: int = DEFAULT_LIMIT,
    examples: Optional[List[Any]] = None,
) -> Dict[str, Any]:
    """Charts, the predictions page and the confusion summary; returns what could be made.

    `examples`: dev examples already predicted by the evaluation (saves a second pass over the dev set).
    """
    from .charts import learning_curve, per_entity_chart, read_metrics_journal
    from .predictions_html import write_predictions_html
    from .report import confusion_markdown, confusion_summary, diff_example

    made: Dict[str, Any] = {}
    try:
        if examples is None:
            examples = predict_dev(nlp, dev)
        diffs = [diff_example(eg) for eg in examples]
        confusion = confusion_summary(diffs)
        _write_json(out / "confusion.json", confusion)
        (out / "confusion.md").write_text(confusion_markdown(confusion), encoding="utf-8")
        made["confusion"] = confusion
        made["predictions"] = write_predictions_html(examples, diffs, out / "predictions.html", limit=limit)
    except Exception as err:
        log.warning("could not write the dev predictions and label errors: %s", err)
    try:
        made["per_entity"] = per_entity_chart(scores, out / "per_entity.png")
        if made["per_entity"] is None:
            log.info("no per-entity scores: no per-entity chart")
    except Exception as err:
        log.warning("could not draw the per-entity chart: %s", err)
    try:
        if journal is not None and journal.is_file():
            made["learning_curve"] = learning_curve(read_metrics_journal(journal), out / "learning_curve.png")
        else:
            log.info("no metrics journal (tracking disabled): no learning curve")
    except Exception as err:
        log.warning("could not draw the learning curve: %s", err)
    return made


def publish_results(
    run: Any,
    *,
    run_dir: Path,
    nlp: Any,
    dev: Path,
    scores: Mapping[str, Any],
    model_path: Path,
    started: float,
    limit: int = DEFAULT_LIMIT,
    examples: Optional[List[Any]] = None,
) -> str:
    """Write the report, log it to the MLflow run (when there is one) and print the summary.

    `run` is the active `TrackedRun` or None; `started` is the run's `time.time()` at start.
    Returns the summary text.
    """
    from .report import format_summary, mlflow_run_link

    out = Path(run_dir) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    journal = Path(run_dir) / "tracking" / "metrics.jsonl" if run is not None else None
    made = write_report(
        out=out, nlp=nlp, dev=dev, scores=scores, journal=journal, limit=limit, examples=examples
    )

    info = getattr(run, "info", None)
    link = mlflow_run_link(info.tracking_uri, info.experiment_id, info.run_id) if info is not None else None
    confusion = made.get("confusion")
    support = {k: v["gold"] for k, v in confusion["per_label"].items()} if confusion else None
    summary = format_summary(
        scores,
        model_path=model_path,
        wall_time_s=time.time() - started,
        run_link=link,
        support=support,
        examples=confusion["examples"] if confusion else None,
    )
    (out / "summary.txt").write_text(summary.lstrip("\n") + "\n", encoding="utf-8")
    if run is not None:
        try:
            run.log_artifact(out, artifact_path=REPORT_DIR)
        except Exception as err:
            log.warning("could not upload the run report (%s); it is kept in %s", err, out)
    print(summary, flush=True)
    return summary
