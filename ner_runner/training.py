"""Training and evaluation through spaCy's own API (what `spacy train` and `spacy evaluate` call)."""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from .errors import NerRunnerError

if TYPE_CHECKING:
    from .checkpoints import Checkpoint, CheckpointStore

log = logging.getLogger(__name__)


def setup_device(gpu_id: int) -> None:
    """Use the GPU the hardware group asks for, or say clearly that there is none."""
    if gpu_id < 0:
        return
    from thinc.api import require_gpu

    try:
        require_gpu(gpu_id)
    except Exception as err:
        raise NerRunnerError(
            f"hardware.gpu_id={gpu_id} needs a CUDA GPU, but none is usable here ({err}). "
            "Train locally with hardware=cpu, or set hardware.gpu_id=-1."
        ) from err


def train_pipeline(
    config_path: Path,
    output_dir: Path,
    *,
    gpu_id: int = -1,
    overrides: Optional[Mapping[str, Any]] = None,
    checkpoints: Optional["CheckpointStore"] = None,
    resume: Optional["Checkpoint"] = None,
) -> Path:
    """Train with spaCy's loop; writes model-best and model-last into `output_dir`.

    With `checkpoints`, the resumable loop below writes a checkpoint at every evaluation step and,
    given `resume`, continues from it; without, this is exactly `spacy train`.
    """
    from spacy import util
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    from . import spacy_logger  # noqa: F401  registers the logger named in the config

    setup_device(gpu_id)
    config = util.load_config(config_path, overrides=dict(overrides or {}), interpolate=False)
    nlp = init_nlp(config, use_gpu=gpu_id)
    output_dir.mkdir(parents=True, exist_ok=True)
    if checkpoints is None:
        train(nlp, output_dir, use_gpu=gpu_id, stdout=sys.stdout, stderr=sys.stderr)
    else:
        train_resumable(nlp, output_dir, checkpoints, resume=resume, use_gpu=gpu_id)
    best = output_dir / "model-best"
    if not best.exists():
        raise NerRunnerError(f"training finished without writing {best}")
    return best


def evaluate_with_predictions(
    model_path: Path, dev_path: Path, *, gpu_id: int = -1
) -> Tuple[Any, Dict[str, Any], List[Any]]:
    """(nlp, scores, predicted dev examples): one model load and one pass over the dev set.

    What `nlp.evaluate` does (pipe the dev docs, score them with the pipeline's Scorer, add `speed`),
    except that it keeps the predictions, so the run report does not predict the dev set a second time.
    """
    import time

    import spacy
    from spacy.scorer import Scorer
    from spacy.training import Corpus

    setup_device(gpu_id)
    nlp = spacy.load(model_path)
    examples = list(Corpus(str(dev_path), gold_preproc=False)(nlp))
    start = time.perf_counter()
    for eg, doc in zip(examples, nlp.pipe((eg.predicted for eg in examples), batch_size=nlp.batch_size)):
        eg.predicted = doc
    seconds = time.perf_counter() - start
    scores = Scorer(nlp=nlp).score(examples)
    scores["speed"] = sum(len(eg.predicted) for eg in examples) / max(seconds, 1e-9)
    return nlp, json.loads(json.dumps(scores, default=float)), examples


# --------------------------------------------------------------------------- resumable training
#
# spaCy's `train` has no resume. `train_resumable` is `spacy.training.loop.train` (spaCy 3.8) with three
# changes: it starts from a checkpoint's weights, optimizer state, step, schedules and evaluation history;
# it writes a checkpoint after every evaluation (before the logger sees the step, so a step's metrics are
# never logged twice); and its batch stream (`ReplayableBatches`) records where it stands, so a resumed
# run continues with exactly the batch that comes next. A fresh run draws the same random numbers in the
# same order as `spacy train`, so both train the same model for the same config and seed. Everything else
# (corpora, batcher, evaluation, update_meta, model-best/model-last in the run directory) is spaCy's.


def _json_random_state() -> List[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_random_state(saved: Sequence[Any]) -> None:
    version, internal, gauss = saved
    random.setstate((version, tuple(internal), gauss))


class ReplayableBatches:
    """spaCy's `create_train_batches` (3.8) that records where it stands, and can start from there.

    spaCy shuffles the training examples in place with the global `random` at the start of every epoch,
    so an epoch's order depends on every earlier shuffle and on the random numbers training drew in
    between. The stream keeps the global random state from just before the corpus is read and before
    each epoch's shuffle (one Mersenne Twister state each) and the number of batches yielded in the
    current epoch: `position()` goes into the checkpoint. `ReplayableBatches(..., start=position)` reads
    the corpus and redoes the recorded shuffles with those states, skips the consumed batches, and
    leaves the global random state as it found it: resume then restores the checkpoint's state, so the
    next epoch's shuffle sees the same state as in the uninterrupted run.
    """

    def __init__(
        self,
        nlp: Any,
        corpus: Callable[[Any], Iterable[Any]],
        batcher: Callable[[Iterable[Any]], Iterable[Any]],
        max_epochs: int,
        *,
        start: Optional[Mapping[str, Any]] = None,
    ):
        self.nlp, self.corpus, self.batcher, self.max_epochs = nlp, corpus, batcher, max_epochs
        self.read: Optional[List[Any]] = None  # random state before the corpus was read
        self.shuffles: List[Optional[List[Any]]] = []  # random state before each epoch's shuffle
        self.in_epoch = 0  # batches yielded in the current epoch
        self.skipped = 0  # batches skipped on resume
        self._examples: Any = None
        self._pending: Optional[Iterator[Any]] = None  # the rest of the current epoch
        if start and start.get("shuffles"):
            self._replay(start)
        self._stream = self._generate()

    def __iter__(self) -> Iterator[Tuple[int, Any]]:
        return self

    def __next__(self) -> Tuple[int, Any]:
        return next(self._stream)

    def position(self) -> Dict[str, Any]:
        """JSON-able: what rebuilds this stream right after its last yielded batch."""
        return {"read": self.read, "shuffles": list(self.shuffles), "in_epoch": self.in_epoch}

    def _read(self) -> None:
        from spacy.errors import Errors

        if self.max_epochs >= 0:  # as spaCy: in memory, shuffled each epoch; else streamed
            self.read = _json_random_state()
            self._examples = list(self.corpus(self.nlp))
            if not self._examples:
                raise ValueError(Errors.E986)

    def _new_epoch(self) -> None:
        if self.max_epochs >= 0:
            self.shuffles.append(_json_random_state())
            random.shuffle(self._examples)
        else:
            self.shuffles.append(None)
            self._examples = self.corpus(self.nlp)
        self._pending = iter(self.batcher(self._examples))
        self.in_epoch = 0

    def _replay(self, start: Mapping[str, Any]) -> None:
        outer = random.getstate()
        try:
            if start.get("read") is not None:
                _set_random_state(start["read"])
            self._read()
            recorded = list(start["shuffles"])
            for i, state in enumerate(recorded):
                if state is not None:
                    _set_random_state(state)
                self._new_epoch()
                if i < len(recorded) - 1 and self.max_epochs < 0:
                    for _ in self._pending:  # a streamed epoch can only be skipped by reading it
                        pass
            for _ in range(int(start.get("in_epoch") or 0)):
                if next(self._pending, None) is None:
                    break
                self.skipped += 1
            self.in_epoch = self.skipped
        finally:
            random.setstate(outer)

    def _generate(self) -> Iterator[Tuple[int, Any]]:
        if self._pending is None:
            self._read()
        while True:
            if self._pending is None:
                if self.max_epochs >= 1 and len(self.shuffles) == self.max_epochs:
                    return
                self._new_epoch()
            epoch = len(self.shuffles) - 1
            for batch in self._pending:
                self.in_epoch += 1
                yield epoch, batch
            self._pending = None


def train_while_improving_from(
    nlp: Any,
    optimizer: Any,
    train_data: Iterator[Tuple[int, Any]],
    evaluate: Callable[[], Tuple[float, Any]],
    *,
    dropout: Any,
    eval_frequency: int,
    accumulate_gradient: int,
    patience: int,
    max_steps: int,
    exclude: List[str],
    annotating_components: List[str],
    before_update: Optional[Callable[[Any, Dict[str, Any]], None]],
    first_step: int = 0,
    results: Optional[List[Tuple[float, int]]] = None,
    words_seen: int = 0,
    seconds: int = 0,
):
    """`spacy.training.loop.train_while_improving`, starting at `first_step` with earlier results.

    `train_data` must already be positioned at batch `first_step`; the step numbers, evaluation
    cadence, patience and max_steps are those of the uninterrupted run.
    """
    from timeit import default_timer as timer

    from spacy.training.loop import subdivide_batch
    from thinc.api import constant

    dropouts = constant(dropout) if isinstance(dropout, float) else dropout
    for _ in range(first_step):  # the schedule values already used
        next(dropouts)
    results = list(results or [])
    losses: Dict[str, float] = {}
    start_time = timer() - seconds
    for step, (epoch, batch) in enumerate(train_data, start=first_step):
        if before_update:
            before_update(nlp, {"step": step, "epoch": epoch})
        drop = next(dropouts)
        for subbatch in subdivide_batch(batch, accumulate_gradient):
            nlp.update(subbatch, drop=drop, losses=losses, sgd=False, exclude=exclude, annotates=annotating_components)
        for name, proc in nlp.pipeline:
            if (
                name not in exclude
                and hasattr(proc, "is_trainable")
                and proc.is_trainable
                and proc.model not in (True, False, None)
            ):
                proc.finish_update(optimizer)
        optimizer.step_schedules()
        if not (step % eval_frequency):
            if optimizer.averages:
                with nlp.use_params(optimizer.averages):
                    score, other_scores = evaluate()
            else:
                score, other_scores = evaluate()
            results.append((score, step))
            is_best_checkpoint = score == max(results)[0]
        else:
            score, other_scores = (None, None)
            is_best_checkpoint = None
        words_seen += sum(len(eg) for eg in batch)
        info = {
            "epoch": epoch,
            "step": step,
            "score": score,
            "other_scores": other_scores,
            "losses": losses,
            "checkpoints": results,
            "seconds": int(timer() - start_time),
            "words": words_seen,
        }
        yield batch, info, is_best_checkpoint
        if is_best_checkpoint is not None:
            losses = {}
        best_result = max((r_score, -r_step) for r_score, r_step in results)
        best_step = -best_result[1]
        if patience and (step - best_step) >= patience:
            break
        if max_steps and step >= max_steps:
            break


def _checkpoint_state(
    info: Dict[str, Any], history: List[Dict[str, Any]], batches: ReplayableBatches, *, finished: bool
) -> Dict[str, Any]:
    """What a checkpoint records besides the weights; `history` gets this step's metrics appended."""
    from .spacy_logger import step_metrics

    if info.get("score") is not None and not (history and history[-1]["step"] == info["step"]):
        history.append({"step": int(info["step"]), "metrics": step_metrics(info)})
    results = [(float(s), int(st)) for s, st in info["checkpoints"]]
    best_score, neg_step = max(((s, -st) for s, st in results), default=(None, 0))
    state = {
        "step": int(info["step"]),
        "epoch": int(info["epoch"]),
        "best_score": best_score,
        "best_step": -neg_step if results else None,
        "results": results,
        "words": int(info["words"]),
        "seconds": int(info["seconds"]),
        "finished": finished,
        "history": history,  # every evaluation's metrics: the resumed run's learning curve starts at 0
        "batches": batches.position(),  # where the batch stream stands after this step's batch
    }
    if info.get("score") is not None:
        state["metrics"] = history[-1]["metrics"]
    return state


def _save_checkpoint(
    store: "CheckpointStore",
    nlp: Any,
    optimizer: Any,
    info: Dict[str, Any],
    history: List[Dict[str, Any]],
    batches: ReplayableBatches,
    best: Path,
    *,
    finished: bool,
) -> None:
    """A checkpoint that cannot be written (full disk, storage outage) costs resumability, not the run."""
    try:
        state = _checkpoint_state(info, history, batches, finished=finished)
        store.save(nlp=nlp, optimizer=optimizer, state=state, best_model=best)
    except Exception as err:
        log.warning("checkpoint for step %s not written (training goes on): %s", info.get("step"), err)


def _nothing_left(resume: "Checkpoint", T: Dict[str, Any]) -> bool:
    """The checkpointed run had already stopped (finished, max_steps or patience reached)."""
    meta = resume.meta
    if resume.finished:
        return True
    if T["max_steps"] and resume.step >= T["max_steps"]:
        return True
    best_step = meta.get("best_step")
    return bool(T["patience"] and best_step is not None and resume.step - int(best_step) >= T["patience"])


def _restore(
    resume: "Checkpoint", nlp: Any, optimizer: Any, batches: ReplayableBatches, best: Path
) -> Dict[str, Any]:
    """Bring a freshly initialised pipeline and optimizer to the checkpointed step.

    `batches` was built from the checkpoint's batch position. Returns the keyword arguments that make
    `train_while_improving_from` continue after that step.
    """
    from .checkpoints import restore_optimizer_state, restore_rng_state

    meta = resume.meta
    nlp.from_disk(resume.path / "model-last", exclude=["config"])  # keep this run's [paths]
    restored = restore_optimizer_state(optimizer, nlp, resume.path / "optimizer.npz", meta.get("optimizer") or {})
    first_step = resume.step + 1
    for _ in range(first_step):  # learning-rate (and other optimizer) schedules, one value per step
        optimizer.step_schedules()
    wanted = int((meta.get("batches") or {}).get("in_epoch") or 0)
    if batches.skipped < wanted:
        log.warning(
            "epoch %s ended after %d of its %d already trained batches", meta.get("epoch"), batches.skipped, wanted
        )
    restore_rng_state(json.loads((resume.path / "rng.json").read_text()))
    if (resume.path / "model-best").is_dir():
        shutil.copytree(resume.path / "model-best", best)
    log.info(
        "continuing at step %d: %d optimizer arrays restored, %d epoch shuffles replayed, %d batches skipped, "
        "learn rate %s",
        first_step,
        restored,
        len(batches.shuffles),
        batches.skipped,
        optimizer.learn_rate,
    )
    return {
        "first_step": first_step,
        "results": [(float(s), int(st)) for s, st in meta.get("results") or []],
        "words_seen": int(meta.get("words") or 0),
        "seconds": int(meta.get("seconds") or 0),
    }


def train_resumable(
    nlp: Any,
    output_path: Path,
    checkpoints: "CheckpointStore",
    *,
    resume: Optional["Checkpoint"] = None,
    use_gpu: int = -1,
    stdout: Any = sys.stdout,
    stderr: Any = sys.stderr,
) -> Path:
    """spaCy's `train` with a checkpoint at every evaluation step and resume from `resume`."""
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.loop import (
        DIR_MODEL_BEST,
        DIR_MODEL_LAST,
        clean_output_dir,
        create_before_to_disk_callback,
        create_evaluation_callback,
        update_meta,
    )
    from spacy.util import registry, resolve_dot_names
    from thinc.api import fix_random_seed, set_gpu_allocator
    from wasabi import Printer

    msg = Printer(no_print=True)
    config = nlp.config.interpolate()
    seed = config["training"]["seed"]
    if seed is not None:
        fix_random_seed(seed)
    allocator = config["training"]["gpu_allocator"]
    if use_gpu >= 0 and allocator:
        set_gpu_allocator(allocator)
    T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
    optimizer = T["optimizer"]
    before_to_disk = create_before_to_disk_callback(T["before_to_disk"])
    frozen_components = T["frozen_components"]

    def save_model(is_best: bool) -> None:
        with nlp.use_params(optimizer.averages):
            before_to_disk(nlp).to_disk(output_path / DIR_MODEL_LAST)
        if is_best:
            if (output_path / DIR_MODEL_BEST).exists():
                shutil.rmtree(output_path / DIR_MODEL_BEST)
            shutil.copytree(output_path / DIR_MODEL_LAST, output_path / DIR_MODEL_BEST)

    start = resume.meta.get("batches") if resume is not None else None
    batches = ReplayableBatches(nlp, train_corpus, T["batcher"], T["max_epochs"], start=start)
    clean_output_dir(output_path)
    checkpoints.clean_stale()
    progress: Dict[str, Any] = {"first_step": 0, "results": [], "words_seen": 0, "seconds": 0}
    history: List[Dict[str, Any]] = []
    if resume is not None:
        progress = _restore(resume, nlp, optimizer, batches, output_path / DIR_MODEL_BEST)
        history = list(resume.meta.get("history") or [])
    if resume is not None and _nothing_left(resume, T):
        log.info("the checkpoint is from a finished training run: nothing left to train")
        save_model(False)
        return output_path / DIR_MODEL_LAST

    steps = train_while_improving_from(
        nlp,
        optimizer,
        batches,
        create_evaluation_callback(nlp, dev_corpus, T["score_weights"]),
        dropout=T["dropout"],
        accumulate_gradient=T["accumulate_gradient"],
        patience=T["patience"],
        max_steps=T["max_steps"],
        eval_frequency=T["eval_frequency"],
        exclude=frozen_components,
        annotating_components=T["annotating_components"],
        before_update=T["before_update"],
        **progress,
    )
    stdout.write(msg.info(f"Pipeline: {nlp.pipe_names}") + "\n")
    stdout.write(msg.info(f"Initial learn rate: {optimizer.learn_rate}") + "\n")
    with nlp.select_pipes(disable=frozen_components):
        log_step, finalize_logger = T["logger"](nlp, stdout, stderr)
    info: Optional[Dict[str, Any]] = None
    try:
        for _batch, info, is_best in steps:
            if is_best is not None:
                with nlp.select_pipes(disable=frozen_components):
                    update_meta(T, nlp, info)
                save_model(is_best)
                info["output_path"] = str(output_path / DIR_MODEL_LAST)
                # The checkpoint is complete before the step is logged: metrics are never sent twice.
                _save_checkpoint(
                    checkpoints, nlp, optimizer, info, history, batches, output_path / DIR_MODEL_BEST, finished=False
                )
            log_step(info if is_best is not None else None)
    except Exception as e:
        stdout.write(msg.warn(f"Aborting and saving the final best model. Encountered exception: {e!r}") + "\n")
        raise
    finally:
        finalize_logger()
        save_model(False)
    if info is not None:  # training ended normally: a final checkpoint lets a later failure skip it
        _save_checkpoint(
            checkpoints, nlp, optimizer, info, history, batches, output_path / DIR_MODEL_BEST, finished=True
        )
    stdout.write(msg.good("Saved pipeline to output directory", output_path / DIR_MODEL_LAST) + "\n")
    return output_path / DIR_MODEL_LAST
