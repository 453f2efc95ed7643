"""One short training run on fashion_brands, then everything a person sees of it: the printed summary, the
report artifacts in MLflow (checked against evaluation.json and the metrics journal) and `ner-runner runs`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import quick_overrides, run_py
from tests.ner_runner.test_report import PNG_MAGIC, count_marks

pytestmark = pytest.mark.slow

REPORT_FILES = {
    "summary.txt",
    "per_entity.png",
    "per_entity.json",
    "learning_curve.png",
    "learning_curve.json",
    "predictions.html",
    "confusion.json",
    "confusion.md",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fashion_small):
    """A 6-step CPU run logged to the phase1 experiment of a fresh sqlite store."""
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("results")
    proc = run_py(quick_overrides(fashion_small, tmp, steps=6, extra=["tracking.experiment=ner-phase1"]))
    run_dir = tmp / "run"
    result = json.loads((run_dir / "result.json").read_text())
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    return SimpleNamespace(
        proc=proc,
        tmp=tmp,
        run_dir=run_dir,
        uri=uri,
        client=client,
        run_id=result["mlflow_run_id"],
        experiment_id=result["mlflow_experiment_id"],
        evaluation=json.loads((run_dir / "evaluation.json").read_text()),
        data_report=json.loads((run_dir / "data_report.json").read_text()),
    )


def _artifact(t, name: str) -> Path:
    return Path(t.client.download_artifacts(t.run_id, f"report/{name}", str(t.tmp / "downloads")))


def test_report_artifacts_are_in_mlflow(trained):
    listed = {Path(a.path).name for a in trained.client.list_artifacts(trained.run_id, "report")}
    assert REPORT_FILES <= listed
    for png in ("per_entity.png", "learning_curve.png"):
        assert _artifact(trained, png).read_bytes().startswith(PNG_MAGIC)


def test_summary_matches_the_evaluation(trained):
    ev = trained.evaluation
    out = trained.proc.stdout.split("ner-runner run summary")[1]
    assert f"dev  P {ev['ents_p']:.3f}  R {ev['ents_r']:.3f}  F {ev['ents_f']:.3f}  (30 examples)" in out
    row = next(l for l in out.splitlines() if l.startswith("FASHION_BRAND"))
    per = ev["ents_per_type"]["FASHION_BRAND"]
    gold = trained.data_report["dev"]["entities"]["FASHION_BRAND"]
    assert row.split() == ["FASHION_BRAND", f"{per['p']:.3f}", f"{per['r']:.3f}", f"{per['f']:.3f}", str(gold)]
    assert f"model:     {trained.run_dir / 'model-best'}" in out
    assert (
        f"mlflow ui --backend-store-uri {trained.uri}  then open "
        f"http://127.0.0.1:5000/#/experiments/{trained.experiment_id}/runs/{trained.run_id}"
    ) in out
    seconds = float(re.search(r"wall time: ([\d.]+)s", out).group(1))
    assert 0 < seconds <= trained.client.get_run(trained.run_id).data.metrics["wall_time_s"] + 60
    # the same text is kept with the run
    assert _artifact(trained, "summary.txt").read_text().strip() in trained.proc.stdout
    # nothing redraws lines in a log: no bars when output is not a terminal
    assert "\r" not in trained.proc.stdout + trained.proc.stderr


def test_charts_plot_the_evaluation_and_the_journal(trained):
    ev = trained.evaluation
    per_entity = json.loads(_artifact(trained, "per_entity.json").read_text())
    per = ev["ents_per_type"]["FASHION_BRAND"]
    assert per_entity == {"labels": ["FASHION_BRAND"], "p": [per["p"]], "r": [per["r"]], "f": [per["f"]]}

    curve = json.loads(_artifact(trained, "learning_curve.json").read_text())
    assert curve["steps"] == [0, 3, 6]
    history = sorted(trained.client.get_metric_history(trained.run_id, "ents_f"), key=lambda m: m.step)
    assert curve["scores"]["ents_f"] == pytest.approx([m.value for m in history])
    losses = sorted(trained.client.get_metric_history(trained.run_id, "loss/ner"), key=lambda m: m.step)
    assert curve["losses"]["loss/ner"] == pytest.approx([m.value for m in losses])
    assert max(curve["scores"]["ents_f"]) == pytest.approx(ev["ents_f"])  # model-best is the best step


def test_confusion_reproduces_the_evaluation(trained):
    ev = trained.evaluation
    confusion = json.loads(_artifact(trained, "confusion.json").read_text())
    for key in ("p", "r", "f"):
        assert confusion["overall"][key] == pytest.approx(ev[f"ents_{key}"])
        assert confusion["per_label"]["FASHION_BRAND"][key] == pytest.approx(ev["ents_per_type"]["FASHION_BRAND"][key])
    label = confusion["per_label"]["FASHION_BRAND"]
    assert label["gold"] == trained.data_report["dev"]["entities"]["FASHION_BRAND"]
    t = confusion["totals"]
    assert t["correct"] + t["missed"] + t["wrong_label"] + t["boundary"] == label["gold"]
    assert label["tp"] > 0 and label["fp"] > 0 and label["fn"] > 0  # the test sees every kind of count
    md = _artifact(trained, "confusion.md").read_text()
    assert f"| spurious | {t['spurious']} |" in md


def test_predictions_page_shows_the_dev_entities(trained):
    html_text = _artifact(trained, "predictions.html").read_text()
    page = count_marks(html_text)
    confusion = json.loads(_artifact(trained, "confusion.json").read_text())
    assert len(page.rows) == 30  # all of the 30 dev examples fit under the bound of 50
    assert page.marks["gold"] == trained.data_report["dev"]["entities"]["FASHION_BRAND"]
    assert page.marks["pred"] == confusion["per_label"]["FASHION_BRAND"]["predicted"]
    first_ok = next((i for i, r in enumerate(page.rows) if f'<tr class="ok" id="{r}"' in html_text), len(page.rows))
    assert all(f'<tr class="error" id="{r}"' in html_text for r in page.rows[:first_ok])
    assert first_ok == confusion["examples_with_errors"]


def test_runs_lists_the_phase_best_first(trained, capsys):
    from mlflow.tracking import MlflowClient

    from ner_runner.cli import main

    # two more runs in the same experiment: a better one with two types, and one that never finished
    client: MlflowClient = trained.client
    better = client.create_run(trained.experiment_id, tags={"overrides": "hyperparameters.learning_rate=0.002,tracking.uri=x"})
    client.log_metric(better.info.run_id, "dev_ents_f", 0.9)
    client.log_metric(better.info.run_id, "dev_ents_per_type/BRAND/f", 0.95)
    client.log_metric(better.info.run_id, "dev_ents_per_type/MODEL/f", 0.6)
    client.set_terminated(better.info.run_id)
    failed = client.create_run(trained.experiment_id, tags={"overrides": "hardware.gpu_id=0"})
    client.set_terminated(failed.info.run_id, status="FAILED")

    assert main(["runs", "--phase", "phase1", "--tracking-uri", trained.uri]) == 0
    out = capsys.readouterr().out
    assert "experiment 'ner-phase1'" in out
    lines = [l for l in out.splitlines() if re.search(r"\b[0-9a-f]{32}\b", l)]
    ids = [re.search(r"\b([0-9a-f]{32})\b", l).group(1) for l in lines]
    assert ids == [better.info.run_id, trained.run_id, failed.info.run_id]
    assert "0.9000" in lines[0] and "MODEL 0.600  BRAND 0.950" in lines[0]
    assert "hyperparameters.learning_rate=0.002" in lines[0] and "tracking.uri" not in lines[0]
    ev = trained.evaluation
    assert f"{ev['ents_f']:.4f}" in lines[1] and f"FASHION_BRAND {ev['ents_per_type']['FASHION_BRAND']['f']:.3f}" in lines[1]
    assert "data.train" not in lines[1] and "hyperparameters.eval_frequency=3" in lines[1]
    assert "FAILED" in lines[2]

    assert main(["runs", "--phase", "phase1", "--tracking-uri", trained.uri, "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert better.info.run_id in out and trained.run_id not in out

    # another phase reads its own experiment
    assert main(["runs", "--phase", "phase2", "--tracking-uri", trained.uri]) == 0
    assert "no runs in experiment 'ner-phase2'" in capsys.readouterr().out
    assert main(["runs", "--phase", "phase9", "--tracking-uri", trained.uri]) == 2
    assert "phases: phase1, phase2" in capsys.readouterr().err


def test_report_survives_a_failed_upload_and_works_untracked(trained, tmp_path, capsys, caplog):
    import spacy

    from ner_runner.results import publish_results
    from ner_runner.tracking import RunInfo

    nlp = spacy.load(trained.run_dir / "model-best")
    common = dict(nlp=nlp, dev=trained.run_dir / "corpus" / "dev.spacy", scores=trained.evaluation, model_path="m", started=0.0)

    class Unreachable:
        info = RunInfo("r1", "7", "https://mlflow.example.com")

        def log_artifact(self, path, artifact_path=None):
            raise ConnectionError("server went away")

    run_dir = tmp_path / "a"
    (run_dir / "tracking").mkdir(parents=True)
    (run_dir / "tracking" / "metrics.jsonl").write_text((trained.run_dir / "tracking" / "metrics.jsonl").read_text())
    text = publish_results(Unreachable(), run_dir=run_dir, **common)
    assert "https://mlflow.example.com/#/experiments/7/runs/r1" in capsys.readouterr().out
    assert "could not upload the run report" in caplog.text
    assert REPORT_FILES <= {p.name for p in (run_dir / "report").iterdir()}
    assert text.strip() == (run_dir / "report" / "summary.txt").read_text().strip()

    untracked = publish_results(None, run_dir=tmp_path / "b", limit=5, **common)
    assert "not tracked" in untracked
    made = {p.name for p in (tmp_path / "b" / "report").iterdir()}
    assert REPORT_FILES - {"learning_curve.png", "learning_curve.json"} <= made
    assert len(count_marks((tmp_path / "b" / "report" / "predictions.html").read_text()).rows) == 5
