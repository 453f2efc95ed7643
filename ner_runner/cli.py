"""`ner-runner`: the utilities people run on their own, thin over the library.

Each subcommand lives in the module that owns its concern and is registered here with one line;
heavy imports happen inside the handlers so `ner-runner --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional

from .errors import NerRunnerError

# (name, help, add_arguments(parser), handler(args) -> exit code)
Command = tuple


def _commands() -> List[Command]:
    from . import cli_commands

    return cli_commands.COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ner-runner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, handler in _commands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from .progress import quiet_library_bars

    quiet_library_bars()
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args) or 0)
    except NerRunnerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
