"""A Hydra sweeper on Optuna's ask-and-tell API: database storage, resume, launcher-sized batches.

Selected with `hydra/sweeper: ner_runner_optuna` (see conf/hparams_search/optuna*.yaml).
"""

__version__ = "0.1.0"
