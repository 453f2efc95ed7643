"""`hydra/launcher=vertex`: the launcher's settings, stored in Hydra's ConfigStore.

Defaults come from the app's `gcp` and `hardware` groups by interpolation, so the Vertex machine always
matches what spaCy was configured for. `oc.select` keeps the launcher usable by apps without those groups:
such apps set `hydra.launcher.project=...` and friends directly.
"""


from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class VertexLauncherConf:
    _target_: str = "hydra_plugins.ner_runner_vertex_launcher.vertex_launcher.VertexLauncher"

    # where
    project: Optional[str] = "${oc.select:gcp.project,null}"
    region: str = "${oc.select:gcp.region,europe-west2}"
    api_endpoint: str = "${.region}-aiplatform.googleapis.com"
    # plaintext gRPC without Google credentials: for a local fake JobService only
    insecure: bool = False

    # what runs: the training image re-invokes the CLI with each job's overrides
    image_uri: Optional[str] = "${oc.select:gcp.image_uri,null}"
    display_name: str = "ner-runner"
    # hydra.run.dir of the job inside the container (relative to the image's working directory)
    container_run_dir: str = "outputs/vertex"

    # on what: follows the hardware group
    machine_type: str = "${oc.select:hardware.machine_type,n1-standard-8}"
    accelerator_type: Optional[str] = "${oc.select:hardware.accelerator_type,NVIDIA_TESLA_T4}"
    accelerator_count: int = "${oc.select:hardware.accelerator_count,1}"  # type: ignore[assignment]
    replica_count: int = 1
    boot_disk_type: str = "${oc.select:gcp.boot_disk_type,pd-ssd}"
    boot_disk_size_gb: int = "${oc.select:gcp.boot_disk_size_gb,100}"  # type: ignore[assignment]

    # as whom, and where outputs go: <base_output_dir>/<sweep>/<job num>/ gets result.json and the run dir
    service_account: Optional[str] = "${oc.select:gcp.service_account,null}"
    base_output_dir: Optional[str] = "${oc.select:gcp.staging_dir,null}"

    # scheduling
    timeout: Optional[str] = None  # e.g. 24h, 90m, 3600s; Vertex's default (7 days) when null
    spot: bool = False
    restart_job_on_worker_restart: bool = False
    enable_web_access: bool = False
    labels: Dict[str, str] = field(default_factory=dict)
    env: Dict[str, Any] = field(default_factory=dict)

    # how the launcher behaves
    poll_interval: float = 30.0  # seconds before the first status check; backs off while nothing changes
    max_concurrent: int = 8  # jobs in flight on Vertex at once (submitted, not yet finished)
    wait: bool = True  # false: submit, log the jobs, return without waiting
    dry_run: bool = False  # print each CustomJob as JSON and call nothing


ConfigStore.instance().store(
    group="hydra/launcher",
    name="vertex",
    node=VertexLauncherConf,
    provider="ner_runner_vertex_launcher",
)
