"""Shared fixtures: the real Prodigy export, a small slice of it, a tiny RoBERTa, and a run.py driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT.parent / "shared" / "data" / "fashion_brands"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION / "train.jsonl").is_file():
        pytest.fail(f"the shared fashion_brands export is missing at {FASHION}")
    return FASHION


def _slice(src: Path, dest: Path, n_with: int, n_without: int) -> Path:
    """First examples with and without entities, so a few training steps see both."""
    with_ents: List[str] = []
    without: List[str] = []
    for line in src.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        bucket = with_ents if row.get("spans") else without
        if (bucket is with_ents and len(bucket) < n_with) or (bucket is without and len(bucket) < n_without):
            bucket.append(line)
    dest.write_text("\n".join(with_ents + without) + "\n", encoding="utf-8")
    return dest


@pytest.fixture(scope="session")
def fashion_small(tmp_path_factory, fashion_dir) -> Dict[str, Path]:
    """60 train / 30 dev examples of the real export: seconds to train a few steps."""
    d = tmp_path_factory.mktemp("fashion_small")
    return {
        "train": _slice(fashion_dir / "train.jsonl", d / "train.jsonl", 40, 20),
        "dev": _slice(fashion_dir / "dev.jsonl", d / "dev.jsonl", 20, 10),
    }


FASHION_OVERRIDES = ["phase.labels=[FASHION_BRAND]", "phase.experiment=fashion", "phase.registered_model=fashion-ner"]


def quick_overrides(data: Dict[str, Path], tmp: Path, steps: int = 4, extra: Sequence[str] = ()) -> List[str]:
    """Overrides for a seconds-long CPU run on fashion data, everything written under `tmp`."""
    return [
        f"data.train={data['train']}",
        f"data.dev={data['dev']}",
        *FASHION_OVERRIDES,
        f"hyperparameters.max_steps={steps}",
        f"hyperparameters.eval_frequency={max(1, steps // 2)}",
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        f"data.cache_dir={tmp / 'cache'}",
        f"hydra.run.dir={tmp / 'run'}",
        f"hydra.sweep.dir={tmp / 'multirun'}",
        *extra,
    ]


def job_runs(tmp: Path, experiment: str = "fashion") -> list:
    """The MLflow runs of a sweep's jobs in the test's sqlite store (not the sweep's parent run)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return [r for r in runs if r.data.tags.get("ner_runner.sweep") != "true"]


def run_py(
    args: Sequence[str],
    *,
    cwd: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run `python run.py ARGS` as a user would, from the project root."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"run.py failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory, fashion_dir) -> Path:
    """A RoBERTa with random weights and a byte-level BPE tokenizer trained on the test text.

    Same architecture and files as roberta-base, loaded by path: the transformer path is exercised
    on CPU in seconds and nothing is downloaded.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    out = tmp_path_factory.mktemp("tiny-roberta")
    texts = [json.loads(l)["text"] for l in (fashion_dir / "train.jsonl").read_text().splitlines()[:400]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=1000, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tok_dir = out / "bpe"
    tok_dir.mkdir()
    bpe.save_model(str(tok_dir))
    tokenizer = RobertaTokenizerFast(
        vocab_file=str(tok_dir / "vocab.json"), merges_file=str(tok_dir / "merges.txt"), model_max_length=512
    )
    tokenizer.save_pretrained(out)
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    RobertaModel(config).save_pretrained(out)
    return out


from tests.servers import gcs_emulator, mlflow_server  # noqa: E402,F401  real servers on free ports
