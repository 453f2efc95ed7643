"""The transformer path (gpu_t4's roberta + ner pipeline) trained on CPU with a tiny RoBERTa."""

from __future__ import annotations

import json

import pytest

from tests.conftest import quick_overrides, run_py

pytestmark = pytest.mark.slow


def test_tiny_roberta_trains_and_evaluates_on_cpu(tmp_path, fashion_small, tiny_roberta):
    overrides = quick_overrides(
        fashion_small,
        tmp_path,
        steps=2,
        extra=[
            "hardware=gpu_t4",
            "hardware.gpu_id=-1",
            "hardware.mixed_precision=false",
            f"hardware.transformer_name={tiny_roberta}",
            "hyperparameters.batch_size=500",
        ],
    )
    run_py(overrides)
    run_dir = tmp_path / "run"
    cfg = (run_dir / "config.cfg").read_text()
    assert f'name = "{tiny_roberta}"' in cfg
    assert "initial_rate = 0.00005" in cfg or "initial_rate = 5e-05" in cfg
    meta = json.loads((run_dir / "model-best" / "meta.json").read_text())
    assert meta["pipeline"] == ["transformer", "ner"]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "COMPLETED"
    assert 0.0 <= result["objective"] <= 1.0

    import spacy

    nlp = spacy.load(run_dir / "model-best")
    doc = nlp("I bought a jacket from Uniqlo and boots from Red Wing.")
    assert doc.has_annotation("ENT_IOB")
