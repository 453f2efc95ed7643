"""The launcher Hydra instantiates. Thin: the Google client libraries load in `_core` only when jobs launch."""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class VertexLauncher(Launcher):
    """Each job of a sweep becomes one Vertex AI CustomJob; see `_core.launch`."""

    def __init__(self, **params: Any) -> None:
        # Settings are re-read per job from that job's config (machine and image may differ per job).
        self.params = params
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        return _core.launch(self, job_overrides=job_overrides, initial_job_idx=initial_job_idx)
