"""The Hydra entry point of the sweeper; the work (and the optuna import) is in `_core`."""


from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import NerRunnerOptunaSweeperConf  # noqa: F401  registers the configs


class NerRunnerOptunaSweeper(Sweeper):
    def __init__(self, **config: Any) -> None:
        """Hydra passes the `hydra.sweeper` fields (NerRunnerOptunaSweeperConf) as keywords."""
        from ._core import OptunaSweeperCore

        self.core = OptunaSweeperCore(**config)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.core.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.core.sweep(arguments)
