"""The rendered config is spaCy's quickstart plus our settings, valid for plain `spacy train`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ner_runner.errors import NerRunnerError
from ner_runner.spacy_config import (
    LOGGER_NAME,
    HardwareSettings,
    TrainingSettings,
    render_spacy_config,
    write_config,
)

TEAM = TrainingSettings(
    learning_rate=5e-5,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    warmup_steps=250,
    patience=1600,
    max_steps=20000,
    eval_frequency=200,
    batch_size=2000,
    nlp_batch_size=128,
    accumulate_gradient=3,
    seed=7,
)
T4 = HardwareSettings(
    optimize="accuracy", gpu=True, transformer_name="roberta-base", gpu_allocator="pytorch", mixed_precision=True
)


def test_gpu_t4_config_carries_every_team_hyperparameter():
    cfg = render_spacy_config(lang="en", hardware=T4, training=TEAM)
    t = cfg["training"]
    opt = t["optimizer"]
    assert opt["@optimizers"] == "Adam.v1"
    assert (opt["beta1"], opt["beta2"], opt["eps"]) == (0.9, 0.999, 1e-8)
    assert opt["learn_rate"]["initial_rate"] == 5e-5
    assert opt["learn_rate"]["total_steps"] == 20000
    assert (t["patience"], t["max_steps"], t["eval_frequency"]) == (1600, 20000, 200)
    assert t["batcher"]["size"] == 2000
    assert cfg["nlp"]["batch_size"] == 128
    assert cfg["nlp"]["pipeline"] == ["transformer", "ner"]
    model = cfg["components"]["transformer"]["model"]
    assert model["name"] == "roberta-base"
    assert model["mixed_precision"] is True
    assert cfg["system"]["gpu_allocator"] == "pytorch"
    assert cfg["system"]["seed"] == 7
    assert t["logger"]["@loggers"] == LOGGER_NAME


def test_cpu_config_is_the_efficiency_quickstart_with_our_values():
    cfg = render_spacy_config(
        lang="en", hardware=HardwareSettings(), training=TrainingSettings(learning_rate=0.002, max_steps=50)
    )
    assert cfg["nlp"]["pipeline"] == ["tok2vec", "ner"]
    assert cfg["training"]["optimizer"]["learn_rate"] == 0.002
    assert cfg["training"]["max_steps"] == 50
    # no batch size given: the quickstart's compounding schedule stays
    assert cfg["training"]["batcher"]["size"]["@schedules"] == "compounding.v1"
    assert cfg["system"]["gpu_allocator"] is None


def test_transformer_name_without_a_transformer_pipeline_is_a_user_error():
    with pytest.raises(NerRunnerError, match="transformer_name"):
        render_spacy_config(lang="en", hardware=HardwareSettings(transformer_name="roberta-base"), training=TEAM)


@pytest.mark.slow
def test_plain_spacy_train_runs_the_rendered_config(tmp_path, fashion_small):
    from ner_runner.data import convert_corpus

    corpus = convert_corpus(
        fashion_small["train"], fashion_small["dev"], labels=["FASHION_BRAND"], out_dir=tmp_path / "corpus"
    )
    cfg = render_spacy_config(
        lang="en",
        hardware=HardwareSettings(),
        training=TrainingSettings(max_steps=2, eval_frequency=1),
        train_path=str(corpus.train),
        dev_path=str(corpus.dev),
    )
    path = write_config(cfg, tmp_path / "config.cfg")
    proc = subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(path),
            "--paths.train", str(corpus.train), "--paths.dev", str(corpus.dev),
            "--output", str(tmp_path / "out"),
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "out" / "model-best" / "meta.json").is_file()
