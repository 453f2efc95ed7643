"""Structured-config schema for every config group.

Each group's YAML files extend the dataclass stored here, so Hydra rejects an unknown key
(`hyperparameters.learnign_rate=1`) or a wrong type at composition time, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class PhaseConfig:
    """A label set that is trained as its own model."""

    name: str = MISSING
    labels: List[str] = MISSING
    train: str = MISSING
    dev: Optional[str] = None
    experiment: str = MISSING
    registered_model: str = MISSING
    lang: str = "en"


@dataclass
class HardwareConfig:
    """Where training runs; spaCy's quickstart choice and the Vertex machine follow from it."""

    name: str = MISSING
    optimize: str = "efficiency"  # spaCy quickstart: efficiency (tok2vec) or accuracy
    gpu: bool = False  # quickstart's GPU variant (transformer when optimize=accuracy)
    gpu_id: int = -1  # -1 trains on CPU
    transformer_name: Optional[str] = None
    gpu_allocator: Optional[str] = None
    mixed_precision: bool = False
    # The Vertex AI machine that matches these settings.
    machine_type: str = "n1-standard-8"
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0


@dataclass
class HyperparametersConfig:
    """The training knobs a team tunes; mapped onto spaCy config paths by spacy_config."""

    name: str = MISSING
    learning_rate: float = MISSING
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    L2: float = 0.01
    grad_clip: float = 1.0
    warmup_steps: Optional[int] = None  # transformer: linear warm-up then decay to max_steps
    dropout: float = 0.1
    patience: int = 1600
    max_steps: int = 20000
    max_epochs: int = 0
    eval_frequency: int = 200
    batch_size: Optional[int] = None  # training.batcher.size; None keeps the quickstart schedule
    nlp_batch_size: Optional[int] = None  # nlp.batch_size; None keeps the quickstart value
    accumulate_gradient: Optional[int] = None
    seed: int = 0


@dataclass
class GcpConfig:
    """The team's Google Cloud settings: one place for project, region, bucket and image."""

    project: str = MISSING
    region: str = "europe-west2"
    bucket: str = MISSING
    image_uri: str = MISSING
    service_account: Optional[str] = None
    staging_dir: str = "gs://${gcp.bucket}/vertex"
    boot_disk_type: str = "pd-ssd"
    boot_disk_size_gb: int = 100


@dataclass
class TrackingConfig:
    """Where runs are recorded. `uri` may be a sqlite path, a file store or an http(s) server."""

    name: str = MISSING
    enabled: bool = True
    uri: str = MISSING
    experiment: str = "${phase.experiment}"
    run_name: Optional[str] = None
    log_model: bool = True
    registered_model: Optional[str] = "${phase.registered_model}"
    promote: bool = False
    timeout_s: float = 15.0  # bound on the start-up check that the server answers
    max_retries: int = 2
    # at the end of a job, how long to wait for undelivered data (e.g. while the server restarts);
    # what is still left is kept in the run directory for `ner-runner sync RUN_DIR`
    flush_timeout_s: float = 120.0


@dataclass
class SplitConfig:
    """Split data.train into train/dev (stratified per label) when data.dev is null."""

    test_size: Optional[float] = None
    seed: Optional[int] = None  # None: hyperparameters.seed


@dataclass
class DataConfig:
    """Which Prodigy exports feed the run and how strictly they are read."""

    train: str = "${phase.train}"
    dev: Optional[str] = "${phase.dev}"
    alignment: str = "strict"  # strict | contract | expand
    on_error: str = "fail"  # fail | skip
    cache_dir: str = ".cache/ner-runner"  # converted corpora (by content digest) and checkpoints
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class CheckpointConfig:
    """Resumable training: a checkpoint at every evaluation step, found again by config and data digest."""

    enabled: bool = True
    # None: $AIP_CHECKPOINT_DIR when set (Vertex), else <data.cache_dir>/checkpoints. Local path or gs://.
    dir: Optional[str] = None
    resume: bool = True  # false: start fresh and replace this config's checkpoints
    keep: int = 2  # complete checkpoints kept; the newest is only removed once a newer one is complete
    keep_after_success: bool = False  # a finished run deletes its checkpoints unless this is true


@dataclass
class RunConfig:
    """The composed run. Groups are filled from conf/; the rest are top-level switches."""

    phase: PhaseConfig = MISSING
    hardware: HardwareConfig = MISSING
    hyperparameters: HyperparametersConfig = MISSING
    gcp: GcpConfig = MISSING
    tracking: TrackingConfig = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    train: bool = True
    output_dir: str = "${hydra:runtime.output_dir}"
    # gs:// prefix that receives the run directory and result.json when the job ends (set by the Vertex launcher)
    output_uri: Optional[str] = None


def register_configs() -> None:
    """Store the schemas so YAML files can extend them through their defaults lists."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="phase", name="phase_schema", node=PhaseConfig)
    cs.store(group="hardware", name="hardware_schema", node=HardwareConfig)
    cs.store(group="hyperparameters", name="hyperparameters_schema", node=HyperparametersConfig)
    cs.store(group="gcp", name="gcp_schema", node=GcpConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)
