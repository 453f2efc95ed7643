"""The CustomJob a sweep job becomes: settings checks, container argv and env, the spec, and messages.

Everything here is pure (no API calls), so `dry_run=true` and the tests see exactly what would be sent.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Sequence

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

SECRET_KEY = re.compile(r"(password|passwd|token|secret|key|credential)", re.IGNORECASE)
MASK = "***"
#: overrides the container must not inherit (it runs the job locally, never launches again) or that the
#: launcher sets itself
_LAUNCH_KEYS = {"launcher", "hydra/launcher", "hydra.mode", "output_uri"}


class VertexLaunchError(CompactHydraException):
    """A problem with the launcher settings or credentials, reported as one line before anything is submitted."""


def parse_duration(value: Any) -> Optional[float]:
    """`3600`, `3600s`, `90m`, `24h`, `7d` -> seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m:
        raise VertexLaunchError(f"hydra.launcher.timeout={value!r} is not a duration (use e.g. 3600s, 90m, 24h, 7d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def check_settings(s: Dict[str, Any]) -> None:
    """Fail before any API call, naming the key to set."""
    from google.cloud import aiplatform_v1

    if not s.get("project") or s["project"] == "your-gcp-project":
        raise VertexLaunchError("no Google Cloud project: set gcp.project=... (or hydra.launcher.project=...)")
    if not s.get("image_uri"):
        raise VertexLaunchError("no training image: set gcp.image_uri=... (or hydra.launcher.image_uri=...)")
    out = s.get("base_output_dir") or ""
    if "your-ner-bucket" in str(out):
        raise VertexLaunchError(f"base_output_dir {out} still names the placeholder bucket: set gcp.bucket=...")
    if not str(out).startswith("gs://") or len(str(out).rstrip("/")) <= len("gs://"):
        raise VertexLaunchError(
            f"hydra.launcher.base_output_dir must be a gs:// prefix, got {out!r} (set gcp.bucket=... or gcp.staging_dir=...)"
        )
    acc = s.get("accelerator_type")
    if acc and int(s.get("accelerator_count") or 0) > 0 and acc not in aiplatform_v1.AcceleratorType.__members__:
        known = ", ".join(k for k in aiplatform_v1.AcceleratorType.__members__ if k.startswith("NVIDIA"))
        raise VertexLaunchError(f"accelerator_type {acc!r} is not a Vertex accelerator (e.g. {known})")
    if int(s.get("max_concurrent") or 0) < 1:
        raise VertexLaunchError("hydra.launcher.max_concurrent must be at least 1")
    parse_duration(s.get("timeout"))


def container_args(overrides: Sequence[str], cfg: DictConfig, run_dir: str, output_uri: str) -> List[str]:
    """argv for the CLI inside the image: the job's overrides, then run-here-and-now settings."""
    args = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in _LAUNCH_KEYS]
    if "launcher" in (OmegaConf.select(cfg, "hydra.runtime.choices") or {}):
        args.append("launcher=local")
    args += ["hydra.mode=RUN", f"hydra.run.dir={run_dir}"]
    if "output_uri" in cfg:
        args.append(f"output_uri={output_uri}")
    return args


def container_env(cfg: DictConfig, extra: Dict[str, Any]) -> Dict[str, str]:
    """MLflow settings the job needs on Vertex, resolved here where the user's environment is."""
    import os

    env: Dict[str, str] = {}
    if OmegaConf.select(cfg, "tracking.enabled", default=False):
        uri = OmegaConf.select(cfg, "tracking.uri", default=None)
        if uri:
            env["MLFLOW_TRACKING_URI"] = str(uri)
        experiment = OmegaConf.select(cfg, "tracking.experiment", default=None)
        if experiment:
            env["MLFLOW_EXPERIMENT_NAME"] = str(experiment)
    parent = os.environ.get("NER_RUNNER_PARENT_RUN_ID")
    if parent:
        env["NER_RUNNER_PARENT_RUN_ID"] = parent
    env.update({str(k): "" if v is None else str(v) for k, v in (extra or {}).items()})
    return env


def build_custom_job(s: Dict[str, Any], *, display_name: str, args: List[str], env: Dict[str, str], output_uri: str) -> Any:
    from google.cloud import aiplatform_v1 as v1
    from google.protobuf import duration_pb2

    machine = v1.MachineSpec(machine_type=s["machine_type"])
    if s.get("accelerator_type") and int(s.get("accelerator_count") or 0) > 0:
        machine.accelerator_type = v1.AcceleratorType[s["accelerator_type"]]
        machine.accelerator_count = int(s["accelerator_count"])
    scheduling = v1.Scheduling(restart_job_on_worker_restart=bool(s.get("restart_job_on_worker_restart")))
    timeout = parse_duration(s.get("timeout"))
    if timeout:
        scheduling.timeout = duration_pb2.Duration(seconds=int(timeout))
    if s.get("spot"):
        scheduling.strategy = v1.Scheduling.Strategy.SPOT
    spec = v1.CustomJobSpec(
        worker_pool_specs=[
            v1.WorkerPoolSpec(
                machine_spec=machine,
                replica_count=int(s.get("replica_count") or 1),
                disk_spec=v1.DiskSpec(
                    boot_disk_type=str(s["boot_disk_type"]), boot_disk_size_gb=int(s["boot_disk_size_gb"])
                ),
                container_spec=v1.ContainerSpec(
                    image_uri=s["image_uri"],
                    args=list(args),
                    env=[v1.EnvVar(name=k, value=v) for k, v in env.items()],
                ),
            )
        ],
        scheduling=scheduling,
        base_output_directory=v1.GcsDestination(output_uri_prefix=output_uri),
        enable_web_access=bool(s.get("enable_web_access")),
    )
    if s.get("service_account"):
        spec.service_account = s["service_account"]
    labels = {str(k): str(v) for k, v in (s.get("labels") or {}).items()}
    return v1.CustomJob(display_name=display_name[:128], job_spec=spec, labels=labels)


def redacted_json(custom_job: Any) -> str:
    """The CustomJob as JSON with secret-looking env values and URI credentials masked (for logs and dry runs)."""
    from google.cloud import aiplatform_v1

    data = json.loads(
        aiplatform_v1.CustomJob.to_json(
            custom_job, use_integers_for_enums=False, always_print_fields_with_no_presence=False
        )
    )
    for pool in data.get("jobSpec", {}).get("workerPoolSpecs", []):
        container = pool.get("containerSpec", {})
        for var in container.get("env", []):
            var["value"] = _redact(var.get("name", ""), var.get("value", ""))
        if "args" in container:
            container["args"] = [_redact_override(a) for a in container["args"]]
    return json.dumps(data, indent=2)


def _redact_override(override: str) -> str:
    key, sep, value = override.partition("=")
    return key + sep + _redact(key.rsplit(".", 1)[-1], value) if sep else override


def _redact(name: str, value: str) -> str:
    if SECRET_KEY.search(name) and value:
        return MASK
    return re.sub(r"(?<=://)[^/@\s]+@", f"{MASK}@", value)


def console_url(resource_name: str) -> str:
    m = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)/customJobs/([^/]+)", resource_name)
    if not m:
        return ""
    project, region, job_id = m.groups()
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job_id}/cpu?project={project}"


def describe_api_error(err: Exception, job: str, s: Dict[str, Any]) -> str:
    """One line that names the job, what went wrong and what to check."""
    from google.api_core import exceptions as gexc

    msg = getattr(err, "message", None) or str(err)
    where = f"project {s.get('project')} in {s.get('region')}"
    if isinstance(err, gexc.PermissionDenied):
        sa = s.get("service_account") or "the Compute Engine default service account"
        hint = (
            f"check that your account has roles/aiplatform.user on {where} and roles/iam.serviceAccountUser "
            f"on {sa}, and that the Vertex AI API is enabled"
        )
        kind = "permission denied"
    elif isinstance(err, gexc.Unauthenticated):
        kind, hint = "not authenticated", "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
    elif isinstance(err, gexc.ResourceExhausted):
        acc = s.get("accelerator_type") or s.get("machine_type")
        kind = "quota exhausted"
        hint = f"check the {acc} quota of {where} (IAM & Admin > Quotas) or lower hydra.launcher.max_concurrent"
    elif isinstance(err, gexc.InvalidArgument):
        kind = "Vertex rejected the job spec"
        hint = "check machine_type/accelerator_type/accelerator_count (hardware group), region, image_uri and boot disk"
    elif isinstance(err, gexc.NotFound):
        kind, hint = "not found", f"check that {where} exists and the Vertex AI API is enabled"
    elif isinstance(err, gexc.GoogleAPICallError):
        kind, hint = f"API error {getattr(err, 'code', '')}".strip(), "retry later or check the Vertex AI status page"
    else:
        kind, hint = type(err).__name__, "check hydra.launcher.api_endpoint and your network"
    return f"{job}: {kind}: {_one_line(msg)} -- {hint}"


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
