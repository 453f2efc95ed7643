"""The sweep itself, on Optuna's ask-and-tell API.

Each round asks the study for `n_jobs` trials, hands their overrides to whatever launcher Hydra
configured (`launcher.launch(batch, initial_job_idx)`), and tells the study each job's outcome: the
returned dev ents_f, or FAIL for a job that raised or returned nothing. Because the study lives in a
database, a sweep that is interrupted continues where it stopped when it is started again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

# A trial left RUNNING by an interrupted sweep is failed with this attribute and run again.
INTERRUPTED_ATTR = "interrupted"
# A trial whose job the launcher only printed or submitted (a dry run, or not waiting for the jobs) has no
# outcome the study could learn: it is closed with this attribute and does not count towards n_trials.
NO_OUTCOME_ATTR = "no_outcome"


# --------------------------------------------------------------------------- search space


def distribution_for(override: Override) -> Optional[BaseDistribution]:
    """The Optuna distribution of one sweep override; None for a plain value (passed unchanged)."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    key = override.get_key_element()
    if override.is_choice_sweep():
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if value.shuffle:
            raise HydraException(f"{key}: shuffle(range(...)) means nothing to Optuna; use range(...)")
        values = list(value.range())
        if not values:
            raise HydraException(f"{key}: range(...) is empty")
        if all(isinstance(v, int) for v in values):
            step = int(value.step)
            return IntDistribution(min(values), max(values), step=abs(step))
        return FloatDistribution(min(values), max(values), step=abs(float(value.step)))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags
        if "int" in value.tags or (isinstance(value.start, int) and isinstance(value.end, int)):
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise HydraException(f"{key}: {override.input_line!r} is not a search space this sweeper understands")


@dataclass
class SearchSpace:
    distributions: Dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: List[str] = field(default_factory=list)  # overrides every trial gets unchanged

    def overrides(self, params: Dict[str, Any]) -> List[str]:
        return [*self.fixed, *(f"{name}={format_value(params[name])}" for name in self.distributions)]


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _value_text(override: Override) -> str:
    """A fixed value as the user wrote it (quotes and all), so the job parses exactly that."""
    if override.input_line is not None and "=" in override.input_line:
        return override.get_value_string()
    return override.get_value_element_as_str()


def parse_search_space(arguments: Sequence[str], parser: OverridesParser) -> SearchSpace:
    """Sweep overrides become distributions, the rest pass through; a later override of a key wins."""
    entries: Dict[str, Any] = {}
    for override in parser.parse_overrides(list(arguments)):
        key = override.get_key_element()
        dist = distribution_for(override)
        entries.pop(key, None)
        entries[key] = dist if dist is not None else f"{key}={_value_text(override)}"
    space = SearchSpace()
    for key, entry in entries.items():
        if isinstance(entry, BaseDistribution):
            space.distributions[key] = entry
        else:
            space.fixed.append(entry)
    if not space.distributions:
        raise HydraException(
            "nothing to search: give hydra.sweeper.params (an hparams_search preset) or sweep overrides"
        )
    return space


# --------------------------------------------------------------------------- outcomes


def outcome(ret: JobReturn) -> Tuple[TrialState, Optional[float], Optional[str]]:
    """(state, value, error) of one finished job. A failure is a failure, never a stand-in score."""
    if ret.status == JobStatus.COMPLETED:
        value = ret._return_value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return TrialState.COMPLETE, float(value), None
        return TrialState.FAIL, None, f"the job returned {value!r}, not a score (train=false?)"
    err = ret._return_value
    if isinstance(err, optuna.TrialPruned):
        return TrialState.PRUNED, None, None
    return TrialState.FAIL, None, f"{type(err).__name__}: {err}" if err is not None else "job failed"


def job_result(ret: JobReturn) -> Dict[str, Any]:
    """The job's result.json (MLflow run id and so on) when its directory is on this machine."""
    try:
        output_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir))
        return json.loads((output_dir / "result.json").read_text())
    except Exception:
        return {}


def finished(study: optuna.Study) -> List[FrozenTrial]:
    """Trials that count towards n_trials: complete, pruned, or failed by their job."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [
        t
        for t in study.get_trials(deepcopy=False, states=done)
        if not (t.system_attrs.get(INTERRUPTED_ATTR) or t.system_attrs.get(NO_OUTCOME_ATTR))
    ]


# --------------------------------------------------------------------------- the sweeper


def _token(trial: optuna.Trial) -> str:
    return f"trial{trial._trial_id}"


def _instance(node: Any, **kwargs: Any) -> Any:
    """The sampler or pruner from its config (or as given, when already built)."""
    return instantiate(node, **kwargs) if isinstance(node, (DictConfig, dict)) else node


class OptunaSweeperCore:
    def __init__(
        self,
        *,
        sampler: Any,
        pruner: Any,
        direction: str,
        storage: Optional[str],
        study_name: Optional[str],
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Optional[Dict[str, str]],
    ) -> None:
        if direction not in ("maximize", "minimize"):
            raise HydraException(f"hydra.sweeper.direction must be maximize or minimize, not {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise HydraException("hydra.sweeper.n_trials and hydra.sweeper.n_jobs must be at least 1")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise HydraException("hydra.sweeper.max_failure_rate must be between 0 and 1")
        self.sampler_cfg = sampler
        self.pruner_cfg = pruner
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = dict(params or {})
        self.config: Optional[DictConfig] = None
        self.launcher: Optional[Launcher] = None
        self.hydra_context: Optional[HydraContext] = None
        self.pruning: Optional[Any] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ----------------------------------------------------------------- study

    def _storage(self) -> Optional[str]:
        if self.storage and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return self.storage

    def create_study(self) -> optuna.Study:
        study = optuna.create_study(
            storage=self._storage(),
            study_name=self.study_name,
            sampler=_instance(self.sampler_cfg),
            pruner=_instance(self.pruner_cfg),
            direction=self.direction,
            load_if_exists=True,
        )
        seed = self.sampler_cfg.get("seed") if isinstance(self.sampler_cfg, (DictConfig, dict)) else None
        if study.trials and seed is not None:
            # A seeded sampler would start its random sequence again and repeat the first sweep's trials;
            # continue with a seed of its own, still reproducible.
            study.sampler = _instance(self.sampler_cfg, seed=int(seed) + len(study.trials))
        if study.direction.name.lower() != self.direction:
            raise HydraException(
                f"study {study.study_name!r} in {self.storage} was created to {study.direction.name.lower()}, "
                f"not {self.direction}; choose another hydra.sweeper.study_name"
            )
        self._requeue_interrupted(study)
        return study

    @staticmethod
    def _requeue_interrupted(study: optuna.Study) -> None:
        """Trials left RUNNING by an interrupted sweep: fail them and run their parameters again."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_system_attr(trial._trial_id, INTERRUPTED_ATTR, True)
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params)
            log.warning("trial %d was interrupted; it runs again with the same parameters", trial.number)

    # ----------------------------------------------------------------- pruning

    def _pruning_module(self, study: optuna.Study) -> Optional[Any]:
        """`ner_runner.trial_pruning` when this sweep can prune, else None (and why, in the log)."""
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        if isinstance(study.pruner, optuna.pruners.NopPruner):
            return None
        if not isinstance(self.launcher, BasicLauncher):
            log.warning(
                "%s runs trials outside this process: they cannot report per-step scores, so %s prunes "
                "nothing and every trial trains to its end",
                type(self.launcher).__name__,
                type(study.pruner).__name__,
            )
            return None
        try:
            from ner_runner import trial_pruning
        except ImportError:
            log.warning("ner_runner is not importable here: trials are not pruned")
            return None
        return trial_pruning

    @contextlib.contextmanager
    def _pruning_channel(self, trials: Sequence[optuna.Trial], batch: Sequence[Sequence[str]]) -> Iterator[None]:
        """Make the batch's live trials reachable from their jobs' spaCy logger for the launch."""
        if self.pruning is None:
            yield
            return
        for trial in trials:
            self.pruning.register(_token(trial), trial)
        try:
            yield
        finally:
            for trial in trials:
                self.pruning.unregister(_token(trial))

    # ----------------------------------------------------------------- sweep

    def sweep(self, arguments: List[str]) -> List[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = parse_search_space([*(f"{k}={v}" for k, v in self.params.items()), *arguments], parser)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        study = self.create_study()
        self.pruning = self._pruning_module(study)
        per_launch = self.n_jobs
        if self.pruning is not None and per_launch > 1:
            # The pruner compares a trial with trials that have finished; jobs of one launch finish together,
            # and this launcher runs them one after another anyway, so launch them one at a time.
            log.info("pruning in this process: launching 1 trial at a time instead of n_jobs=%d", per_launch)
            per_launch = 1
        already = len(finished(study))
        remaining = self.n_trials - already
        log.info(
            "Optuna study %r (%s): %d of n_trials=%d finished, %d to run, %d per launch; search space: %s",
            study.study_name,
            self.storage or "in memory",
            already,
            self.n_trials,
            max(remaining, 0),
            per_launch,
            ", ".join(f"{k}: {v}" for k, v in space.distributions.items()),
        )

        returns: List[Sequence[JobReturn]] = []
        failures: List[Tuple[int, Dict[str, Any], str]] = []
        ran = 0
        next_job_idx = 0
        while remaining > 0:
            batch_size = min(per_launch, remaining)
            trials = [study.ask(fixed_distributions=space.distributions) for _ in range(batch_size)]
            batch = [space.overrides(t.params) for t in trials]
            self.validate_batch_is_legal(batch)
            if self.pruning is not None:
                env = f"++hydra.job.env_set.{self.pruning.ENV_VAR}"
                batch = [[*b, f"{env}={_token(t)}"] for b, t in zip(batch, trials)]
            numbers = [t.number for t in trials]
            # Job directories follow the trial numbers when they are consecutive (they are, unless another
            # process works on the same study), so job N is trial N even across resumed sweeps.
            consecutive = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            first_idx = max(numbers[0], next_job_idx) if consecutive else next_job_idx
            with self._pruning_channel(trials, batch):
                results = self.launcher.launch(batch, initial_job_idx=first_idx)
            next_job_idx = first_idx + len(batch)
            without_outcome = 0
            for trial, ret in zip(trials, results):
                if ret.status == JobStatus.UNKNOWN:
                    self._close_without_outcome(study, trial, ret)
                    without_outcome += 1
                    continue
                error = self._tell(study, trial, ret)
                if error is not None:
                    failures.append((trial.number, trial.params, error))
            returns.append(results)
            if without_outcome:
                log.warning(
                    "%d job(s) of this launch have no outcome yet (the launcher only printed or submitted them, "
                    "e.g. hydra.launcher.dry_run=true or wait=false): the study cannot learn from them, so the "
                    "sweep stops here, and they do not count towards n_trials",
                    without_outcome,
                )
                self._report(study, sweep_dir, failures, stopped_without_outcome=True)
                return returns
            ran += len(batch)
            remaining -= len(batch)
            rate = len(failures) / ran
            # The policy stops a sweep early to save compute; once nothing is left to run, the sweep ends
            # normally and its report names the failed trials (it still fails if none completed).
            if failures and rate > self.max_failure_rate and remaining > 0:
                raise HydraException(
                    f"{len(failures)} of {ran} trials failed (more than max_failure_rate="
                    f"{self.max_failure_rate}); stopping the sweep. Failed: "
                    + "; ".join(f"#{n} {p}: {e}" for n, p, e in failures)
                )

        self._report(study, sweep_dir, failures)
        return returns

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> Optional[str]:
        """Tell the study how the trial's job ended; returns the error of a failed one."""
        state, value, error = outcome(ret)
        result = job_result(ret)
        if result.get("mlflow_run_id"):
            trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
        if error:
            trial.set_user_attr("error", error[:2000])
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        if state != TrialState.FAIL:
            return None
        log.warning("trial %d failed: %s", trial.number, error)
        return error or "job failed"

    @staticmethod
    def _close_without_outcome(study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> None:
        """Close the trial of a job that was not waited for: not a failure of its parameters, no score."""
        study._storage.set_trial_system_attr(trial._trial_id, NO_OUTCOME_ATTR, True)
        job = ret._return_value or "not submitted"
        trial.set_user_attr("error", f"no outcome: the launcher did not wait for its job ({job})")
        study.tell(trial, state=TrialState.FAIL)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.hydra_context is not None and self.config is not None
        for overrides in batch:
            self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def _report(
        self,
        study: optuna.Study,
        sweep_dir: Path,
        failures: List[Tuple[int, Dict[str, Any], str]],
        stopped_without_outcome: bool = False,
    ) -> None:
        if failures:
            log.warning(
                "%d trial(s) failed: %s", len(failures), "; ".join(f"#{n}: {e}" for n, o, e in failures)
            )
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            if stopped_without_outcome:
                return
            raise HydraException(f"no trial of study {study.study_name!r} completed; see the failures above")
        best = study.best_trial
        results = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": self.storage,
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
            "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
            "n_trials": len(finished(study)),
            "failed_trials": [n for n, _, _ in failures],
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("best trial #%d: %s = %s (MLflow run %s)", best.number, best.params, best.value,
                 results["best_mlflow_run_id"])
