"""`python run.py` trains exactly what `spacy train` trains, and a resumed run exactly what an uninterrupted one.

Both hinge on the batch order across epochs: spaCy reshuffles the examples in place with the global
`random` at every epoch start, so the run crosses several epoch boundaries (20 training examples).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import ROOT, _slice, quick_overrides, run_py

STEPS, EVERY = 40, 5
WEIGHTS = ("ner/model", "tok2vec/model")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, fashion_dir, fashion_small) -> Dict[str, object]:
    """One run.py run that keeps a checkpoint at every evaluation step."""
    tmp = tmp_path_factory.mktemp("batch_order")
    data = {"train": _slice(fashion_dir / "train.jsonl", tmp / "train.jsonl", 14, 6), "dev": fashion_small["dev"]}
    own = ("hydra.run.dir", "hyperparameters.eval_frequency")
    args = [a for a in quick_overrides(data, tmp, steps=STEPS) if not a.startswith(own)]
    args += [f"hyperparameters.eval_frequency={EVERY}", "tracking.log_model=false"]
    args += ["checkpoint.keep=100", "checkpoint.keep_after_success=true"]
    run_py([*args, f"hydra.run.dir={tmp / 'run1'}"])
    return {"tmp": tmp, "args": args, "run": tmp / "run1"}


def _checkpoints(tmp: Path) -> List[Path]:
    return sorted((tmp / "cache" / "checkpoints").glob("*/step-*"))


def _meta(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "checkpoint.json").read_text())


def _assert_same_model(ours: Path, theirs: Path) -> None:
    for rel in WEIGHTS:
        assert (ours / "model-last" / rel).read_bytes() == (theirs / "model-last" / rel).read_bytes(), rel
    for model in ("model-best", "model-last"):
        perf = [json.loads((d / model / "meta.json").read_text())["performance"] for d in (ours, theirs)]
        assert perf[0] == perf[1], model


@pytest.mark.slow
def test_run_py_trains_the_same_model_as_spacy_train(uninterrupted):
    run: Path = uninterrupted["run"]
    epochs = [_meta(c)["epoch"] for c in _checkpoints(uninterrupted["tmp"])]
    assert max(epochs) >= 2  # the order of epochs 1 and 2 depends on the shuffles before them
    out = uninterrupted["tmp"] / "spacy-train"
    proc = subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(run / "config.cfg"), "--output", str(out),
            "--paths.train", str(run / "corpus" / "train.spacy"), "--paths.dev", str(run / "corpus" / "dev.spacy"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_model(run, out)


@pytest.mark.slow
def test_resume_inside_an_epoch_is_bit_identical_across_later_epochs(uninterrupted):
    tmp: Path = uninterrupted["tmp"]
    checkpoints = _checkpoints(tmp)
    last_epoch = _meta(checkpoints[-1])["epoch"]
    # resume in epoch 1 (its shuffle is replayed on top of epoch 0's) with an epoch boundary still ahead
    resume = next(c for c in checkpoints if 1 <= _meta(c)["epoch"] < last_epoch and _meta(c)["batches"]["in_epoch"] > 1)
    for later in checkpoints[checkpoints.index(resume) + 1 :]:
        shutil.rmtree(later)
    again = run_py([*uninterrupted["args"], f"hydra.run.dir={tmp / 'run2'}"])
    step = _meta(resume)["step"]
    assert f"step-{step:08d}: step {step}," in again.stdout + again.stderr
    _assert_same_model(uninterrupted["run"], tmp / "run2")


def _drive(stream, n: int) -> List[tuple]:
    """Take n batches, drawing from the global random after each one as training does."""
    import random
    from itertools import islice

    out = []
    for epoch, batch in islice(stream, n):
        out.append((epoch, list(batch)))
        random.random()
    return out


@pytest.mark.parametrize("stop", [5, 12])  # inside epoch 1; right after the last batch of epoch 2
def test_stream_matches_spacy_and_resumes_from_its_position(stop):
    import random

    from spacy.training.loop import create_train_batches
    from spacy.util import minibatch

    from ner_runner.training import ReplayableBatches

    def corpus(_nlp):
        return iter(range(10))

    def batcher(examples):
        return minibatch(examples, size=3)  # 4 batches an epoch

    random.seed(0)
    spacy_order = _drive(create_train_batches(None, corpus, batcher, 0), 25)
    random.seed(0)
    ours = ReplayableBatches(None, corpus, batcher, 0)
    first = _drive(ours, stop)
    position, state = json.loads(json.dumps(ours.position())), random.getstate()
    assert first == spacy_order[:stop] and ours.in_epoch == (1 if stop == 5 else 4)

    random.seed(123)  # whatever the new process's random state is, the resumed stream replays the order
    resumed = ReplayableBatches(None, corpus, batcher, 0, start=position)
    assert resumed.skipped == position["in_epoch"] and random.random() == random.Random(123).random()
    random.setstate(state)  # resume restores the checkpoint's random state
    assert first + _drive(resumed, 25 - stop) == spacy_order

    random.seed(0)
    assert len(list(ReplayableBatches(None, corpus, batcher, 3))) == 12  # max_epochs ends the stream
