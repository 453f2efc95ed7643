"""Training and evaluation through spaCy's own API (what `spacy train` and `spacy evaluate` call)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import NerRunnerError


def setup_device(gpu_id: int) -> None:
    """Use the GPU the hardware group asks for, or say clearly that there is none."""
    if gpu_id < 0:
        return
    from thinc.api import require_gpu

    try:
        require_gpu(gpu_id)
    except Exception as err:
        raise NerRunnerError(
            f"hardware.gpu_id={gpu_id} needs a CUDA GPU, but none is usable here ({err}). "
            "Train locally with hardware=cpu, or set hardware.gpu_id=-1."
        ) from err


def train_pipeline(
    config_path: Path,
    output_dir: Path,
    *,
    gpu_id: int = -1,
    overrides: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Train with spaCy's loop; writes model-best and model-last into `output_dir`."""
    from spacy import util
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    from . import spacy_logger  # noqa: F401  registers the logger named in the config

    setup_device(gpu_id)
    config = util.load_config(config_path, overrides=dict(overrides or {}), interpolate=False)
    nlp = init_nlp(config, use_gpu=gpu_id)
    output_dir.mkdir(parents=True, exist_ok=True)
    train(nlp, output_dir, use_gpu=gpu_id, stdout=sys.stdout, stderr=sys.stderr)
    best = output_dir / "model-best"
    if not best.exists():
        raise NerRunnerError(f"training finished without writing {best}")
    return best


def evaluate_pipeline(model_path: Path, dev_path: Path, *, gpu_id: int = -1) -> Tuple[Any, Dict[str, Any]]:
    """Load the model once and score it on the dev corpus; returns (nlp, scores)."""
    import spacy
    from spacy.training import Corpus

    setup_device(gpu_id)
    nlp = spacy.load(model_path)
    examples = list(Corpus(str(dev_path), gold_preproc=False)(nlp))
    scores = nlp.evaluate(examples)
    return nlp, scores
