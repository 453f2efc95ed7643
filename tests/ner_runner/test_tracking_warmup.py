"""The MLflow warm-up only reads: it never creates a store, and never fails a run."""

from __future__ import annotations

import sys

from ner_runner import tracking_warmup


def test_a_new_sqlite_store_is_left_to_the_tracked_run(tmp_path):
    db = tmp_path / "mlflow.db"
    tracking_warmup.start(f"sqlite:///{db}", log_model=True).join(timeout=300)
    assert "mlflow" in sys.modules  # it did import MLflow
    assert not db.exists()  # a run that then fails validation leaves no database behind


def test_an_existing_store_is_opened_read_only_and_errors_are_swallowed(tmp_path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    before = [e.name for e in client.search_experiments()]
    tracking_warmup._warm_up(f"sqlite:///{db}", log_model=True)
    assert [e.name for e in MlflowClient(f"sqlite:///{db}").search_experiments()] == before
    assert client.search_registered_models() == []
    # an unreadable store: the warm-up gives up quietly, the tracked run reports it
    (tmp_path / "broken.db").write_text("not a database")
    tracking_warmup._warm_up(f"sqlite:///{tmp_path / 'broken.db'}", log_model=False)
