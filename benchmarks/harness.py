"""What every benchmark shares: timed subprocesses, `python run.py` on fashion_brands, an MLflow server.

Benchmarks measure whole commands as a user types them, in fresh processes, and compare them with a
baseline measured in the same run. Machines are noisy, so each side keeps the minimum of its repeats and
the sides are interleaved (A, B, A, B, ...) so that a slow minute hurts both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT.parent / "shared" / "data" / "fashion_brands"
PYTHON = sys.executable

# The overrides that point a default CPU run at fashion_brands (one label, its own experiment and model).
FASHION_OVERRIDES = [
    "phase.labels=[FASHION_BRAND]",
    "phase.experiment=fashion-bench",
    "phase.registered_model=fashion-bench-ner",
]


class BenchmarkError(RuntimeError):
    """A command under measurement failed or produced something unexpected."""


def clean_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The caller's environment without a tracking URI that would redirect the runs."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.update(extra or {})
    return env


class Timing(NamedTuple):
    """Wall time, and the CPU time (user + system) of the command and the processes it waited for."""

    wall: float
    cpu: float

    def __add__(self, other: "Timing") -> "Timing":  # type: ignore[override]
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: Sequence[str], *, log: Path, cwd: Path = ROOT, env: Optional[Dict[str, str]] = None) -> Timing:
    """Run one command to completion and time it. Output goes to `log`, not a pipe."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        cpu = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(list(cmd), cwd=cwd, env=env or clean_env(), stdout=out, stderr=subprocess.STDOUT)
        elapsed = Timing(time.perf_counter() - start, _children_cpu() - cpu)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise BenchmarkError(f"{' '.join(map(str, cmd))} exited {proc.returncode} (log: {log})\n{tail}")
    return elapsed


def run_py_cmd(overrides: Sequence[str]) -> List[str]:
    return [PYTHON, str(ROOT / "run.py"), *overrides]


def fashion_run_overrides(data: Path, steps: int, run_dir: Path, cache_dir: Path) -> List[str]:
    """A default CPU run (tok2vec + ner, seed 0) on fashion_brands for `steps` steps into `run_dir`.

    The evaluation frequency stays the CPU preset's (100) unless the run is too short to evaluate twice.
    """
    eval_frequency = max(1, min(100, steps // 2))
    return [
        f"data.train={data / 'train.jsonl'}",
        f"data.dev={data / 'dev.jsonl'}",
        *FASHION_OVERRIDES,
        f"hyperparameters.max_steps={steps}",
        f"hyperparameters.eval_frequency={eval_frequency}",
        f"data.cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise BenchmarkError(f"expected {path} to exist")
    return json.loads(path.read_text(encoding="utf-8"))


def base_parser(description: str, *, steps: Optional[int] = 1000, repeats: int = 3) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    if steps is not None:
        parser.add_argument("--steps", type=int, default=steps, help=f"training steps per run (default {steps})")
        parser.add_argument(
            "--data", type=Path, default=FASHION, help="folder with train.jsonl and dev.jsonl (fashion_brands)"
        )
    parser.add_argument("--repeats", type=int, default=repeats, help=f"runs per side; the minimum counts (default {repeats})")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp dir, removed)")
    return parser


@contextlib.contextmanager
def workdir(path: Optional[Path]) -> Iterator[Path]:
    """The given folder (kept), or a temporary one that is removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="ner-runner-bench-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_data(data: Path) -> None:
    for name in ("train.jsonl", "dev.jsonl"):
        if not (data / name).is_file():
            sys.exit(f"error: {data / name} not found (give --data DIR with train.jsonl and dev.jsonl)")


def ratio_line(name: str, ratio: float, goal: str) -> str:
    """The one line every benchmark ends with."""
    return f"{name}: ratio {ratio:.2f} (goal {goal})"


def describe(times: Sequence[Timing]) -> str:
    """`min 61.20s wall (cpu 58.10s) of 3: 61.20 63.05 62.47`"""
    best = min(times, key=lambda t: t.wall)
    return (
        f"min {best.wall:.2f}s wall (cpu {min(t.cpu for t in times):.2f}s) of {len(times)}: "
        + " ".join(f"{t.wall:.2f}" for t in times)
    )


def min_ratio(a: Sequence[Timing], b: Sequence[Timing]) -> Timing:
    """min(a)/min(b) for wall and for CPU time."""
    return Timing(min(t.wall for t in a) / min(t.wall for t in b), min(t.cpu for t in a) / min(t.cpu for t in b))


# --------------------------------------------------------------------------- MLflow server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 and a free port, storing into `folder`; yields its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [
        str(Path(PYTHON).parent / "mlflow"),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise BenchmarkError(f"mlflow server exited {proc.returncode}; see {folder / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchmarkError(f"mlflow server did not answer on {uri} within {timeout_s:.0f}s")
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
        log.close()
