"""Structured config of the sweeper, its samplers and pruners, stored in Hydra's ConfigStore.

Importing this module is cheap (no optuna): Hydra imports every module under `hydra_plugins` when it
discovers plugins, including for `python run.py --help`.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPESamplerConfig:
    """Optuna's TPE. `constant_liar` keeps the trials of one parallel launch apart from each other."""

    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10  # random trials before TPE models the results
    multivariate: bool = False
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class NopPrunerConfig:
    """Never prunes: every trial trains to its own end."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig:
    """Stops a trial whose dev score at a step is below the median of earlier trials at that step.

    Only trials that run in this process (the local launcher) report per-step scores.
    """

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # finished trials before any pruning
    n_warmup_steps: int = 200  # spaCy training steps before a trial may be pruned
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class NerRunnerOptunaSweeperConf:
    _target_: str = "hydra_plugins.ner_runner_optuna_sweeper.optuna_sweeper.NerRunnerOptunaSweeper"
    # The sweeper builds the sampler and pruner itself (a resumed study needs a sampler seeded anew).
    _recursive_: bool = False
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "nop"}])

    sampler: Any = MISSING
    pruner: Any = MISSING
    # "maximize" for dev ents_f, the value every job returns.
    direction: str = "maximize"
    # The study lives here; a sweep with the same storage and study_name continues it.
    storage: Optional[str] = None
    study_name: Optional[str] = None
    # The study's total: a resumed sweep runs only the trials still missing.
    n_trials: int = 20
    # Trials asked for and handed to the launcher at once (the launcher may run them in parallel).
    n_jobs: int = 2
    # Stop when more than this share of the finished trials failed (0: at the first failure; 1: never).
    max_failure_rate: float = 0.25
    # Search space: config key -> override syntax, e.g. `tag(log, interval(1e-5, 1e-3))`, `choice(1000, 2000)`.
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="ner_runner_optuna", node=NerRunnerOptunaSweeperConf, provider="ner_runner"
)
ConfigStore.instance().store(
    group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConfig, provider="ner_runner"
)
ConfigStore.instance().store(
    group="hydra/sweeper/sampler", name="random", node=RandomSamplerConfig, provider="ner_runner"
)
ConfigStore.instance().store(
    group="hydra/sweeper/pruner", name="nop", node=NopPrunerConfig, provider="ner_runner"
)
ConfigStore.instance().store(
    group="hydra/sweeper/pruner", name="median", node=MedianPrunerConfig, provider="ner_runner"
)
