"""The task function: wires data -> spaCy config -> training -> evaluation -> tracking.

Each stage takes plain values; only this module reads the composed Hydra config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from . import __version__
from .errors import NerRunnerError

log = logging.getLogger("ner_runner")


def _abs(path: Optional[str], root: Path) -> Optional[Path]:
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def _hydra_context() -> Dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return {
        "run_dir": Path(hc.runtime.output_dir),
        "cwd": Path(hc.runtime.cwd),
        "choices": dict(hc.runtime.choices),
        "multirun": hc.mode == RunMode.MULTIRUN,
        "job_num": hc.job.num if hc.mode == RunMode.MULTIRUN else None,
        "overrides": hc.job.override_dirname,
        "hydra_dir": Path(hc.runtime.output_dir) / hc.output_subdir if hc.output_subdir else None,
    }


def format_data_report(reports: Dict[str, Any]) -> str:
    """A short table: examples and entities per label per split."""
    labels = sorted({l for r in reports.values() for l in r.entities})
    names = list(reports)
    rows = [("", *names)]
    rows.append(("examples read", *(str(reports[n].read) for n in names)))
    rows.append(("accepted", *(str(reports[n].accepted) for n in names)))
    for reason in sorted({k for r in reports.values() for k in r.skipped}):
        rows.append((f"skipped: {reason}", *(str(reports[n].skipped.get(reason, 0)) for n in names)))
    rows.append(("no entity", *(str(reports[n].docs_without_entities) for n in names)))
    for label in labels:
        rows.append((label, *(str(reports[n].entities.get(label, 0)) for n in names)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    )


def _evaluation_metrics(scores: Dict[str, Any]) -> Dict[str, float]:
    from .spacy_logger import metric_key

    metrics = {
        f"dev_{k}": float(scores[k]) for k in ("ents_f", "ents_p", "ents_r") if scores.get(k) is not None
    }
    for label, prf in (scores.get("ents_per_type") or {}).items():
        for k, v in prf.items():
            metrics[metric_key("dev_ents_per_type", label, k)] = float(v)
    return metrics


def run_pipeline(cfg: DictConfig) -> Optional[float]:
    """One training run; returns the dev ents_f of model-best (None when train=false)."""
    from .data import convert_corpus
    from .spacy_config import HardwareSettings, TrainingSettings, render_spacy_config, write_config

    started = time.time()
    _one_log_stream()
    ctx = _hydra_context()
    run_dir: Path = ctx["run_dir"]
    run_dir.mkdir(parents=True, exist_ok=True)
    root: Path = ctx["cwd"]

    if cfg.train and cfg.tracking.enabled:
        from .tracking import check_tracking_server

        # fail fast, before minutes of conversion and training go to a run nobody can record
        check_tracking_server(cfg.tracking.uri, cfg.tracking.timeout_s, cfg.tracking.max_retries)

    train_path = _abs(cfg.data.train, root)
    dev_path = _abs(cfg.data.dev, root)
    split = cfg.data.split
    corpus = convert_corpus(
        train_path,
        dev_path,
        labels=list(cfg.phase.labels),
        out_dir=run_dir / "corpus",
        lang=cfg.phase.lang,
        alignment=cfg.data.alignment,
        on_error=cfg.data.on_error,
        cache_dir=_abs(cfg.data.cache_dir, root),
        test_size=split.test_size,
        seed=cfg.hyperparameters.seed if split.seed is None else split.seed,
    )
    log.info("data:\n%s", format_data_report(corpus.reports))
    (run_dir / "data_report.json").write_text(json.dumps(corpus.to_dict(), indent=2))

    hw = cfg.hardware
    hardware = HardwareSettings(
        optimize=hw.optimize,
        gpu=hw.gpu,
        transformer_name=hw.transformer_name,
        gpu_allocator=hw.gpu_allocator,
        mixed_precision=hw.mixed_precision,
    )
    training = TrainingSettings.from_mapping(OmegaConf.to_container(cfg.hyperparameters, resolve=True))
    spacy_cfg = render_spacy_config(
        lang=cfg.phase.lang,
        hardware=hardware,
        training=training,
        train_path=str(corpus.train),
        dev_path=str(corpus.dev),
    )
    config_path = write_config(spacy_cfg, run_dir / "config.cfg")
    log.info("spaCy config: %s", config_path)
    if not cfg.train:
        log.info("train=false: stopping after conversion and config rendering")
        return None

    store, resume = _checkpoints(cfg, root, spacy_cfg, corpus) if cfg.checkpoint.enabled else (None, None)
    resume_run_id = resume.mlflow_run_id if resume is not None else None
    tracked = _tracked_run(cfg, ctx, resume_run_id) if cfg.tracking.enabled else contextlib.nullcontext()
    with tracked as run:
        if run is not None:
            from .tracking import flatten

            run.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
            from .data_report import log_data_report

            log_data_report(run, corpus)
            if store is not None:
                store.mlflow_run_id = run.info.run_id
            if resume is not None and run.resumed:
                _continue_series(run, resume)
        best = _train(config_path, run_dir, hw.gpu_id, store, resume)
        nlp, scores, dev_examples = _evaluate(best, corpus.dev, hw.gpu_id)
        evaluation = run_dir / "evaluation.json"
        evaluation.write_text(json.dumps(scores, indent=2, default=float))
        ents_f = float(scores.get("ents_f") or 0.0)
        if run is not None:
            run.log_metrics(_evaluation_metrics(scores), step=training.max_steps)
            run.log_metrics({"wall_time_s": time.time() - started}, step=0)
            for path in (config_path, evaluation, run_dir / "data_report.json"):
                run.log_artifact(path)
            if ctx["hydra_dir"] is not None and ctx["hydra_dir"].is_dir():
                run.log_artifact(ctx["hydra_dir"], artifact_path="hydra")
            if cfg.tracking.log_model:
                _log_model(run, nlp, cfg, _evaluation_metrics(scores))
        from .results import publish_results  # report files, MLflow artifacts, the printed summary

        publish_results(
            run,
            run_dir=run_dir,
            nlp=nlp,
            dev=corpus.dev,
            scores=scores,
            model_path=best,
            started=started,
            examples=dev_examples,
        )
    if store is not None and not cfg.checkpoint.keep_after_success:
        store.clear()  # model, metrics and artifacts are saved: a new run of this command starts fresh
    log.info("dev ents_f %.4f (model: %s, %.1fs)", ents_f, best, time.time() - started)
    return ents_f


def _one_log_stream() -> None:
    """spaCy adds its own console handler; under Hydra's logging each spaCy line would print twice.

    With Hydra's root handlers in place (console and the run's log file), spaCy's records go through them.
    """
    if not logging.getLogger().handlers:
        return
    import spacy.util  # noqa: F401  adds spaCy's handler, which is then removed

    spacy_log = logging.getLogger("spacy")
    for handler in list(spacy_log.handlers):
        if type(handler) is logging.StreamHandler:
            spacy_log.removeHandler(handler)


def _checkpoints(cfg: DictConfig, root: Path, spacy_cfg: Any, corpus: Any):
    """The checkpoint store for this config and data, and the checkpoint to resume from (or None)."""
    from . import checkpoints as ck

    text = ck.config_text(spacy_cfg)
    location = cfg.checkpoint.dir or ck.default_location(_abs(cfg.data.cache_dir, root))
    if not location.startswith("gs://"):
        location = str(_abs(location, root))
    store = ck.CheckpointStore(
        location,
        config_digest=ck.config_digest(spacy_cfg),
        data_digest=ck.data_digest(corpus.train, corpus.dev),
        config_text=text,
        keep=cfg.checkpoint.keep,
    )
    if not cfg.checkpoint.resume:
        log.info("checkpoint.resume=false: starting fresh, replacing the checkpoints in %s", store.location)
        store.clear()
        return store, None
    return store, store.find_resume()


class _SkipLoggedSteps:
    """Sink wrapper for a resumed run: steps the MLflow run already holds are not logged twice."""

    def __init__(self, sink: Any, steps: set):
        self.sink, self.steps = sink, steps

    def log_metrics(self, metrics: Dict[str, float], step: int) -> None:
        if step not in self.steps:
            self.sink.log_metrics(metrics, step)


def _continue_series(run: Any, resume: Any) -> None:
    """Keep one series of steps in the resumed MLflow run.

    The checkpointed step's metrics are sent if the killed process had not delivered them; steps after
    the checkpoint that the killed process had already logged (possible only when a newer checkpoint was
    damaged) are trained again but not logged again. The evaluations before the checkpoint go into this
    run directory's metrics journal (not resent), so reports drawn from it cover the whole run.
    """
    from . import spacy_logger

    run.set_tags({"ner_runner.resumed_from_step": str(resume.step)})
    try:
        logged = {m.step for m in run.client.get_metric_history(run.info.run_id, "score")}
    except Exception as err:
        log.warning("could not read the metric history of run %s: %s", run.info.run_id, err)
        logged = set(range(resume.step + 1))
    metrics = resume.meta.get("metrics")
    resend = bool(metrics) and resume.step not in logged
    history = [h for h in resume.meta.get("history") or [] if h["step"] <= resume.step]
    if resend:
        history = [h for h in history if h["step"] != resume.step]
    created = int(float(resume.meta.get("created") or time.time()) * 1000)
    with run.sink.journal.open("a", encoding="utf-8") as fh:
        for h in history:
            fh.write(json.dumps({"step": h["step"], "timestamp": created, "metrics": h["metrics"]}) + "\n")
    if resend:
        run.log_metrics(metrics, step=resume.step)
    later = {s for s in logged if s > resume.step}
    if later:
        log.warning(
            "MLflow run %s already holds steps %s after the checkpoint; they are trained again but keep "
            "their first logged values",
            run.info.run_id,
            sorted(later),
        )
        spacy_logger.set_active_sink(_SkipLoggedSteps(run.sink, later))


def _train(config_path: Path, run_dir: Path, gpu_id: int, store: Any = None, resume: Any = None) -> Path:
    from .trial_pruning import is_pruned
    from .training import train_pipeline

    try:
        return train_pipeline(config_path, run_dir, gpu_id=gpu_id, checkpoints=store, resume=resume)
    except BaseException as err:
        if store is not None and is_pruned(err):
            store.clear()  # a sweep stopped this trial on purpose: there is nothing to resume
        raise


def _evaluate(best: Path, dev: Path, gpu_id: int):
    from .training import evaluate_with_predictions

    return evaluate_with_predictions(best, dev, gpu_id=gpu_id)


def _tracked_run(cfg: DictConfig, ctx: Dict[str, Any], resume_run_id: Optional[str] = None):
    import spacy

    from .tracking import TrackedRun, git_commit

    choices = ctx["choices"]
    run_name = cfg.tracking.run_name or "-".join(
        str(x) for x in (cfg.phase.name, cfg.hardware.name, ctx["job_num"]) if x is not None
    )
    tags = {
        "phase": cfg.phase.name,
        "hardware": cfg.hardware.name,
        "hyperparameters": str(choices.get("hyperparameters", cfg.hyperparameters.name)),
        "overrides": ctx["overrides"] or "",
        "spacy_version": spacy.__version__,
        "ner_runner_version": __version__,
    }
    commit = git_commit(ctx["cwd"])
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    return TrackedRun(
        tracking_uri=cfg.tracking.uri,
        experiment=cfg.tracking.experiment,
        run_name=run_name,
        tags=tags,
        run_dir=ctx["run_dir"],
        timeout_s=cfg.tracking.timeout_s,
        max_retries=cfg.tracking.max_retries,
        resume_run_id=resume_run_id,
        flush_timeout_s=cfg.tracking.flush_timeout_s,
    )


def _log_model(run: Any, nlp: Any, cfg: DictConfig, scores: Dict[str, float]) -> None:
    from importlib.metadata import version

    reqs = [f"spacy=={version('spacy')}"]
    if "transformer" in nlp.pipe_names:
        reqs.append(f"spacy-transformers=={version('spacy-transformers')}")
    run.log_model(
        nlp,
        registered_model=cfg.tracking.registered_model,
        pip_requirements=reqs,
        scores=scores,
        promote=cfg.tracking.promote,
    )


def run_task(cfg: DictConfig) -> Optional[float]:
    """Hydra entry: user errors become one line and a non-zero exit in a single run.

    In a multirun the error is raised so the launcher records that job as failed and goes on.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    output_uri = cfg.get("output_uri")
    try:
        objective = run_pipeline(cfg)
    except BaseException as err:
        from .trial_pruning import is_pruned

        status = "PRUNED" if is_pruned(err) else "FAILED"
        write_result(run_dir, status=status, objective=None, error=f"{type(err).__name__}: {err}")
        _deliver(run_dir, output_uri, failed=True)
        if not isinstance(err, NerRunnerError) or HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    write_result(run_dir, status="COMPLETED", objective=objective, error=None)
    try:
        _deliver(run_dir, output_uri, failed=False)
    except NerRunnerError as err:
        # the launcher reads the outcome from there: a job whose outputs did not arrive has not succeeded
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    return objective


def _deliver(run_dir: Path, output_uri: Optional[str], *, failed: bool) -> None:
    """Copy the run directory (result.json last) to `output_uri` when one is set, e.g. on Vertex."""
    if not output_uri:
        return
    from .outputs import upload_run_dir

    try:
        upload_run_dir(run_dir, output_uri)
    except NerRunnerError as err:
        if not failed:
            raise
        # the job already failed: say so, keep the original error as the one that counts
        print(f"error: {err}", file=sys.stderr)


def write_result(run_dir: Path, *, status: str, objective: Optional[float], error: Optional[str]) -> Path:
    """`result.json`: the job's outcome where launchers and sweep summaries can read it back."""
    run_json = run_dir / "tracking" / "run.json"
    mlflow_run = json.loads(run_json.read_text()) if run_json.is_file() else {}
    path = run_dir / "result.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "status": status,
                "objective": objective,
                "error": error,
                "mlflow_run_id": mlflow_run.get("run_id"),
                "mlflow_experiment_id": mlflow_run.get("experiment_id"),
            },
            indent=2,
        )
    )
    return path
