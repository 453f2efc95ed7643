"""Every combination of the config groups composes; the schema rejects typos and wrong types."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from ner_runner.schema import register_configs

CONF = Path(__file__).resolve().parents[2] / "conf"


def _options(group: str):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


@pytest.mark.parametrize(
    "phase,hardware,hyperparameters",
    list(itertools.product(_options("phase"), _options("hardware"), [None, *_options("hyperparameters")])),
)
def test_every_combination_composes(phase, hardware, hyperparameters):
    overrides = [f"phase={phase}", f"hardware={hardware}"]
    if hyperparameters:
        overrides.append(f"hyperparameters={hyperparameters}")
    cfg = _compose(overrides)
    assert cfg.phase.name == phase
    assert cfg.hardware.name == hardware
    assert len(cfg.phase.labels) >= 7
    for key in ("learning_rate", "max_steps", "eval_frequency", "patience", "seed"):
        assert key in cfg.hyperparameters


def test_defaults_are_phase1_cpu_local():
    cfg = _compose([])
    assert (cfg.phase.name, cfg.hardware.name, cfg.tracking.name) == ("phase1", "cpu", "local")
    assert cfg.hyperparameters.name == "cpu"
    assert cfg.hardware.gpu_id == -1


def test_hyperparameters_follow_hardware_unless_named():
    assert _compose(["hardware=gpu_t4"]).hyperparameters.name == "transformer"
    assert _compose(["hardware=cpu"]).hyperparameters.name == "cpu"
    assert _compose(["hardware=gpu_t4", "hyperparameters=cpu"]).hyperparameters.name == "cpu"


def test_transformer_preset_carries_the_team_values():
    hp = _compose(["hardware=gpu_t4"]).hyperparameters
    assert hp.learning_rate == 5e-5
    assert (hp.beta1, hp.beta2, hp.eps) == (0.9, 0.999, 1e-8)
    assert (hp.patience, hp.max_steps, hp.eval_frequency) == (1600, 20000, 200)
    assert (hp.batch_size, hp.nlp_batch_size) == (2000, 128)


def test_gpu_t4_matches_the_team_machine():
    hw = _compose(["hardware=gpu_t4"]).hardware
    assert (hw.machine_type, hw.accelerator_type, hw.accelerator_count) == ("n1-standard-8", "NVIDIA_TESLA_T4", 1)
    assert (hw.transformer_name, hw.gpu_allocator, hw.mixed_precision, hw.gpu_id) == ("roberta-base", "pytorch", True, 0)
    gcp = _compose([]).gcp
    assert gcp.region == "europe-west2"


@pytest.mark.parametrize(
    "override",
    [
        "hyperparameters.learnign_rate=1",  # typo
        "hyperparameters.max_steps=lots",  # wrong type
        "hardware.gpu_id=zero",
        "phase.lables=[X]",
        "tracking.enabled=maybe",
        "data.trian=x.jsonl",
    ],
)
def test_schema_rejects_typos_and_wrong_types(override):
    with pytest.raises(ConfigCompositionException):
        _compose([override])


def test_data_paths_default_to_the_phase_and_can_be_overridden():
    cfg = _compose(["phase=phase2", "data.train=/x/train.jsonl"])
    assert cfg.data.train == "/x/train.jsonl"
    assert cfg.data.dev == cfg.phase.dev == "data/phase2/dev.jsonl"
