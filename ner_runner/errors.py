"""The one exception type for problems a user can fix (bad data, bad config, unreachable server).

Entry points print its message on one line and exit non-zero without a traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class NerRunnerError(Exception):
    """A problem the user can fix; the message says what and where."""

    exit_code = 2
