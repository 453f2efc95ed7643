"""Sweeps grouped in MLflow: one parent run per multirun, every job's run its child.

`SweepTracking` is a Hydra callback (conf/config.yaml, `hydra.callbacks`). At the start of a multirun it
creates the parent run, logs the sweep's overrides and config, and exports NER_RUNNER_PARENT_RUN_ID (plus
MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME) so every job, in this process or on another machine,
nests its run under it; a launcher that starts jobs elsewhere forwards `child_environment()`. At the end
the parent gets the best child's dev ents_f and run id. Children are found by querying MLflow for the
`mlflow.parentRunId` tag, so this works with any launcher; `sweep_children` is the reusable query.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .tracking import PARENT_RUN_ENV

log = logging.getLogger(__name__)

SWEEP_RUN_FILE = "sweep_run.json"
BEST_METRIC = "best_dev_ents_f"


@dataclass
class ChildRun:
    """One job of a sweep as MLflow recorded it."""

    run_id: str
    run_name: Optional[str]
    status: str
    dev_ents_f: Optional[float]
    overrides: str = ""
    params: Dict[str, str] = field(default_factory=dict)


def sweep_children(parent_run_id: str, tracking_uri: Optional[str] = None) -> List[ChildRun]:
    """The runs nested under a sweep's parent run, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        max_results=10000,
        order_by=["attributes.start_time ASC"],
    )
    return [
        ChildRun(
            run_id=r.info.run_id,
            run_name=r.info.run_name,
            status=r.info.status,
            dev_ents_f=r.data.metrics.get("dev_ents_f"),
            overrides=r.data.tags.get("overrides", ""),
            params=dict(r.data.params),
        )
        for r in runs
    ]


def best_child(children: List[ChildRun]) -> Optional[ChildRun]:
    scored = [c for c in children if c.dev_ents_f is not None and c.status == "FINISHED"]
    return max(scored, key=lambda c: c.dev_ents_f) if scored else None


def child_environment() -> Dict[str, str]:
    """What a job started in another process or machine needs to nest its run under the sweep."""
    keys = (PARENT_RUN_ENV, "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")
    return {k: os.environ[k] for k in keys if os.environ.get(k)}


class SweepTracking(Callback):
    """Hydra callback: the parent MLflow run of a multirun."""

    def __init__(self) -> None:
        self.parent_run_id: Optional[str] = None
        self.tracking_uri: Optional[str] = None
        self._saved_env: Dict[str, Optional[str]] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not (config.tracking.enabled and config.train):
            return
        if OmegaConf.select(config, "hydra.launcher.dry_run", default=False):
            return  # a dry run submits nothing, so it records nothing
        from .errors import NerRunnerError
        from .tracking import check_tracking_server

        self.tracking_uri = str(config.tracking.uri)
        try:
            check_tracking_server(self.tracking_uri, config.tracking.timeout_s, config.tracking.max_retries)
            self.parent_run_id = self._start_parent(config)
        except NerRunnerError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        env = {
            PARENT_RUN_ENV: self.parent_run_id,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": str(config.tracking.experiment),
        }
        for k, v in env.items():
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        # a failed job makes Hydra raise before on_multirun_end: still close the parent
        atexit.register(self._finish, "FAILED")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish("FINISHED")

    def _start_parent(self, config: DictConfig) -> str:
        from mlflow.tracking import MlflowClient
        from mlflow.tracking.context.registry import resolve_tags

        from .errors import NerRunnerError
        from .tracking import get_or_create_experiment, redact_uri, scrub, scrub_text

        overrides = list(config.hydra.overrides.task)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            client = MlflowClient(self.tracking_uri)
            experiment_id = get_or_create_experiment(client, str(config.tracking.experiment), self.tracking_uri)
            run = client.create_run(
                experiment_id,
                run_name=f"sweep-{config.phase.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                tags=scrub(resolve_tags({"ner_runner.sweep": "true", "sweep_dir": str(sweep_dir),
                                         "overrides": " ".join(overrides)})),
            )
        except Exception as err:
            raise NerRunnerError(f"cannot start the sweep's MLflow run at {redact_uri(self.tracking_uri)}: {err}")
        run_id = run.info.run_id
        try:
            from mlflow.entities import Param

            params = {f"override.{o.split('=', 1)[0].lstrip('+~')}": o.split("=", 1)[-1] for o in overrides}
            sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
            params["sweeper"] = str(sweeper.get("_target_", ""))
            for k, v in (sweeper.get("params") or {}).items():
                params[f"sweeper.params.{k}"] = v
            items = [Param(k, v) for k, v in sorted(scrub(params).items())]
            client.log_batch(run_id, params=items[:100], synchronous=True)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            snapshot = sweep_dir / "sweep_config.yaml"
            snapshot.write_text(scrub_text(OmegaConf.to_yaml(config, resolve=False)))
            client.log_artifact(run_id, str(snapshot))
            (sweep_dir / SWEEP_RUN_FILE).write_text(
                json.dumps({"run_id": run_id, "experiment_id": experiment_id,
                            "tracking_uri": redact_uri(self.tracking_uri)})
            )
        except Exception as err:  # the grouping still works without these details
            log.warning("could not log the sweep's config to MLflow: %s", err)
        log.info("sweep parent MLflow run %s", run_id)
        return run_id

    def _finish(self, status: str) -> None:
        if self.parent_run_id is None:
            return
        parent, self.parent_run_id = self.parent_run_id, None
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.tracking_uri)
            children = sweep_children(parent, self.tracking_uri)
            best = best_child(children)
            tags = {
                "children": str(len(children)),
                "children_finished": str(sum(c.status == "FINISHED" for c in children)),
            }
            if best is not None:
                client.log_metric(parent, BEST_METRIC, best.dev_ents_f)
                tags.update(best_run_id=best.run_id, best_run_name=best.run_name or "")
            for k, v in tags.items():
                client.set_tag(parent, k, v)
            client.set_terminated(parent, status=status)
        except Exception as err:
            log.warning("could not close the sweep's MLflow run %s: %s", parent, err)
