"""The registry of `ner-runner` subcommands: one line per command, defined in its own module."""

from __future__ import annotations

from typing import List

from . import runs, split

COMMANDS: List[tuple] = [
    # (name, help, add_arguments, handler)
    ("runs", "A phase's MLflow runs as a table, best dev ents_f first", runs.add_arguments, runs.run),
    ("split", "Stratified train/dev split of a Prodigy export", split.add_arguments, split.run),
]
