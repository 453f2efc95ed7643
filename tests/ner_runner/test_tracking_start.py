"""Starting a tracked run while other jobs of the same sweep start theirs against the same store."""

from __future__ import annotations

from ner_runner.tracking import TrackedRun


def test_a_job_starts_its_run_when_another_job_created_the_experiment_first(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    # the other job creates the experiment between this job's lookup and its create (jobs of a batch
    # start together, e.g. on the Vertex launcher); the lookup still saw no experiment
    client.create_experiment("sweep")
    real_lookup = MlflowClient.get_experiment_by_name
    seen = []

    def lookup_before_the_other_job(self, name):
        seen.append(name)
        return None if len(seen) == 1 else real_lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", lookup_before_the_other_job)
    with TrackedRun(tracking_uri=uri, experiment="sweep", run_name="r", tags={}, run_dir=tmp_path / "run") as run:
        run_id = run.info.run_id
    assert seen and client.get_run(run_id).info.experiment_id == client.get_experiment_by_name("sweep").experiment_id
