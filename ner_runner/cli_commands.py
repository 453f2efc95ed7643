"""The registry of `ner-runner` subcommands: one line per command, defined in its own module."""

from __future__ import annotations

from typing import List

COMMANDS: List[tuple] = [
    # (name, help, add_arguments, handler); e.g.
    # ("split", "Stratified train/dev split of a Prodigy export", split.add_arguments, split.run),
]
