"""Our NER pyfunc beside MLflow's spaCy flavor: loads without ner_runner, and `mlflow models serve` answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_http


@pytest.fixture(scope="module")
def ruler_model(tmp_path_factory) -> Path:
    """A rule-based NER pipeline saved as our MLflow model: deterministic entities, no training."""
    import spacy

    from ner_runner.model_registry import save_model

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "FASHION_BRAND", "pattern": "Gucci"},
                                               {"label": "FASHION_BRAND", "pattern": "Zara"}])
    return save_model(nlp, tmp_path_factory.mktemp("ruler") / "model",
                      pip_requirements=[f"spacy=={spacy.__version__}"])


EXPECTED = [[{"start": 9, "end": 14, "label": "FASHION_BRAND", "text": "Gucci"},
             {"start": 19, "end": 23, "label": "FASHION_BRAND", "text": "Zara"}], []]


def test_pyfunc_predict_accepts_lists_and_frames(ruler_model):
    import mlflow.pyfunc
    import mlflow.spacy
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(ruler_model))
    texts = ["I bought Gucci and Zara", "no brands"]
    assert model.predict(texts) == EXPECTED
    assert model.predict(pd.DataFrame({"text": texts})) == EXPECTED
    assert mlflow.spacy.load_model(str(ruler_model)).pipe_names == ["entity_ruler"]
    # the loader travels with the model and does not need ner_runner
    assert (ruler_model / "code" / "spacy_ner_pyfunc.py").is_file()
    assert "import ner_runner" not in (ruler_model / "code" / "spacy_ner_pyfunc.py").read_text()


def test_mlflow_models_serve_returns_entities(ruler_model, tmp_path):
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(ruler_model), "--env-manager",
             "local", "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", 120, proc)
        body = json.dumps({"inputs": ["I bought Gucci and Zara", "no brands"]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["predictions"] == EXPECTED
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=30)
