"""The benchmark scripts import their shared `harness` module as scripts do: from benchmarks/ on sys.path."""

import sys

from tests.conftest import ROOT

if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
