"""ner-runner: `python run.py [phase=phase2] [hardware=gpu_t4] [launcher=vertex] [-m ...]`.

Thin on purpose: composition happens here, everything else in `ner_runner`, imported only when a job runs
so that `--help` and `--cfg job` stay instant.
"""

import os
from typing import Optional

import hydra
from omegaconf import DictConfig

from ner_runner.progress import quiet_library_bars
from ner_runner.schema import register_configs

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
quiet_library_bars()  # no MLflow transfer bars in CI logs or Vertex's log stream
register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    from ner_runner.task import run_task

    return run_task(cfg)


if __name__ == "__main__":
    main()
