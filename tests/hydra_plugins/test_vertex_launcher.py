"""The Vertex launcher: the real JobServiceClient against a fake JobService over gRPC on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from hydra.core.utils import JobStatus

from tests.fakes.vertex_jobservice import FakeJobService
from tests.hydra_plugins.conftest import BUCKET, launch, launcher_overrides, write_result

pytestmark = pytest.mark.usefixtures("hydra_restore_singletons")


def _env(job) -> dict:
    return {e.name: e.value for e in job.job_spec.worker_pool_specs[0].container_spec.env}


def test_submitted_spec_carries_machine_image_env_args_and_scheduling(tmp_path, gcs, monkeypatch):
    monkeypatch.setenv("NER_RUNNER_PARENT_RUN_ID", "parent123")
    with FakeJobService() as fake:
        returns = launch(
            launcher_overrides(
                fake,
                tmp_path,
                "launcher=vertex",
                "hardware=gpu_t4",
                "phase=phase2",
                "gcp.region=us-central1",
                "gcp.service_account=trainer@test-project.iam.gserviceaccount.com",
                "gcp.boot_disk_size_gb=200",
                "tracking.uri=https://mlflow.example.com",
                "hydra.launcher.spot=true",
                "hydra.launcher.timeout=2h",
                "hydra.launcher.restart_job_on_worker_restart=true",
                "hydra.launcher.enable_web_access=true",
                "+hydra.launcher.labels.team=ner",
                "+hydra.launcher.env.EXTRA=1",
            ),
            [["hyperparameters.learning_rate=3e-5"]],
        )
    assert [r.status for r in returns] == [JobStatus.COMPLETED]
    assert len(fake.created) == 1
    request = fake.created[0]
    assert request.parent == "projects/test-project/locations/us-central1"
    job = request.custom_job
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "n1-standard-8"
    assert pool.machine_spec.accelerator_type.name == "NVIDIA_TESLA_T4"
    assert pool.machine_spec.accelerator_count == 1
    assert pool.replica_count == 1
    assert (pool.disk_spec.boot_disk_type, pool.disk_spec.boot_disk_size_gb) == ("pd-ssd", 200)
    assert pool.container_spec.image_uri == "us-central1-docker.pkg.dev/test-project/ner-runner/train:latest"
    assert job.job_spec.service_account == "trainer@test-project.iam.gserviceaccount.com"
    out = f"gs://{BUCKET}/vertex/multirun/{tmp_path.name}/0"
    assert job.job_spec.base_output_directory.output_uri_prefix == out
    args = list(pool.container_spec.args)
    assert args[:2] == ["gcp.project=test-project", f"gcp.bucket={BUCKET}"]
    assert {"hardware=gpu_t4", "phase=phase2", "hyperparameters.learning_rate=3e-5"} <= set(args)
    assert "launcher=vertex" not in args and "launcher=local" in args and "hydra.mode=RUN" in args
    assert "hydra.run.dir=outputs/vertex/0" in args and f"output_uri={out}" in args
    assert _env(job) == {
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "MLFLOW_EXPERIMENT_NAME": "ner-phase2",
        "NER_RUNNER_PARENT_RUN_ID": "parent123",
        "EXTRA": "1",
    }
    sched = job.job_spec.scheduling
    assert sched.strategy.name == "SPOT" and sched.timeout.total_seconds() == 7200
    assert sched.restart_job_on_worker_restart and job.job_spec.enable_web_access
    assert dict(job.labels) == {"team": "ner"}
    # the local record of the job: its config, the CustomJob and its lifecycle
    job_dir = tmp_path / "multirun" / tmp_path.name / "0"
    assert (job_dir / ".hydra" / "config.yaml").is_file() and (job_dir / "vertex_job.json").is_file()
    (log_file,) = job_dir.glob("*.log")
    assert "submitted projects/123456789/locations/us-central1/customJobs/" in log_file.read_text()
    assert "JOB_STATE_SUCCEEDED" in log_file.read_text()


def test_hardware_group_picks_the_machine_per_job(tmp_path, gcs):
    with FakeJobService() as fake:
        launch(
            launcher_overrides(fake, tmp_path, "hydra/launcher=vertex"),
            [["hardware=gpu_l4"], ["hardware=cpu"]],
        )
    specs = {r.custom_job.display_name[-1]: r.custom_job.job_spec.worker_pool_specs[0].machine_spec for r in fake.created}
    assert (specs["0"].machine_type, specs["0"].accelerator_type.name, specs["0"].accelerator_count) == (
        "g2-standard-8",
        "NVIDIA_L4",
        1,
    )
    assert (specs["1"].machine_type, specs["1"].accelerator_count) == ("n1-standard-8", 0)


def test_four_job_sweep_with_two_failures(tmp_path, gcs):
    # the fake plays the container: jobs 1 and 3 fail, the others succeed with objective 0.1 * (n + 1)
    def outcome(job):
        n = int(job.display_name.rsplit("-", 1)[1])
        out = job.job_spec.base_output_directory.output_uri_prefix
        if n in (1, 3):
            write_result(gcs, out, status="FAILED", objective=None, error=f"DataError: broken line {n}")
            return f"The replica workerpool0-0 exited with a non-zero status of 2 (job {n})"
        write_result(gcs, out, status="COMPLETED", objective=0.1 * (n + 1), error=None)
        return None

    with FakeJobService(outcome=outcome) as fake:
        returns = launch(
            launcher_overrides(fake, tmp_path, "launcher=vertex", "hydra.launcher.max_concurrent=2"),
            [[f"hyperparameters.seed={n}"] for n in range(4)],
        )
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED] * 2
    assert returns[0].return_value == pytest.approx(0.1)
    assert returns[2].return_value == pytest.approx(0.3)
    # result.json is copied beside each job's local record, where sweep summaries read it
    local = json.loads((Path(returns[2].hydra_cfg.hydra.runtime.output_dir) / "result.json").read_text())
    assert local["objective"] == pytest.approx(0.3)
    assert [r.overrides[-1] for r in returns] == [f"hyperparameters.seed={n}" for n in range(4)]
    for n in (1, 3):
        err = returns[n]._return_value
        assert f"job #{n}" in str(err) and f"non-zero status of 2 (job {n})" in str(err)
        assert f"DataError: broken line {n}" in str(err)
        with pytest.raises(type(err)):
            returns[n].return_value


def test_succeeded_on_vertex_but_result_says_failed_is_a_failure(tmp_path, gcs):
    def outcome(job):
        write_result(gcs, job.job_spec.base_output_directory.output_uri_prefix, status="FAILED", error="boom")
        return None

    with FakeJobService(outcome=outcome) as fake:
        (ret,) = launch(launcher_overrides(fake, tmp_path, "launcher=vertex"), [[]])
    assert ret.status == JobStatus.FAILED and "boom" in str(ret._return_value)


@pytest.mark.parametrize(
    "code, expected",
    [
        (grpc.StatusCode.PERMISSION_DENIED, "permission denied: caller lacks aiplatform.customJobs.create -- check that your account has roles/aiplatform.user"),
        (grpc.StatusCode.INVALID_ARGUMENT, "Vertex rejected the job spec: bad accelerator -- check machine_type/accelerator_type"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exhausted: quota exceeded -- check the NVIDIA_TESLA_T4 quota"),
        (grpc.StatusCode.UNAUTHENTICATED, "not authenticated: no token -- run `gcloud auth application-default login`"),
    ],
)
def test_api_error_is_one_line_naming_the_job_and_others_still_run(tmp_path, gcs, capsys, code, expected):
    messages = {
        grpc.StatusCode.PERMISSION_DENIED: "caller lacks aiplatform.customJobs.create",
        grpc.StatusCode.INVALID_ARGUMENT: "bad accelerator",
        grpc.StatusCode.RESOURCE_EXHAUSTED: "quota exceeded",
        grpc.StatusCode.UNAUTHENTICATED: "no token",
    }

    def reject(request):
        return (code, messages[code]) if request.custom_job.display_name.endswith("-1") else None

    with FakeJobService(reject=reject) as fake:
        returns = launch(
            launcher_overrides(fake, tmp_path, "launcher=vertex", "hardware=gpu_t4"),
            [["hyperparameters.seed=0"], ["hyperparameters.seed=1"], ["hyperparameters.seed=2"]],
        )
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
    assert len(fake.created) == 2
    message = str(returns[1]._return_value)
    assert message.startswith(f"job #1 (ner-runner-{tmp_path.name}-1): ") and expected in message
    assert "\n" not in message
    # logged once, as it happened, as one line
    lines = [l for l in capsys.readouterr().out.splitlines() if "job #1 (" in l]
    assert len(lines) == 1 and lines[0].endswith(message)



def test_dry_run_prints_specs_and_calls_nothing(tmp_path, gcs, capsys):
    with FakeJobService() as fake:
        returns = launch(
            launcher_overrides(fake, tmp_path, "launcher=vertex", "hydra.launcher.dry_run=true", "+hydra.launcher.env.MLFLOW_TRACKING_PASSWORD=hunter2"),
            [["hyperparameters.seed=0"], ["hyperparameters.seed=1", "tracking.uri=https://me:hunter3@mlflow.example.com"]],
        )
    assert fake.calls == []
    assert [r.status for r in returns] == [JobStatus.UNKNOWN] * 2
    assert [r.return_value for r in returns] == [None, None]
    out = capsys.readouterr().out
    assert out.count('"imageUri": "europe-west2-docker.pkg.dev/test-project/ner-runner/train:latest"') == 2
    assert '"hyperparameters.seed=1"' in out and "hunter2" not in out and "hunter3" not in out
    assert '"tracking.uri=https://***@mlflow.example.com"' in out
    job_dir = tmp_path / "multirun" / tmp_path.name / "1"
    for record in [*job_dir.glob("*.log"), job_dir / "vertex_job.json"]:
        assert "hunter3" not in record.read_text()


def test_wait_false_returns_after_submitting(tmp_path, gcs):
    with FakeJobService(hold=True) as fake:
        returns = launch(launcher_overrides(fake, tmp_path, "launcher=vertex", "hydra.launcher.wait=false"), [[], []])
    assert [r.status for r in returns] == [JobStatus.UNKNOWN] * 2
    assert sorted(r.return_value for r in returns) == sorted(fake.jobs)
    assert "GetCustomJob" not in fake.calls


def test_bad_settings_fail_before_any_call(tmp_path, gcs):
    from hydra_plugins.ner_runner_vertex_launcher._spec import VertexLaunchError

    with FakeJobService() as fake:
        with pytest.raises(VertexLaunchError, match="placeholder bucket: set gcp.bucket"):
            launch(launcher_overrides(fake, tmp_path, "launcher=vertex", "gcp.bucket=your-ner-bucket"), [[]])
        with pytest.raises(VertexLaunchError, match="'NVIDIA_TESLA_X' is not a Vertex accelerator"):
            launch(launcher_overrides(fake, tmp_path, "launcher=vertex", "hardware=gpu_t4", "hardware.accelerator_type=NVIDIA_TESLA_X"), [[]])
    assert fake.calls == []


@pytest.mark.parametrize(
    "job",
    [
        ["launcher=vertex", "hyperparameters.seed=3"],
        ["launcher=vertex", "hardware=gpu_l4", "hyperparameters.learning_rate=0.1", "+extra.k=1"],
        ["launcher=vertex", "phase=phase2", "phase.labels=[A,B]", "data.split.test_size=0.2"],
    ],
)
def test_sweep_configs_compose_exactly_like_hydra(job):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from hydra_plugins.ner_runner_vertex_launcher._configs import SweepConfigs
    from ner_runner.schema import register_configs
    from tests.conftest import ROOT

    register_configs()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = loader.load_configuration("config", ["launcher=vertex", "hydra.launcher.spot=true"], RunMode.MULTIRUN)
    configs = SweepConfigs(loader, master)
    configs.load(["launcher=vertex", "hyperparameters.seed=99"])  # warm the cache of composed bases
    fast = configs._fast(job)  # the fast path itself, not its fallback to Hydra
    assert OmegaConf.to_container(fast) == OmegaConf.to_container(loader.load_sweep_config(master, job))


def test_a_job_that_cannot_be_watched_is_failed_not_guessed(tmp_path, gcs):
    def get_error(job):
        return (grpc.StatusCode.PERMISSION_DENIED, "no get") if job.display_name.endswith("-0") else None

    with FakeJobService(get_error=get_error) as fake:
        returns = launch(launcher_overrides(fake, tmp_path, "launcher=vertex"), [["hyperparameters.seed=0"], ["hyperparameters.seed=1"]])
    assert [r.status for r in returns] == [JobStatus.FAILED, JobStatus.COMPLETED]
    message = str(returns[0]._return_value)
    assert "lost track of projects/123456789/locations/europe-west2/customJobs/" in message
    assert "no get" in message and "outcome is unknown, see https://console.cloud.google.com/" in message


def test_a_job_that_does_not_compose_stops_the_batch_and_cancels_what_was_submitted(tmp_path, gcs, monkeypatch):
    import time

    from hydra.errors import ConfigCompositionException

    from hydra_plugins.ner_runner_vertex_launcher import _core

    plan_job = _core.plan_job

    def plan_after_first_submission(launcher, overrides, idx, *args):
        deadline = time.time() + 10
        while idx == 2 and not fake.jobs and time.time() < deadline:
            time.sleep(0.01)
        return plan_job(launcher, overrides, idx, *args)

    monkeypatch.setattr(_core, "plan_job", plan_after_first_submission)
    with FakeJobService(hold=True) as fake:
        with pytest.raises(ConfigCompositionException, match="no_such_key"):
            launch(
                launcher_overrides(fake, tmp_path, "launcher=vertex"),
                [["hyperparameters.seed=0"], ["hyperparameters.seed=1"], ["no_such_key=1"]],
            )
    assert fake.jobs and sorted(fake.cancelled) == sorted(fake.jobs)
    assert all(j.job.state.name == "JOB_STATE_CANCELLED" for j in fake.jobs.values())
