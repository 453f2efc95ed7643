"""Render a complete spaCy training config from spaCy's own quickstart plus our groups.

The result is a plain `config.cfg`: `python -m spacy train config.cfg --paths.train ... --paths.dev ...`
runs it unchanged (our logger is found through the `spacy_loggers` entry point).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from .errors import NerRunnerError

LOGGER_NAME = "ner_runner.MLflowLogger.v1"


@dataclass(frozen=True)
class HardwareSettings:
    optimize: str = "efficiency"
    gpu: bool = False
    transformer_name: Optional[str] = None
    gpu_allocator: Optional[str] = None
    mixed_precision: bool = False


@dataclass(frozen=True)
class TrainingSettings:
    learning_rate: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    L2: float = 0.01
    grad_clip: float = 1.0
    warmup_steps: Optional[int] = None
    dropout: float = 0.1
    patience: int = 1600
    max_steps: int = 20000
    max_epochs: int = 0
    eval_frequency: int = 200
    batch_size: Optional[int] = None
    nlp_batch_size: Optional[int] = None
    accumulate_gradient: Optional[int] = None
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Dict[str, Any]) -> "TrainingSettings":
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in values.items() if k in names})


def quickstart_config(lang: str, hardware: HardwareSettings) -> Any:
    """spaCy's own `init config` output for an NER pipeline."""
    from spacy.cli.init_config import init_config

    return init_config(
        lang=lang, pipeline=["ner"], optimize=hardware.optimize, gpu=hardware.gpu, silent=True
    )


def apply_settings(
    config: Any,
    hardware: HardwareSettings,
    training: TrainingSettings,
    *,
    train_path: Optional[str] = None,
    dev_path: Optional[str] = None,
) -> Any:
    """Put hardware and hyperparameter values on the config paths spaCy reads them from."""
    cfg = config.copy()
    cfg["paths"]["train"] = train_path
    cfg["paths"]["dev"] = dev_path
    cfg["system"]["seed"] = training.seed
    cfg["system"]["gpu_allocator"] = hardware.gpu_allocator
    if hardware.gpu_allocator is None:
        cfg["system"]["gpu_allocator"] = None

    t = cfg["training"]
    t["dropout"] = training.dropout
    t["patience"] = training.patience
    t["max_steps"] = training.max_steps
    t["max_epochs"] = training.max_epochs
    t["eval_frequency"] = training.eval_frequency
    if training.accumulate_gradient is not None:
        t["accumulate_gradient"] = training.accumulate_gradient

    opt = t["optimizer"]
    opt["beta1"] = training.beta1
    opt["beta2"] = training.beta2
    opt["eps"] = training.eps
    opt["L2"] = training.L2
    opt["grad_clip"] = training.grad_clip
    if training.warmup_steps is not None:
        opt["learn_rate"] = {
            "@schedules": "warmup_linear.v1",
            "warmup_steps": training.warmup_steps,
            "total_steps": training.max_steps,
            "initial_rate": training.learning_rate,
        }
    else:
        opt["learn_rate"] = training.learning_rate

    if training.batch_size is not None:
        # A fixed size replaces the efficiency quickstart's compounding schedule.
        t["batcher"]["size"] = training.batch_size
    if training.nlp_batch_size is not None:
        cfg["nlp"]["batch_size"] = training.nlp_batch_size

    t["logger"] = {"@loggers": LOGGER_NAME, "console": True, "progress_bar": None}

    if "transformer" in cfg["components"]:
        model = cfg["components"]["transformer"]["model"]
        if hardware.transformer_name:
            model["name"] = hardware.transformer_name
        model["mixed_precision"] = hardware.mixed_precision
    elif hardware.transformer_name:
        raise NerRunnerError(
            f"hardware.transformer_name={hardware.transformer_name!r} needs a transformer "
            "pipeline (hardware.optimize=accuracy and hardware.gpu=true)"
        )
    return cfg


def validate_config(config: Any) -> Any:
    """Fill defaults and validate the whole config the way `spacy train` will; return it filled."""
    from spacy import util
    from spacy.schemas import ConfigSchemaTraining
    from spacy.util import registry
    from thinc.api import ConfigValidationError

    from . import spacy_logger  # noqa: F401  registers the logger the config names

    try:
        nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
        filled = nlp.config
        interpolated = filled.interpolate()
        registry.resolve(interpolated["training"], schema=ConfigSchemaTraining, validate=True)
    except ConfigValidationError as err:
        raise NerRunnerError(f"the rendered spaCy config is invalid: {err}") from err
    return filled


def render_spacy_config(
    *,
    lang: str,
    hardware: HardwareSettings,
    training: TrainingSettings,
    train_path: Optional[str] = None,
    dev_path: Optional[str] = None,
) -> Any:
    """Quickstart + settings, validated and filled."""
    base = quickstart_config(lang, hardware)
    cfg = apply_settings(base, hardware, training, train_path=train_path, dev_path=dev_path)
    return validate_config(cfg)


def write_config(config: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    config.to_disk(path)
    return path
