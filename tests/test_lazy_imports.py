"""`python run.py --help`, `--cfg job` and composition import nothing heavy.

spaCy, torch, MLflow and Vertex AI cost seconds to import; they belong inside the functions that train,
track or launch. Each check runs in a fresh interpreter and reads `sys.modules` afterwards, so a module-level
import anywhere on the way (run.py, ner_runner.schema, a Hydra plugin under hydra_plugins/) fails it.
benchmarks/startup.py measures the time this saves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterable, List

import pytest

from tests.conftest import ROOT

HEAVY = ("spacy", "thinc", "torch", "transformers", "spacy_transformers", "mlflow", "google.cloud.aiplatform")


def heavy_modules(names: Iterable[str]) -> List[str]:
    """The loaded modules that belong to a heavy package (`google.cloud.aiplatform_v1` counts too)."""
    found = set()
    for name in names:
        for heavy in HEAVY:
            if name == heavy or name.startswith(heavy + ".") or name.startswith(heavy + "_v"):
                found.add(heavy)
    return sorted(found)


# Runs run.py as `python run.py ARGS` would, then reports what got imported.
RUN_PY = """
import json, runpy, sys
out, args = sys.argv[1], json.loads(sys.argv[2])
sys.argv = ["run.py", *args]
try:
    runpy.run_path("run.py", run_name="__main__")
except SystemExit as err:
    if err.code not in (None, 0):
        raise
open(out, "w").write(json.dumps(sorted(sys.modules)))
"""

# Imports run.py as a module and composes every option of every config group with Hydra's compose API.
COMPOSE_ALL = """
import json, sys
from pathlib import Path
from hydra import compose, initialize_config_dir
import run  # noqa: F401  run.py's module-level imports and config registration
conf = Path("conf").resolve()
options = [(g.name, f.stem) for g in sorted(conf.iterdir()) if g.is_dir() for f in sorted(g.glob("*.yaml"))]
with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
    for group, option in options:
        try:
            compose("config", overrides=[f"{group}={option}"])
        except Exception:  # a group that is not in the defaults list is added with +
            compose("config", overrides=[f"+{group}={option}"])
open(sys.argv[1], "w").write(json.dumps({"modules": sorted(sys.modules), "options": options}))
"""


def _probe(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_heavy_modules_recognises_submodules_and_versioned_packages():
    loaded = ["json", "torch.nn", "spacy", "google.cloud.aiplatform_v1.types", "google.cloud.storage", "mlflowx"]
    assert heavy_modules(loaded) == ["google.cloud.aiplatform", "spacy", "torch"]


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"], ["--cfg", "job", "hardware=gpu_t4"]])
def test_run_py_help_and_cfg_job_import_nothing_heavy(tmp_path, args):
    modules = _probe(RUN_PY, tmp_path, json.dumps(args))
    assert "hydra" in modules  # the probe did run run.py
    assert heavy_modules(modules) == []


def test_composing_every_config_option_imports_nothing_heavy(tmp_path):
    result = _probe(COMPOSE_ALL, tmp_path)
    assert ("hardware", "gpu_t4") in [tuple(o) for o in result["options"]]
    assert heavy_modules(result["modules"]) == []
