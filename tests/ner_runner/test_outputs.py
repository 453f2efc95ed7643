"""Run directories delivered to gs:// (the GCS emulator), result.json last."""

from __future__ import annotations

import json

import pytest

from ner_runner.errors import NerRunnerError
from ner_runner.outputs import split_gs_uri, upload_run_dir
from tests.hydra_plugins.conftest import BUCKET, gcs  # noqa: F401  (fixture)


def test_upload_keeps_relative_paths_and_writes_result_last(tmp_path, gcs):  # noqa: F811
    run = tmp_path / "run"
    (run / "model-best").mkdir(parents=True)
    (run / "model-best" / "meta.json").write_text('{"lang": "en"}')
    (run / "config.cfg").write_text("[nlp]\n")
    (run / "result.json").write_text(json.dumps({"status": "COMPLETED", "objective": 0.5, "error": None}))
    names = upload_run_dir(run, f"gs://{BUCKET}/outputs/{tmp_path.name}/")
    prefix = f"outputs/{tmp_path.name}/"
    assert names[-1] == prefix + "result.json"
    assert sorted(names) == sorted(prefix + p for p in ("config.cfg", "model-best/meta.json", "result.json"))
    bucket = gcs.bucket(BUCKET)
    assert json.loads(bucket.blob(prefix + "result.json").download_as_text())["objective"] == 0.5
    assert bucket.blob(prefix + "model-best/meta.json").download_as_text() == '{"lang": "en"}'


def test_bad_destinations_are_one_line_errors(tmp_path, gcs):  # noqa: F811
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(NerRunnerError, match="output_uri must look like gs://BUCKET/PREFIX"):
        split_gs_uri("/local/path")
    with pytest.raises(NerRunnerError, match="could not upload .* to gs://no-such-bucket/x"):
        upload_run_dir(tmp_path, "gs://no-such-bucket/x")
