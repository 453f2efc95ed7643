"""End-of-sweep table: every job's overrides, dev ents_f and MLflow run id, best first.

A Hydra callback that reads what each job left in the sweep directory (`<job>/result.json`, written by
the task, and `<job>/.hydra/overrides.yaml`, written by Hydra), so it works with any sweeper and any
launcher whose job directories end up there. Registered in conf/config.yaml under `hydra.callbacks`.
"""

from __future__ import annotations

import atexit
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SUMMARY_FILE = "sweep_summary.json"


@dataclass
class JobSummary:
    job: str
    status: str
    objective: Optional[float]
    mlflow_run_id: Optional[str]
    overrides: List[str]
    error: Optional[str] = None


def _job_sort_key(job: str) -> Any:
    return (0, int(job), "") if job.isdigit() else (1, 0, job)


def collect(sweep_dir: Path) -> List[JobSummary]:
    """One entry per job directory of the sweep (a directory with `.hydra/overrides.yaml` or `result.json`)."""
    jobs: List[JobSummary] = []
    if not sweep_dir.is_dir():
        return jobs
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: _job_sort_key(p.name)):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        result_file = job_dir / "result.json"
        if not overrides_file.is_file() and not result_file.is_file():
            continue
        overrides: List[str] = []
        if overrides_file.is_file():
            overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
        result: Dict[str, Any] = {}
        if result_file.is_file():
            try:
                result = json.loads(result_file.read_text())
            except ValueError as err:
                result = {"status": "UNREADABLE", "error": f"{result_file}: {err}"}
        objective = result.get("objective")
        if not isinstance(objective, (int, float)) or not math.isfinite(objective):
            objective = None
        jobs.append(
            JobSummary(
                job=job_dir.name,
                status=str(result.get("status") or "NO RESULT"),
                objective=objective,
                mlflow_run_id=result.get("mlflow_run_id"),
                overrides=overrides,
                error=result.get("error") or (None if result else f"no result.json in {job_dir}"),
            )
        )
    return jobs


def ranked(jobs: List[JobSummary], maximize: bool = True) -> List[JobSummary]:
    """Completed jobs by objective (best first), then every job without a score, in job order."""
    scored = [j for j in jobs if j.status == "COMPLETED" and j.objective is not None]
    rest = [j for j in jobs if j not in scored]
    scored.sort(key=lambda j: j.objective if maximize else -j.objective, reverse=True)  # type: ignore[operator]
    return scored + rest


def varying_overrides(jobs: List[JobSummary]) -> Dict[str, List[str]]:
    """Per job, only the overrides that differ between jobs (the swept ones); all of them for one job."""
    per_job = [{o.split("=", 1)[0]: o for o in j.overrides} for j in jobs]
    keys = {k for d in per_job for k in d if len({e.get(k) for e in per_job}) > 1}
    if len(jobs) <= 1 or not keys:
        return {j.job: j.overrides for j in jobs}
    return {j.job: [o for o in j.overrides if o.split("=", 1)[0] in keys] for j in jobs}


def format_table(jobs: List[JobSummary], maximize: bool = True) -> str:
    order = ranked(jobs, maximize)
    shown = varying_overrides(jobs)
    header = ("rank", "job", "status", "dev ents_f", "MLflow run id", "overrides")
    rows = [header]
    for rank, j in enumerate(order, 1):
        score = f"{j.objective:.4f}" if j.objective is not None else "-"
        rows.append((str(rank), j.job, j.status, score, j.mlflow_run_id or "-", " ".join(shown[j.job]) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    failed = [j for j in order if j.status != "COMPLETED"]
    for j in failed:
        lines.append(f"job {j.job} {j.status}: {j.error or 'no error recorded'}")
    return "\n".join(lines)


def summarize(sweep_dir: Path, maximize: bool = True) -> Optional[str]:
    """Print the table and write `sweep_summary.json` (best first) into the sweep directory."""
    jobs = collect(sweep_dir)
    if not jobs:
        return None
    order = ranked(jobs, maximize)
    n_failed = sum(j.status != "COMPLETED" for j in jobs)
    title = f"Sweep {sweep_dir}: {len(jobs)} job(s), {n_failed} without a score"
    text = f"{title}\n{format_table(jobs, maximize)}"
    print(text, flush=True)
    (sweep_dir / SUMMARY_FILE).write_text(json.dumps([asdict(j) for j in order], indent=2))
    return text


class SweepSummary(Callback):
    """Prints the sweep table when the sweep ends, and also when a sweeper stops it with an error
    (Hydra skips `on_multirun_end` then, so the table is printed at exit instead)."""

    def __init__(self, maximize: bool = True) -> None:
        self.maximize = maximize
        self._sweep_dir: Optional[Path] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        atexit.register(self._at_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self._at_exit)
        summarize(Path(str(config.hydra.sweep.dir)), self.maximize)

    def _at_exit(self) -> None:
        if self._sweep_dir is not None:
            try:
                summarize(self._sweep_dir, self.maximize)
            except Exception:  # never turn an exit into a traceback
                pass
