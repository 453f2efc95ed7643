"""A run's outbox: everything meant for MLflow is written to the run directory first, then delivered.

`tracking/outbox.jsonl` holds one numbered record per thing to send (params, tags, a metrics step, an
artifact, the model, the registration, the run's end), `tracking/delivered.jsonl` the numbers that arrived
(with what the server answered, e.g. a model version). Delivery goes in order, so the run is only marked
ended after everything before it arrived. What is not delivered when the job ends stays pending and
`ner-runner sync RUN_DIR` delivers it later; because arrivals are recorded, nothing is sent twice, and each
kind of record is idempotent on the server for the window between "sent" and "recorded".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

log = logging.getLogger(__name__)

OUTBOX = "outbox.jsonl"
DELIVERED = "delivered.jsonl"

# deliver(record) -> result stored with the arrival (JSON-serialisable or None).
Deliver = Callable[[Dict[str, Any]], Any]


class PermanentError(Exception):
    """The server rejected a record for good (e.g. invalid value): retrying cannot help."""


def _read_jsonl(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            # a line cut short by a crash: the record was never complete, so it is not lost data
            log.warning("ignoring a truncated line in %s", path)
    return rows


class Outbox:
    """Journal plus delivery state of one run directory; safe to use from several threads."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.outbox_path = self.dir / OUTBOX
        self.delivered_path = self.dir / DELIVERED
        self._lock = threading.Lock()
        records = _read_jsonl(self.outbox_path)
        self._seq = max((r["seq"] for r in records), default=0)
        self._done = {r["seq"]: r for r in _read_jsonl(self.delivered_path)}

    def put(self, kind: str, **payload: Any) -> int:
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "kind": kind, **payload}
            with self.outbox_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
            return self._seq

    def pending(self) -> List[dict]:
        with self._lock:
            done = set(self._done)
            records = _read_jsonl(self.outbox_path)
        return [r for r in records if r["seq"] not in done]

    def delivered(self) -> Dict[int, dict]:
        with self._lock:
            return dict(self._done)

    def result_of(self, kind: str) -> Any:
        """What the server answered to the last delivered record of `kind` (e.g. the model version)."""
        kinds = {r["seq"]: r["kind"] for r in _read_jsonl(self.outbox_path)}
        for seq, row in sorted(self.delivered().items(), reverse=True):
            if kinds.get(seq) == kind and row.get("ok"):
                return row.get("result")
        return None

    def mark(self, seq: int, *, ok: bool, result: Any = None, error: Optional[str] = None) -> None:
        row = {"seq": seq, "ok": ok, "at": int(time.time() * 1000)}
        if result is not None:
            row["result"] = result
        if error is not None:
            row["error"] = error
        with self._lock:
            with self.delivered_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
                fh.flush()
            self._done[seq] = row

    def deliver_one(self, record: dict, deliver: Deliver) -> bool:
        """Send one record; True when it is settled (arrived or rejected for good)."""
        try:
            result = deliver(record)
        except PermanentError as err:
            log.error("MLflow rejected %s record %s for good: %s", record["kind"], record["seq"], err)
            self.mark(record["seq"], ok=False, error=str(err))
            return True
        self.mark(record["seq"], ok=True, result=result)
        return True

    def flush(self, deliver: Deliver) -> int:
        """Deliver what is pending, in order, stopping at the first failure; returns how many are left."""
        pending = self.pending()
        for i, record in enumerate(pending):
            try:
                self.deliver_one(record, deliver)
            except Exception as err:
                log.warning("%s record %s not delivered: %s", record["kind"], record["seq"], err)
                return len(pending) - i
        return 0


class Courier:
    """Background delivery while the job runs: never blocks the caller, retries with backoff."""

    def __init__(self, outbox: Outbox, deliver: Deliver, *, backoff_s: float = 1.0, max_backoff_s: float = 10.0):
        self.outbox = outbox
        self.deliver = deliver
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.failed_attempts = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._work, name="mlflow-delivery", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._idle.clear()
        self._wake.set()

    def _work(self) -> None:
        delay = self.backoff_s
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                pending = self.outbox.pending()
                if not pending:
                    self._idle.set()
                    break
                record = pending[0]
                try:
                    self.outbox.deliver_one(record, self.deliver)
                    delay = self.backoff_s
                except Exception as err:  # the server is away: keep the record, training goes on
                    self.failed_attempts += 1
                    log.warning(
                        "MLflow: %s record %s not delivered yet (%s); retrying in %.0fs",
                        record["kind"], record["seq"], _short(err), delay,
                    )
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, self.max_backoff_s)

    def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for everything to arrive, then stop; returns how many are left."""
        self.notify()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.outbox.pending():
                break
            self._idle.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        return len(self.outbox.pending())


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]
