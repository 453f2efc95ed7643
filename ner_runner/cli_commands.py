"""The registry of `ner-runner` subcommands: one line per command, defined in its own module."""

from __future__ import annotations

from typing import List

from . import pull, runs, split, sync

COMMANDS: List[tuple] = [
    # (name, help, add_arguments, handler)
    ("pull", "Download a trained pipeline from MLflow (by run, or registered model alias/version)", pull.add_arguments, pull.run),
    ("sync", "Deliver a run directory's undelivered params, metrics, artifacts and model to MLflow", sync.add_arguments, sync.run),
    ("runs", "A phase's MLflow runs as a table, best dev ents_f first", runs.add_arguments, runs.run),
    ("split", "Stratified train/dev split of a Prodigy export", split.add_arguments, split.run),
]
