"""`tracking=server`: a real `mlflow server` with artifacts in a GCS bucket (emulated), the model registry,
`ner-runner pull`, secrets, and what happens when the server is away."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import ROOT, quick_overrides, run_py
from tests.servers import MlflowServer, free_port

pytestmark = pytest.mark.slow

SECRET_PASSWORD = "pw-Zq81xkQ"
SECRET_TOKEN = "tok-8HfQ2vLmR4"


def server_overrides(data, tmp: Path, uri: str, steps: int = 4, extra=()) -> List[str]:
    base = [o for o in quick_overrides(data, tmp, steps=steps) if not o.startswith("tracking.uri=")]
    return ["tracking=server", f"tracking.uri={uri}", *base, *extra]


def ner_runner(*args: str, env: Dict[str, str] = None, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "ner_runner", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_id_of(run_dir: Path) -> str:
    return json.loads((run_dir / "tracking" / "run.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, fashion_small, mlflow_server):
    """One short training through `python run.py tracking=server`, with planted secrets."""
    tmp = tmp_path_factory.mktemp("server-run")
    uri = mlflow_server.uri.replace("http://", f"http://alice:{SECRET_PASSWORD}@")
    proc = run_py(
        server_overrides(
            fashion_small, tmp, uri, steps=4,
            extra=["tracking.promote=true", "phase.registered_model=fashion-ner-a",
                   "gcp.service_account=${oc.env:NER_TEST_API_TOKEN}"],
        ),
        env={"NER_TEST_API_TOKEN": SECRET_TOKEN},
    )
    return {"tmp": tmp, "run_dir": tmp / "run", "run_id": run_id_of(tmp / "run"), "proc": proc}


def test_server_run_metrics_and_model_objects_in_bucket(first_run, mlflow_server, gcs_emulator):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(first_run["run_id"])
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "ents_f")) == [0, 2, 4]
    evaluation = json.loads((first_run["run_dir"] / "evaluation.json").read_text())
    assert run.data.metrics["dev_ents_f"] == pytest.approx(evaluation["ents_f"])
    assert run.data.params["hyperparameters.max_steps"] == "4"

    # the server proxied the artifacts into the bucket: the job had no GCS credentials of its own
    prefix = f"mlflow/{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    objects = set(gcs_emulator.object_names(prefix))
    for name in ("model/MLmodel", "model/model.spacy/meta.json", "model/model.spacy/ner/model",
                 "model/code/spacy_ner_pyfunc.py", "model/requirements.txt",
                 "config.cfg", "evaluation.json", "hydra/config.yaml"):
        assert prefix + name in objects, name
    requirements = (first_run["run_dir"] / "tracking" / "model" / "requirements.txt").read_text().split()
    # explicit requirements: spaCy (and MLflow, which serving needs), nothing inferred
    assert sorted(r.split("==")[0] for r in requirements) == ["mlflow", "spacy"]
    assert f"spacy=={__import__('spacy').__version__}" in requirements
    # nothing left undelivered, nothing delivered twice
    outbox = [json.loads(l) for l in (first_run["run_dir"] / "tracking" / "outbox.jsonl").read_text().splitlines()]
    delivered = [json.loads(l)["seq"] for l in (first_run["run_dir"] / "tracking" / "delivered.jsonl").read_text().splitlines()]
    assert sorted(delivered) == [r["seq"] for r in outbox]


def test_spacy_flavor_and_ner_pyfunc_load_from_server(first_run, mlflow_server):
    import mlflow
    import mlflow.pyfunc
    import mlflow.spacy

    mlflow.set_tracking_uri(mlflow_server.uri)
    uri = f"runs:/{first_run['run_id']}/model"
    nlp = mlflow.spacy.load_model(uri)
    assert nlp.pipe_names == ["tok2vec", "ner"]
    texts = ["Zara and Gucci opened in London", "nothing here", "I love my Nike shoes"]
    predicted = mlflow.pyfunc.load_model(uri).predict(texts)
    expected = [
        [{"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text} for e in nlp(t).ents]
        for t in texts
    ]
    assert predicted == expected
    for text, ents in zip(texts, predicted):
        assert all(text[e["start"] : e["end"]] == e["text"] for e in ents)


def test_pull_by_run_and_by_alias_loads(first_run, mlflow_server, tmp_path):
    import spacy

    proc = ner_runner("pull", "--run-id", first_run["run_id"], "--dest", str(tmp_path / "by-run"),
                      "--tracking-uri", mlflow_server.uri)
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path / "by-run") in proc.stdout
    assert spacy.load(tmp_path / "by-run").pipe_names == ["tok2vec", "ner"]

    proc = ner_runner("pull", "--model", "fashion-ner-a", "--alias", "candidate", "--dest",
                      str(tmp_path / "by-alias"), env={"MLFLOW_TRACKING_URI": mlflow_server.uri})
    assert proc.returncode == 0, proc.stderr
    assert "ner" in spacy.load(tmp_path / "by-alias").pipe_names

    # an existing destination is not overwritten silently
    proc = ner_runner("pull", "--run-id", first_run["run_id"], "--dest", str(tmp_path / "by-run"),
                      "--tracking-uri", mlflow_server.uri)
    assert proc.returncode != 0 and "--force" in proc.stderr and "Traceback" not in proc.stderr


def test_planted_secrets_reach_no_param_tag_artifact_or_log(first_run, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(first_run["run_id"])
    assert run.data.params["gcp.service_account"] == "***"
    assert run.data.params["tracking.uri"] == mlflow_server.uri.replace("http://", "http://***@")
    texts = [run.info.run_name, *run.data.params.values(), *run.data.tags.values(),
             first_run["proc"].stdout, first_run["proc"].stderr]
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path)))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in files)
    texts += [p.read_bytes().decode("utf-8", "replace") for p in files]
    for secret in (SECRET_PASSWORD, SECRET_TOKEN):
        leaks = [line for t in texts for line in (t or "").splitlines() if secret in line]
        assert not leaks, leaks
    mv = client.search_model_versions(f"name='fashion-ner-a' and run_id='{run.info.run_id}'")[0]
    assert SECRET_PASSWORD not in mv.source


def test_registry_promotes_champion_only_to_the_better_run(first_run, fashion_small, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    run_py(server_overrides(fashion_small, tmp_path, mlflow_server.uri, steps=8,
                            extra=["tracking.promote=true", "phase.registered_model=fashion-ner-a"]))
    client = MlflowClient(mlflow_server.uri)
    versions = {mv.run_id: mv for mv in client.search_model_versions("name='fashion-ner-a'")}
    assert set(versions) == {first_run["run_id"], run_id_of(tmp_path / "run")}
    first, second = versions[first_run["run_id"]], versions[run_id_of(tmp_path / "run")]
    f1, f2 = float(first.tags["dev_ents_f"]), float(second.tags["dev_ents_f"])
    assert "dev_ents_f=" in second.description
    assert client.get_model_version_by_alias("fashion-ner-a", "candidate").version == second.version
    champion = client.get_model_version_by_alias("fashion-ner-a", "champion").version
    assert champion == (second.version if f2 > f1 else first.version)


def test_promotion_rules_and_idempotent_registration(mlflow_server):
    """Deterministic scores: champion moves only on a strictly better dev ents_f; a resend adds nothing."""
    from mlflow.tracking import MlflowClient

    from ner_runner.model_registry import register_model_version

    client = MlflowClient(mlflow_server.uri)
    exp = client.create_experiment(f"promotion-{time.time_ns()}")
    name = f"promotion-model-{time.time_ns()}"
    runs = [client.create_run(exp).info.run_id for _ in range(4)]

    def reg(i, score, promote=True):
        return register_model_version(client, name=name, run_id=runs[i], artifact_path="model",
                                      scores={"dev_ents_f": score}, promote=promote)

    def champion():
        return client.get_model_version_by_alias(name, "champion").version

    assert reg(0, 0.5)["aliases"] == ["candidate", "champion"]
    assert reg(1, 0.4)["aliases"] == ["candidate"] and champion() == "1"
    assert reg(2, 0.5)["aliases"] == ["candidate"] and champion() == "1"  # a tie does not move it
    assert reg(3, 0.6, promote=False)["aliases"] == ["candidate"] and champion() == "1"
    assert reg(3, 0.6)["version"] == "4" and champion() == "4"  # resend: same version, now promoted
    assert len(client.search_model_versions(f"name='{name}'")) == 4
    assert client.get_model_version_by_alias(name, "candidate").version == "4"


def test_server_down_at_start_fails_fast_with_one_line(tmp_path, fashion_small):
    started = time.monotonic()
    proc = run_py(
        server_overrides(fashion_small, tmp_path, f"http://127.0.0.1:{free_port()}",
                         extra=["tracking.timeout_s=5"]),
        check=False, timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "cannot reach the MLflow tracking server" in proc.stderr
    assert not (tmp_path / "run" / "corpus").exists()  # checked before any conversion
    assert elapsed < 5 + 30  # the bound plus interpreter start-up on a busy machine


def test_bad_credentials_are_one_clear_error(tmp_path):
    """A server that refuses the credentials (HTTP 401) is told apart from one that is down."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ner_runner.errors import NerRunnerError
    from ner_runner.tracking import check_tracking_server

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."}')

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(NerRunnerError, match="refused the credentials"):
            check_tracking_server(f"http://bob:{SECRET_PASSWORD}@127.0.0.1:{server.server_port}", 5)
        try:
            check_tracking_server(f"http://bob:{SECRET_PASSWORD}@127.0.0.1:{server.server_port}", 5)
        except NerRunnerError as err:
            assert SECRET_PASSWORD not in str(err)
    finally:
        server.shutdown()


def _records(run_dir: Path, kind: str) -> List[dict]:
    path = run_dir / "tracking" / "outbox.jsonl"
    if not path.is_file():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == kind]


def _delivered(run_dir: Path) -> List[int]:
    path = run_dir / "tracking" / "delivered.jsonl"
    return [json.loads(l)["seq"] for l in path.read_text().splitlines()] if path.is_file() else []


def _wait(predicate, timeout_s: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None and not predicate():
            raise AssertionError(f"job ended ({proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_outage_during_training_loses_nothing_and_sends_nothing_twice(tmp_path, fashion_small, gcs_emulator):
    """Kill the server mid-training and bring it back on the same port and store: the job delivers
    everything once; a run that ended while the server was away is completed by `ner-runner sync`."""
    from mlflow.tracking import MlflowClient

    from ner_runner.tracking import TrackedRun

    srv = MlflowServer(tmp_path / "server", artifacts_destination=f"gs://{gcs_emulator.bucket}/outage",
                       env=gcs_emulator.env()).start()
    try:
        # a second run that will end while the server is away and is left for `ner-runner sync`
        side_dir = tmp_path / "side"
        side = TrackedRun(tracking_uri=srv.uri, experiment="outage-side", run_name="side", tags={},
                          run_dir=side_dir, flush_timeout_s=1).__enter__()

        steps, every = 24, 4
        args = server_overrides(
            fashion_small, tmp_path, srv.uri, steps=steps,
            extra=[f"hyperparameters.eval_frequency={every}", "tracking.flush_timeout_s=300",
                   "phase.registered_model=fashion-ner-outage"],
        )
        import os

        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        log = (tmp_path / "job.log").open("w")
        job = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
        run_dir = tmp_path / "run"
        first_metrics = lambda: any(r["seq"] in _delivered(run_dir) for r in _records(run_dir, "metrics"))
        _wait(first_metrics, 300, "the first metrics to arrive", job)
        srv.kill()

        side.log_params({"lr": 0.1})
        side.log_metrics({"loss": 1.5}, step=1)
        (tmp_path / "note.txt").write_text("kept while the server was away")
        side.log_artifact(tmp_path / "note.txt")
        side.__exit__(None, None, None)
        assert side.undelivered >= 4  # params, metrics, artifact, end

        # training goes on without the server and finishes; the job then waits for it
        _wait(lambda: _records(run_dir, "end"), 300, "training to finish", job)
        assert job.poll() is None
        undelivered = [r for r in _records(run_dir, "metrics") if r["seq"] not in _delivered(run_dir)]
        assert undelivered, "the outage must have held back some eval steps"
        srv.start()
        job.wait(timeout=300)
        log.close()
        assert job.returncode == 0, (tmp_path / "job.log").read_text()[-3000:]
        assert "not delivered yet" in (tmp_path / "job.log").read_text()

        client = MlflowClient(srv.uri)
        run_id = run_id_of(run_dir)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        eval_steps = list(range(0, steps + 1, every))
        for key in ("ents_f", "loss/ner", "score"):
            history = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == eval_steps, key  # each eval step exactly once
        assert len(client.search_model_versions("name='fashion-ner-outage'")) == 1
        artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
        assert "model/MLmodel" in artifacts
        assert sorted(_delivered(run_dir)) == [r["seq"] for r in map(json.loads, (run_dir / "tracking" / "outbox.jsonl").read_text().splitlines())]

        # the side run: delivered by `ner-runner sync`, and a second sync has nothing left to send
        proc = ner_runner("sync", str(side_dir), "--tracking-uri", srv.uri)
        assert proc.returncode == 0, proc.stderr
        assert "0 left" in proc.stdout
        proc = ner_runner("sync", str(side_dir), "--tracking-uri", srv.uri)
        assert proc.returncode == 0 and "delivered 0 record(s), 0 left" in proc.stdout
        side_run = client.get_run(side.info.run_id)
        assert side_run.info.status == "FINISHED"
        assert side_run.data.params == {"lr": "0.1"}
        assert [m.value for m in client.get_metric_history(side.info.run_id, "loss")] == [1.5]
        assert [a.path for a in client.list_artifacts(side.info.run_id)] == ["note.txt"]
    finally:
        srv.kill()
