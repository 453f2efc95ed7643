"""The outbox's bookkeeping and secret scrubbing, without a server (fast)."""

from __future__ import annotations

from ner_runner.outbox import Outbox, PermanentError
from ner_runner.tracking import scrub, scrub_text


def test_outbox_delivers_in_order_resumes_after_failure_and_never_twice(tmp_path):
    box = Outbox(tmp_path)
    for i in range(4):
        box.put("metrics", step=i)
    sent, down = [], {"after": 2}

    def deliver(record):
        if len(sent) >= down["after"]:
            raise ConnectionError("server away")
        sent.append(record["step"])

    assert box.flush(deliver) == 2  # stops at the first failure, keeps the rest
    down["after"] = 99
    assert Outbox(tmp_path).flush(deliver) == 0  # a new process (sync) picks up where it stopped
    assert sent == [0, 1, 2, 3]
    assert Outbox(tmp_path).flush(deliver) == 0 and sent == [0, 1, 2, 3]


def test_permanently_rejected_record_is_recorded_not_retried(tmp_path):
    box = Outbox(tmp_path)
    box.put("params", params={"a": "1"})
    box.put("end", status="FINISHED")

    def deliver(record):
        if record["kind"] == "params":
            raise PermanentError("INVALID_PARAMETER_VALUE: changed value")

    assert box.flush(deliver) == 0
    rows = box.delivered()
    assert rows[1]["ok"] is False and "changed value" in rows[1]["error"]
    assert rows[2]["ok"] is True


def test_scrub_masks_uri_credentials_secret_keys_and_env_secret_values(monkeypatch):
    monkeypatch.setenv("SOME_API_TOKEN", "tok-123456789")
    params = scrub({
        "tracking.uri": "https://alice:pw-1234@mlflow.example.com",
        "gcp.service_account": "tok-123456789",
        "db.password": "hunter22",
        "note": "see http://bob:x9y8z7@h/p",
        "plain": "value",
    })
    assert params == {
        "tracking.uri": "https://***@mlflow.example.com",
        "gcp.service_account": "***",
        "db.password": "***",
        "note": "see http://***@h/p",
        "plain": "value",
    }
    text = scrub_text("- tracking.uri=http://u:p4ss@127.0.0.1:5000\n- +x.api_token=abc123\n"
                      "exclude_keys: []\nkey_file: null\nrun: tok-123456789\n")
    assert text == ("- tracking.uri=http://***@127.0.0.1:5000\n- +x.api_token=***\n"
                    "exclude_keys: []\nkey_file: null\nrun: ***\n")
