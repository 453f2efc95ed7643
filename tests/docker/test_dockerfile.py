"""docker/Dockerfile, parsed: its entrypoint must accept exactly what the Vertex launcher sends."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple

import pytest
import yaml

from tests.conftest import ROOT
from tests.hydra_plugins.conftest import launch, launcher_overrides

DOCKERFILE = ROOT / "docker" / "Dockerfile"


def instructions(path: Path) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: List[Tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        op, _, rest = line.partition(" ")
        out.append((op.upper(), rest.strip()))
    return out


def build_args(ins: List[Tuple[str, str]]) -> Dict[str, str]:
    return dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)


def test_image_is_cuda_runtime_matching_torch_python311_non_root():
    ins = instructions(DOCKERFILE)
    args = build_args(ins)
    (base,) = [a for op, a in ins if op == "FROM"]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    m = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(?:cudnn-)?runtime-ubuntu[\d.]+", base)
    assert m, base
    assert args["TORCH_INDEX_URL"].endswith(f"/cu{m.group(1)}{m.group(2)}")
    assert args["PYTHON_VERSION"] == "3.11"
    runs = " ".join(a for op, a in ins if op == "RUN")
    assert '".[gpu]"' in runs and "${TORCH_INDEX_URL}" in runs
    users = [i for i, (op, _) in enumerate(ins) if op == "USER"]
    assert users and ins[users[-1]][1] not in ("root", "0")
    assert all(op != "RUN" for op, _ in ins[users[-1] :])


def test_dockerignore_keeps_what_the_entrypoint_needs():
    ignored = {l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")}
    for needed in ("run.py", "conf", "data", "ner_runner", "hydra_plugins", "pyproject.toml", "README.md"):
        assert needed not in ignored
    assert {".git", ".venv", "outputs", "multirun", "mlflow.db"} <= ignored


def test_cloudbuild_pushes_the_gcp_group_image():
    build = yaml.safe_load((ROOT / "docker" / "cloudbuild.yaml").read_text())
    gcp = yaml.safe_load((ROOT / "conf" / "gcp" / "default.yaml").read_text())
    expected = gcp["image_uri"].replace("${gcp.region}", gcp["region"]).replace("${gcp.project}", "${PROJECT_ID}")
    assert build["substitutions"]["_IMAGE_URI"] == expected
    assert build["images"] == ["${_IMAGE_URI}"]
    assert "--file=docker/Dockerfile" in build["steps"][0]["args"]


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_entrypoint_accepts_the_launchers_argv(tmp_path):
    ins = instructions(DOCKERFILE)
    entrypoint = json.loads(dict(ins)["ENTRYPOINT"])  # exec form, so Vertex's args are appended verbatim
    workdir = [a for op, a in ins if op == "WORKDIR"][-1]
    assert entrypoint == ["python", f"{workdir}/run.py"]
    assert ("COPY", "--chown=ner:ner . .") in ins  # the checkout is the image's WORKDIR

    # what the launcher would send for one job of a sweep (dry run: nothing is called)
    fake = SimpleNamespace(address="127.0.0.1:1")
    (ret,) = launch(
        launcher_overrides(fake, tmp_path, "launcher=vertex", "hardware=gpu_t4", "hydra.launcher.dry_run=true"),
        [["phase=phase2", "hyperparameters.learning_rate=3e-5"]],
    )
    spec = json.loads((Path(ret.working_dir) / "vertex_job.json").read_text())
    argv = spec["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]

    # the entrypoint with the checkout in place of /app, asked for the job config it would run
    cmd = [sys.executable, str(ROOT / entrypoint[1].removeprefix(f"{workdir}/")), *argv, "--cfg", "all"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["hydra"]["mode"] == "RUN"  # runs here, never launches again
    assert cfg["hydra"]["runtime"]["choices"]["launcher"] == "local"
    assert cfg["hydra"]["runtime"]["choices"]["hydra/launcher"] == "basic"
    assert cfg["phase"]["name"] == "phase2" and cfg["hardware"]["name"] == "gpu_t4"
    assert cfg["hyperparameters"]["learning_rate"] == 3e-5
    assert cfg["output_uri"] == spec["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"]
    assert cfg["hydra"]["run"]["dir"] == "outputs/vertex/0"
