"""Checkpoint store: atomic writes, damaged or interrupted checkpoints skipped, optimizer state, gs://."""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path

import numpy
import pytest

from ner_runner import checkpoints as ck


@pytest.fixture(scope="module")
def trained():
    """A blank English NER pipeline after two updates: real weights and Adam moments in seconds."""
    import spacy
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    examples = [
        Example.from_dict(nlp.make_doc("I bought Nike shoes"), {"entities": [(9, 13, "FASHION_BRAND")]}),
        Example.from_dict(nlp.make_doc("Gucci is expensive"), {"entities": [(0, 5, "FASHION_BRAND")]}),
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    return nlp, optimizer, examples


def _store(location, **kw) -> ck.CheckpointStore:
    kw.setdefault("config_digest", "c" * 64)
    kw.setdefault("data_digest", "d" * 64)
    kw.setdefault("config_text", "[training]\ndropout = 0.1\n")
    return ck.CheckpointStore(str(location), **kw)


def _save(store, trained, step, tmp_path: Path) -> str:
    nlp, optimizer, _ = trained
    best = tmp_path / "model-best"
    if not best.exists():
        nlp.to_disk(best)
    state = {"step": step, "epoch": 0, "best_score": 0.5, "best_step": 0, "results": [[0.5, 0]], "finished": False}
    return store.save(nlp=nlp, optimizer=optimizer, state=state, best_model=best)


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, trained, caplog):
    store = _store(tmp_path / "ck")
    _save(store, trained, 2, tmp_path)
    _save(store, trained, 4, tmp_path)
    assert store.latest().step == 4
    model = Path(store.location) / "step-00000004" / "model-last" / "ner" / "model"
    model.write_bytes(model.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        found = store.latest()
    assert found.step == 2
    assert "step-00000004 is incomplete or damaged (model-last/ner/model has" in caplog.text


def test_interrupted_writes_are_never_read_and_are_cleaned(tmp_path, trained, caplog):
    store = _store(tmp_path / "ck")
    _save(store, trained, 2, tmp_path)
    root = Path(store.location)
    (root / ".tmp-step-00000004-999" / "model-last").mkdir(parents=True)  # killed during local staging
    (root / "step-00000006" / "model-last").mkdir(parents=True)  # killed before the marker (non-atomic store)
    with caplog.at_level(logging.WARNING):
        assert store.latest().step == 2
    assert "step-00000006 has no checkpoint.json" in caplog.text
    store.clean_stale()
    assert not (root / ".tmp-step-00000004-999").exists()


def test_keeps_only_the_newest_checkpoints(tmp_path, trained):
    store = _store(tmp_path / "ck", keep=2)
    for step in (0, 2, 4, 6):
        _save(store, trained, step, tmp_path)
    assert sorted(p.name for p in Path(store.location).iterdir()) == ["step-00000004", "step-00000006"]
    store.clear()
    assert not Path(store.location).exists()


def test_incompatible_checkpoint_is_not_used_and_fresh_start_says_why(tmp_path, trained, caplog):
    old = _store(tmp_path / "ck")
    _save(old, trained, 2, tmp_path)
    # same location (e.g. a fixed directory) but different data: never resumed
    marker = Path(old.location) / "step-00000002" / "checkpoint.json"
    meta = json.loads(marker.read_text())
    other = _store(tmp_path / "ck", data_digest="e" * 64)
    assert other.key != old.key
    other_dir = Path(other.location) / "step-00000002"
    other_dir.mkdir(parents=True)
    (other_dir / "checkpoint.json").write_text(json.dumps({**meta, "data_digest": "f" * 64}))
    with caplog.at_level(logging.WARNING):
        assert other.latest() is None
    assert "is not used: the training data differs" in caplog.text

    changed = _store(tmp_path / "ck", config_digest="9" * 64, config_text="[training]\ndropout = 0.2\n")
    with caplog.at_level(logging.INFO):
        assert changed.find_resume() is None
    assert "starting fresh" in caplog.text and "training.dropout: 0.1 -> 0.2" in caplog.text


def test_optimizer_state_survives_new_node_ids(tmp_path, trained):
    import spacy

    nlp, optimizer, examples = trained
    store = _store(tmp_path / "ck")
    _save(store, trained, 2, tmp_path)
    found = store.latest()

    fresh = spacy.blank("en")
    fresh.add_pipe("ner")
    new_opt = fresh.initialize(lambda: examples)
    fresh.from_disk(found.path / "model-last", exclude=["config"])
    n = ck.restore_optimizer_state(new_opt, fresh, found.path / "optimizer.npz", found.meta["optimizer"])
    assert n == len(optimizer.mom1) + len(optimizer.mom2) > 0
    old_names, new_names = ck._ParamNames(nlp), ck._ParamNames(fresh)
    assert set(old_names.layers) != set(new_names.layers)  # ids differ between the two pipelines
    by_name = {new_names.name(k): v for k, v in new_opt.mom1.items()}
    for k, v in optimizer.mom1.items():
        numpy.testing.assert_array_equal(by_name[old_names.name(k)], v)
    assert sorted(new_opt.nr_update.values()) == sorted(optimizer.nr_update.values())


def test_rng_state_roundtrip():
    import random

    state = ck.rng_state()
    expected = (random.random(), numpy.random.rand())
    random.seed(123)
    numpy.random.seed(123)
    ck.restore_rng_state(json.loads(json.dumps(state)))
    assert (random.random(), numpy.random.rand()) == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gcs(monkeypatch):
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="ckpt-bucket")
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    yield "gs://ckpt-bucket/vertex/checkpoints"
    server.stop()


def test_gcs_checkpoints_marker_last_and_damaged_upload_skipped(tmp_path, trained, gcs, caplog, monkeypatch):
    monkeypatch.setenv("AIP_CHECKPOINT_DIR", gcs)
    assert ck.default_location(tmp_path) == gcs
    store = _store(gcs, scratch=tmp_path / "scratch")
    _save(store, trained, 2, tmp_path)
    _save(store, trained, 4, tmp_path)
    _save(store, trained, 6, tmp_path)
    assert sorted(store.backend.names()) == ["step-00000004", "step-00000006"]
    # an upload cut short: the newest has its marker but a truncated weights object
    blob = store.backend.bucket.blob(store.backend._key("step-00000006", "model-last/ner/model"))
    blob.upload_from_string(b"cut")
    reader = _store(gcs, scratch=tmp_path / "scratch2")
    with caplog.at_level(logging.WARNING):
        found = reader.latest()
    assert found.step == 4 and (found.path / "model-best" / "meta.json").is_file()
    assert "step-00000006 is incomplete or damaged" in caplog.text
    # a different config under the same AIP_CHECKPOINT_DIR is told what differs
    changed = _store(gcs, config_digest="9" * 64, config_text="[training]\ndropout = 0.3\n", scratch=tmp_path / "s3")
    assert "training.dropout: 0.1 -> 0.3" in changed.why_fresh()
    store.clear()
    assert store.backend.names() == []


def test_optimizer_state_of_torch_layers_is_keyed_by_shim(tmp_path):
    """Transformer weights are updated through a PyTorch shim whose id keys the Adam moments."""
    from types import SimpleNamespace

    import torch
    from thinc.api import Adam, PyTorchWrapper

    def pipeline(seed):
        torch.manual_seed(seed)
        return SimpleNamespace(pipeline=[("transformer", SimpleNamespace(model=PyTorchWrapper(torch.nn.Linear(3, 2))))])

    nlp, optimizer = pipeline(0), Adam(0.01)
    model = nlp.pipeline[0][1].model
    y, backprop = model.begin_update(numpy.ones((4, 3), dtype="float32"))
    backprop(numpy.ones_like(y))
    model.finish_update(optimizer)
    arrays, counters = ck.optimizer_state(optimizer, nlp)
    assert sorted(arrays) == sorted(f"{t}|transformer/0/shim0|{p}" for t in ("mom1", "mom2", "averages") for p in ("weight", "bias"))
    numpy.savez(tmp_path / "opt.npz", **arrays)

    other, restored_opt = pipeline(1), Adam(0.01)
    assert ck.restore_optimizer_state(restored_opt, other, tmp_path / "opt.npz", counters) == 6
    shim_id = other.pipeline[0][1].model.shims[0].id
    numpy.testing.assert_array_equal(restored_opt.mom1[(shim_id, "weight")], arrays["mom1|transformer/0/shim0|weight"])
    assert restored_opt.nr_update[(shim_id, "bias")] == 1
