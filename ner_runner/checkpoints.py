"""Training checkpoints that survive preemption: atomic writes, validated reads, resume decisions.

A checkpoint is one directory per evaluation step, `step-00000400/`, under a location keyed by a digest of
the rendered spaCy config (paths removed) and the converted training data, so running the same command
again finds it even though Hydra gives every invocation a new run directory:

    <checkpoint dir>/<key>/step-00000400/
        model-last/       the raw weights training continues from (`nlp.to_disk`, no parameter averaging)
        model-best/       the best model so far, as spaCy writes it to the run directory
        optimizer.npz     optimizer moments/averages, keyed by component and layer position
        rng.json          Python, NumPy and torch CPU random states
        checkpoint.json   step, epoch, scores, MLflow run id, digests, and a manifest (size + sha256
                          of every file); written last, so its presence marks the checkpoint complete

Locally a checkpoint is staged in a `.tmp-*` directory, fsynced and renamed into place; on gs:// the
files are uploaded first and `checkpoint.json` last. A reader accepts a checkpoint only if every file in
its manifest is present with the recorded size and hash, so a kill during a write (or a truncated
upload) is skipped with a warning and the previous checkpoint is used. The previous checkpoint is
deleted only after the new one is complete.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the batch stream position (epoch shuffles) is recorded
MARKER = "checkpoint.json"
PREFIX = "step-"
STAGE_PREFIX = ".tmp-"
RESTORED = (
    "weights (model-last), model-best, optimizer moments, step count, epoch, learning-rate and dropout "
    "schedules, best score and evaluation history, batch order, Python/NumPy/torch CPU random state"
)
NOT_RESTORED = (
    "GPU (CuPy/CUDA) random state, so GPU runs continue with different dropout masks; "
    "the steps since the last checkpoint (at most eval_frequency) are trained again"
)


# --------------------------------------------------------------------------- digests


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_text(spacy_config: Any) -> str:
    """The rendered spaCy config without [paths]: the run directory differs on every invocation."""
    cfg = spacy_config.copy()
    if "paths" in cfg:
        for key in list(cfg["paths"]):
            cfg["paths"][key] = None
    return cfg.to_str()


def config_digest(spacy_config: Any) -> str:
    return hashlib.sha256(config_text(spacy_config).encode("utf-8")).hexdigest()


def data_digest(*paths: Path) -> str:
    """Digest of the converted corpora (DocBin files): labels, alignment and skips all show in them."""
    h = hashlib.sha256()
    for path in paths:
        h.update(_sha256_file(Path(path)).encode("ascii"))
    return h.hexdigest()


def checkpoint_key(cfg_digest: str, dat_digest: str) -> str:
    return hashlib.sha256(f"{cfg_digest}:{dat_digest}".encode("ascii")).hexdigest()[:16]


def default_location(cache_dir: Path) -> str:
    """Vertex sets AIP_CHECKPOINT_DIR (gs://.../checkpoints) when the job has a base output directory."""
    return os.environ.get("AIP_CHECKPOINT_DIR") or str(cache_dir / "checkpoints")


def step_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def _step_of(name: str) -> Optional[int]:
    if not name.startswith(PREFIX):
        return None
    try:
        return int(name[len(PREFIX) :])
    except ValueError:
        return None


# --------------------------------------------------------------------------- storage


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalBackend:
    """A directory on a local (or mounted) file system; publication is a rename."""

    def __init__(self, root: Path):
        self.root = root
        self.uri = str(root)

    def names(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir() and _step_of(p.name) is not None]

    def stale_stages(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.name.startswith(STAGE_PREFIX)]

    def read_marker(self, name: str) -> Optional[str]:
        path = self.root / name / MARKER
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def fetch(self, name: str, scratch: Path) -> Path:
        return self.root / name

    def new_stage(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        stage = self.root / f"{STAGE_PREFIX}{name}-{os.getpid()}"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
        return stage

    def publish(self, stage: Path, name: str) -> None:
        _fsync_tree(stage)
        final = self.root / name
        old = None
        if final.exists():  # the same step again (the last step is also an eval step): swap safely
            old = self.root / f"{STAGE_PREFIX}old-{name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(stage, final)
        _fsync_dir(self.root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def delete(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    def siblings(self) -> List[Tuple[str, "LocalBackend"]]:
        parent = self.root.parent
        if not parent.is_dir():
            return []
        return [(p.name, LocalBackend(p)) for p in parent.iterdir() if p.is_dir() and p != self.root]


class GcsBackend:
    """gs://bucket/prefix. Objects cannot be renamed atomically: the marker is uploaded last."""

    def __init__(self, uri: str, client: Any = None):
        from google.cloud import storage

        rest = uri[len("gs://") :]
        bucket, _, prefix = rest.partition("/")
        self.uri = uri.rstrip("/")
        self.prefix = prefix.strip("/")
        self.client = client or storage.Client()
        self.bucket = self.client.bucket(bucket)

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _children(self, prefix: str) -> List[str]:
        it = self.client.list_blobs(self.bucket, prefix=prefix + "/" if prefix else "", delimiter="/")
        for _ in it.pages:
            pass
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in it.prefixes]

    def names(self) -> List[str]:
        return [n for n in self._children(self.prefix) if _step_of(n) is not None]

    def stale_stages(self) -> List[str]:
        return []

    def read_marker(self, name: str) -> Optional[str]:
        from google.api_core.exceptions import NotFound

        try:
            return self.bucket.blob(self._key(name, MARKER)).download_as_text()
        except NotFound:
            return None

    def fetch(self, name: str, scratch: Path) -> Path:
        dest = scratch / name
        base = self._key(name) + "/"
        for blob in self.client.list_blobs(self.bucket, prefix=base):
            target = dest / blob.name[len(base) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
        return dest

    def new_stage(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"ner-runner-{name}-"))

    def publish(self, stage: Path, name: str) -> None:
        files = sorted(p for p in stage.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == MARKER)  # the marker goes last
        for path in files:
            blob = self.bucket.blob(self._key(name, path.relative_to(stage).as_posix()))
            blob.upload_from_filename(str(path))
        shutil.rmtree(stage, ignore_errors=True)

    def delete(self, name: str) -> None:
        for blob in list(self.client.list_blobs(self.bucket, prefix=self._key(name) + "/")):
            blob.delete()

    def siblings(self) -> List[Tuple[str, "GcsBackend"]]:
        parent, _, own = self.prefix.rpartition("/")
        bucket_uri = f"gs://{self.bucket.name}"
        out = []
        for child in self._children(parent):
            if child != own:
                uri = "/".join(p for p in (bucket_uri, parent, child) if p)
                out.append((child, GcsBackend(uri, self.client)))
        return out


def backend_for(location: str) -> Any:
    if location.startswith("gs://"):
        return GcsBackend(location)
    return LocalBackend(Path(location).expanduser())


# --------------------------------------------------------------------------- checkpoint


@dataclass
class Checkpoint:
    """A complete, verified checkpoint available as a local directory."""

    name: str
    path: Path
    meta: Dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def mlflow_run_id(self) -> Optional[str]:
        return self.meta.get("mlflow_run_id")

    @property
    def finished(self) -> bool:
        return bool(self.meta.get("finished"))


def manifest(root: Path) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MARKER:
            out[path.relative_to(root).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256_file(path)}
    return out


def verify(root: Path, files: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """None when every manifest entry is intact, else what is wrong."""
    for rel, want in files.items():
        path = root / rel
        if not path.is_file():
            return f"{rel} is missing"
        size = path.stat().st_size
        if size != want["size"]:
            return f"{rel} has {size} bytes, expected {want['size']}"
        if _sha256_file(path) != want["sha256"]:
            return f"{rel} does not match its sha256"
    return None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class CheckpointStore:
    """The checkpoints of one (config, data) pair; decides whether a run resumes and writes new ones."""

    def __init__(
        self,
        location: str,
        *,
        config_digest: str,
        data_digest: str,
        config_text: str = "",
        keep: int = 2,
        scratch: Optional[Path] = None,
    ):
        self.key = checkpoint_key(config_digest, data_digest)
        self.base = location.rstrip("/")
        self.location = f"{self.base}/{self.key}"
        self.backend = backend_for(self.location)
        self.config_digest = config_digest
        self.data_digest = data_digest
        self.config_text = config_text
        self.keep = max(1, keep)
        self._scratch = scratch
        self.mlflow_run_id: Optional[str] = None
        self.written: List[int] = []

    @property
    def scratch(self) -> Path:
        """Local copies of remote checkpoints (created on first use; local stores read in place)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="ner-runner-ckpt-"))
        return self._scratch

    # ----------------------------------------------------------------- reading

    def _complete(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """(name, metadata) of checkpoints that have a readable marker, newest first."""
        for name in sorted(self.backend.names(), key=lambda n: _step_of(n) or -1, reverse=True):
            text = self.backend.read_marker(name)
            if text is None:
                log.warning("checkpoint %s/%s has no %s (its write was interrupted): ignored", self.location, name, MARKER)
                continue
            try:
                meta = json.loads(text)
            except ValueError:
                log.warning("checkpoint %s/%s: %s is not valid JSON: ignored", self.location, name, MARKER)
                continue
            yield name, meta

    def _incompatibility(self, meta: Dict[str, Any]) -> Optional[str]:
        if meta.get("format") != FORMAT_VERSION:
            return f"checkpoint format {meta.get('format')} (this version reads {FORMAT_VERSION})"
        if meta.get("config_digest") != self.config_digest:
            return "the spaCy config differs"
        if meta.get("data_digest") != self.data_digest:
            return "the training data differs"
        return None

    def latest(self) -> Optional[Checkpoint]:
        """The newest checkpoint that is complete, intact and made for this config and data."""
        for name, meta in self._complete():
            where = f"{self.location}/{name}"
            why = self._incompatibility(meta)
            if why:
                log.warning("checkpoint %s is not used: %s", where, why)
                continue
            path = self.backend.fetch(name, self.scratch)
            problem = verify(path, meta.get("files") or {})
            if problem:
                log.warning("checkpoint %s is incomplete or damaged (%s): ignored, trying the previous one", where, problem)
                continue
            return Checkpoint(name, path, meta)
        return None

    def find_resume(self) -> Optional[Checkpoint]:
        """The checkpoint to resume from, logging plainly why a run resumes or starts fresh."""
        found = self.latest()
        if found is not None:
            log.info(
                "resuming from checkpoint %s/%s: step %d, epoch %s, best score %.4f at step %s, MLflow run %s",
                self.location,
                found.name,
                found.step,
                found.meta.get("epoch"),
                float(found.meta.get("best_score") or 0.0),
                found.meta.get("best_step"),
                found.mlflow_run_id or "-",
            )
            log.info("restored on resume: %s", RESTORED)
            log.info("not restored: %s", NOT_RESTORED)
            return found
        log.info("starting fresh: %s", self.why_fresh())
        return None

    def why_fresh(self) -> str:
        """Say why nothing is resumed; point at the closest other checkpoint and what differs."""
        own = f"no usable checkpoint in {self.location}"
        try:
            others = self._other_checkpoints()
        except Exception as err:  # explaining must never stop training
            log.debug("could not look for other checkpoints: %s", err)
            return own
        if not others:
            return own
        name, meta = max(others, key=lambda nm: nm[1].get("created", 0))
        reasons = []
        if meta.get("data_digest") != self.data_digest:
            reasons.append("the training data differs")
        if meta.get("config_digest") != self.config_digest:
            diff = config_diff(meta.get("config_text", ""), self.config_text)
            reasons.append("the config differs" + (f" ({diff})" if diff else ""))
        return f"{own}; the newest other checkpoint, {self.base}/{name} (step {meta.get('step')}), is for a different run: " + "; ".join(
            reasons or ["different digests"]
        )

    def _other_checkpoints(self) -> List[Tuple[str, Dict[str, Any]]]:
        out = []
        for key, backend in self.backend.siblings()[:50]:
            names = sorted(backend.names(), key=lambda n: _step_of(n) or -1, reverse=True)
            for name in names:
                text = backend.read_marker(name)
                if text:
                    try:
                        out.append((f"{key}/{name}", json.loads(text)))
                    except ValueError:
                        continue
                    break
        return out

    # ----------------------------------------------------------------- writing

    def clean_stale(self) -> None:
        """Remove staging directories left by a killed writer (never read as checkpoints)."""
        for name in self.backend.stale_stages():
            log.warning("removing an interrupted checkpoint write: %s/%s", self.location, name)
            shutil.rmtree(Path(self.backend.root) / name, ignore_errors=True)

    def save(
        self,
        *,
        nlp: Any,
        optimizer: Any,
        state: Dict[str, Any],
        best_model: Path,
    ) -> str:
        """Write the checkpoint for `state['step']` atomically and prune older ones; returns its name."""
        import numpy

        step = int(state["step"])
        name = step_name(step)
        stage = self.backend.new_stage(name)
        try:
            nlp.to_disk(stage / "model-last")
            if best_model.is_dir():
                shutil.copytree(best_model, stage / "model-best", copy_function=_link_or_copy)
            arrays, counters = optimizer_state(optimizer, nlp)
            with (stage / "optimizer.npz").open("wb") as fh:
                numpy.savez(fh, **arrays)
            (stage / "rng.json").write_text(json.dumps(rng_state()))
            meta = {
                "format": FORMAT_VERSION,
                **state,
                "optimizer": counters,
                "mlflow_run_id": self.mlflow_run_id,
                "config_digest": self.config_digest,
                "data_digest": self.data_digest,
                "config_text": self.config_text,
                "created": time.time(),
                "files": manifest(stage),
            }
            (stage / MARKER).write_text(json.dumps(meta, indent=1, default=float))
            self.backend.publish(stage, name)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        self.written.append(step)
        self.prune()
        return name

    def prune(self) -> None:
        """Keep the newest `keep` complete checkpoints; delete older ones (the newest is never touched)."""
        complete = [name for name, _ in self._complete()]
        if not complete:
            return
        newest = _step_of(complete[0]) or 0
        for name in complete[self.keep :]:
            self.backend.delete(name)
        for name in self.backend.names():  # interrupted writes older than the newest complete one
            if name not in complete and (_step_of(name) or 0) < newest:
                self.backend.delete(name)

    def clear(self) -> None:
        """Delete every checkpoint of this (config, data): the run finished and its outputs are saved."""
        for name in self.backend.names():
            self.backend.delete(name)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        if isinstance(self.backend, LocalBackend):
            self.clean_stale()
            try:
                self.backend.root.rmdir()
            except OSError:
                pass


def config_diff(old: str, new: str, limit: int = 6) -> str:
    """`section.key: old -> new` for the settings that differ between two rendered configs."""
    from thinc.api import Config

    def flat(text: str) -> Dict[str, Any]:
        out: Dict[str, Any] = {}

        def walk(node: Any, prefix: str) -> None:
            for k, v in node.items():
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                else:
                    out[f"{prefix}{k}"] = v

        walk(Config().from_str(text, interpolate=False), "")
        return out

    if not old or not new:
        return ""
    try:
        a, b = flat(old), flat(new)
    except Exception:
        return ""
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    parts = [f"{k}: {a.get(k)} -> {b.get(k)}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return ", ".join(parts)


# --------------------------------------------------------------------------- optimizer and RNG state


class _ParamNames:
    """Optimizer keys are (process-local id, param name); name them by component and walk position.

    Thinc numbers layers and shims (the PyTorch wrappers spacy-transformers trains through) with separate
    counters, so one id can belong to both: a key is a layer's when the layer has that param name.
    """

    def __init__(self, nlp: Any):
        self.layers: Dict[int, Tuple[str, Any]] = {}
        self.shims: Dict[int, str] = {}
        for comp, proc in nlp.pipeline:
            model = getattr(proc, "model", None)
            if not hasattr(model, "walk"):
                continue
            for i, node in enumerate(model.walk()):
                self.layers.setdefault(node.id, (f"{comp}/{i}", node))
                for j, shim in enumerate(getattr(node, "shims", [])):
                    self.shims.setdefault(shim.id, f"{comp}/{i}/shim{j}")
        self.ids = {name: node_id for node_id, (name, _) in self.layers.items()}
        self.ids.update({name: shim_id for shim_id, name in self.shims.items()})

    def name(self, key: Tuple[int, str]) -> Optional[str]:
        node_id, param = key
        layer = self.layers.get(node_id)
        if layer is not None and param in layer[1].param_names:
            return f"{layer[0]}|{param}"
        shim = self.shims.get(node_id)
        return f"{shim}|{param}" if shim is not None else None

    def key(self, name: str) -> Optional[Tuple[int, str]]:
        owner, param = name.rsplit("|", 1)
        return (self.ids[owner], param) if owner in self.ids else None


_TABLES = ("mom1", "mom2", "averages")


def optimizer_state(optimizer: Any, nlp: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(arrays for optimizer.npz, JSON-able counters) with stable names instead of ids."""
    from thinc.backends import get_array_ops

    names = _ParamNames(nlp)
    arrays: Dict[str, Any] = {}
    skipped = 0
    for table in _TABLES:
        for key, value in (getattr(optimizer, table, None) or {}).items():
            name = names.name(key)
            if name is None:
                skipped += 1
                continue
            arrays[f"{table}|{name}"] = get_array_ops(value).to_numpy(value)
    counters: Dict[str, Any] = {}
    for table in ("nr_update", "last_seen"):
        counters[table] = {n: int(v) for k, v in getattr(optimizer, table).items() if (n := names.name(k))}
    counters["skipped"] = skipped
    return arrays, counters


def restore_optimizer_state(optimizer: Any, nlp: Any, npz_path: Path, counters: Dict[str, Any]) -> int:
    """Put saved moments back under this process's ids; returns how many arrays were restored."""
    import numpy
    from thinc.api import get_current_ops

    ops = get_current_ops()
    names = _ParamNames(nlp)
    restored = 0
    with numpy.load(npz_path, allow_pickle=False) as data:
        for entry in data.files:
            table, name = entry.split("|", 1)
            target = getattr(optimizer, table, None)
            key = names.key(name)
            if target is None or key is None:
                continue
            target[key] = ops.asarray(data[entry])
            restored += 1
    for table in ("nr_update", "last_seen"):
        dest = getattr(optimizer, table)
        for name, value in (counters.get(table) or {}).items():
            key = names.key(name)
            if key is not None:
                dest[key] = int(value)
    return restored


def rng_state() -> Dict[str, Any]:
    import random
    import sys

    import numpy

    version, internal, gauss = random.getstate()
    np_state = numpy.random.get_state()
    state: Dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch"] = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    import random
    import sys

    import numpy

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    numpy.random.set_state((name, numpy.asarray(keys, dtype=numpy.uint32), pos, has_gauss, cached))
    torch = sys.modules.get("torch")
    if torch is not None and state.get("torch"):
        raw = numpy.frombuffer(base64.b64decode(state["torch"]), dtype=numpy.uint8).copy()
        torch.set_rng_state(torch.from_numpy(raw))
