"""The Optuna sweeper: search-space syntax, a real study over real training runs, failures and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from tests.conftest import job_runs, quick_overrides, run_py

STEPS = 4


def _parse(text: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([text])[0]


def test_search_space_syntax_maps_to_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.ner_runner_optuna_sweeper._core import distribution_for

    lr = distribution_for(_parse("hyperparameters.learning_rate=tag(log, interval(1e-5, 1e-3))"))
    assert lr == FloatDistribution(1e-5, 1e-3, log=True)
    assert distribution_for(_parse("hyperparameters.dropout=interval(0.1, 0.3)")) == FloatDistribution(0.1, 0.3)
    # Hydra's range excludes its stop, Optuna's high is included: range(1, 5) is 1..4
    assert distribution_for(_parse("hyperparameters.seed=range(1, 5)")) == IntDistribution(1, 4)
    assert distribution_for(_parse("hyperparameters.batch_size=range(500, 2001, 500)")) == IntDistribution(
        500, 2000, step=500
    )
    assert distribution_for(_parse("hyperparameters.batch_size=choice(1000, 2000)")) == CategoricalDistribution(
        [1000, 2000]
    )
    simple = distribution_for(_parse("hyperparameters.batch_size=1000,2000"))
    assert simple == CategoricalDistribution([1000, 2000])
    assert distribution_for(_parse("hyperparameters.seed=tag(int, interval(0, 9))")) == IntDistribution(0, 9)
    assert distribution_for(_parse("hyperparameters.seed=3")) is None


def test_a_command_line_override_replaces_the_preset_parameter():
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import CategoricalDistribution

    from hydra_plugins.ner_runner_optuna_sweeper._core import parse_search_space

    space = parse_search_space(
        ["hyperparameters.batch_size=choice(250, 500)", "hyperparameters.dropout=interval(0.1, 0.2)",
         "hyperparameters.batch_size=100,200", "hyperparameters.dropout=0.15", "train=true"],
        OverridesParser.create(),
    )
    assert space.distributions == {"hyperparameters.batch_size": CategoricalDistribution([100, 200])}
    assert space.fixed == ["hyperparameters.dropout=0.15", "train=true"]
    assert space.overrides({"hyperparameters.batch_size": 200})[-1] == "hyperparameters.batch_size=200"


def test_a_resumed_seeded_study_does_not_repeat_its_first_trials(tmp_path):
    import optuna
    from omegaconf import OmegaConf
    from optuna.distributions import FloatDistribution

    from hydra_plugins.ner_runner_optuna_sweeper._core import OptunaSweeperCore

    space = {"hyperparameters.dropout": FloatDistribution(0.0, 1.0)}
    core = OptunaSweeperCore(
        sampler=OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0}),
        pruner=OmegaConf.create({"_target_": "optuna.pruners.NopPruner"}),
        direction="maximize", storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="seeded",
        n_trials=2, n_jobs=1, max_failure_rate=0.0, params=None,
    )
    first = core.create_study()
    trial = first.ask(space)
    first.tell(trial, 0.5)
    # the same seed on a fresh study starts the same sequence: that is what a resume must not do
    assert optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask(space).params == trial.params
    resumed = core.create_study()
    assert resumed.ask(space).params != trial.params


CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml")))
def test_every_preset_composes_and_its_search_space_parses(preset):
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import instantiate

    from hydra_plugins.ner_runner_optuna_sweeper._core import parse_search_space
    from ner_runner.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hparams_search={preset}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    params = [f"{k}={v}" for k, v in sweeper.params.items()]
    assert any(p.startswith("hyperparameters.learning_rate=") for p in params)
    assert any(p.startswith("hyperparameters.batch_size=") for p in params)
    if preset.startswith("grid"):
        assert sweeper._target_.endswith("BasicSweeper")
    else:
        assert sweeper._target_.endswith("NerRunnerOptunaSweeper")
        assert sweeper.direction == "maximize" and sweeper.storage.startswith("sqlite:///")
        assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.n_jobs > 1
        space = parse_search_space(params, OverridesParser.create())
        assert set(space.distributions) == set(sweeper.params)
        instantiate(sweeper.sampler), instantiate(sweeper.pruner)
    if preset.endswith("transformer"):
        assert cfg.hardware.name == "gpu_t4" and cfg.hyperparameters.name == "transformer"


def _sweep_args(
    data, tmp: Path, study: str, n_trials: int, n_jobs: int, extra: List[str] = (), pruner: str = "nop"
) -> List[str]:
    return [
        "-m",
        "hparams_search=optuna_cpu",
        *quick_overrides(data, tmp, steps=STEPS),
        "tracking.log_model=false",
        f"hydra.sweeper.storage=sqlite:///{tmp / 'optuna.db'}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.n_jobs={n_jobs}",
        "hydra.sweeper.sampler.n_startup_trials=2",
        f"hydra/sweeper/pruner={pruner}",
        # a space where a few steps of training give different scores
        "hyperparameters.learning_rate=tag(log, interval(1e-3, 3e-2))",
        "hyperparameters.batch_size=choice(100, 1000)",
        *extra,
    ]


def _study(tmp: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp / 'optuna.db'}")



@pytest.mark.slow
def test_optuna_study_best_value_is_the_best_mlflow_run(tmp_path, fashion_small):
    proc = run_py(_sweep_args(fashion_small, tmp_path, "s3", n_trials=3, n_jobs=2))
    from optuna.trial import TrialState

    # launches sized by n_jobs: 2 trials, then the 1 left
    assert proc.stdout.count("Launching 2 jobs locally") == 1
    assert proc.stdout.count("Launching 1 jobs locally") == 1

    study = _study(tmp_path, "s3")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    runs = job_runs(tmp_path)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    best_run = max(runs, key=lambda r: r.data.metrics["dev_ents_f"])
    assert study.best_value == pytest.approx(best_run.data.metrics["dev_ents_f"])
    # every trial knows its MLflow run, and the best trial's is the best run (or ties with it)
    by_id = {r.info.run_id: r for r in runs}
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == set(by_id)
    assert by_id[study.best_trial.user_attrs["mlflow_run_id"]].data.metrics["dev_ents_f"] == pytest.approx(
        study.best_value
    )
    # the trial's parameters are the run's parameters
    for t in study.trials:
        params = by_id[t.user_attrs["mlflow_run_id"]].data.params
        lr = t.params["hyperparameters.learning_rate"]
        assert float(params["hyperparameters.learning_rate"]) == pytest.approx(lr)
        assert int(params["hyperparameters.batch_size"]) == t.params["hyperparameters.batch_size"]

    sweep_dir = tmp_path / "multirun"
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert summary[0]["objective"] == pytest.approx(study.best_value)
    assert "dev ents_f" in proc.stdout and best_run.info.run_id in proc.stdout
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_trial: {study.best_trial.number}" in results


@pytest.mark.slow
def test_interrupted_study_resumes_from_its_storage(tmp_path, fashion_small):
    from optuna.trial import TrialState

    from hydra_plugins.ner_runner_optuna_sweeper._core import INTERRUPTED_ATTR

    run_py(_sweep_args(fashion_small, tmp_path, "resume", n_trials=1, n_jobs=2))
    study = _study(tmp_path, "resume")
    assert len(study.trials) == 1
    first_run_ids = {t.user_attrs["mlflow_run_id"] for t in study.trials}

    # the sweep is killed while trial 1 trains: the storage holds it as RUNNING
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    killed = study.ask(
        {
            "hyperparameters.learning_rate": FloatDistribution(1e-3, 3e-2, log=True),
            "hyperparameters.batch_size": CategoricalDistribution([100, 1000]),
            "hyperparameters.dropout": FloatDistribution(0.05, 0.3),
        }
    )
    assert study.trials[-1].state == TrialState.RUNNING

    # the same command with a total of 2 runs only the one missing trial, with the interrupted parameters
    second = tmp_path / "second"
    run_py(_sweep_args(fashion_small, tmp_path, "resume", n_trials=2, n_jobs=2,
                       extra=[f"hydra.sweep.dir={second}"]))
    study = _study(tmp_path, "resume")
    counted = [t for t in study.trials if not t.system_attrs.get(INTERRUPTED_ATTR)]
    assert [t.state for t in counted] == [TrialState.COMPLETE] * 2
    assert counted[0] == study.trials[0]
    interrupted = [t for t in study.trials if t.system_attrs.get(INTERRUPTED_ATTR)]
    assert [t.number for t in interrupted] == [killed.number] and interrupted[0].state == TrialState.FAIL
    assert counted[1].params == interrupted[0].params
    new_jobs = [p for p in second.iterdir() if (p / "result.json").is_file()]
    assert len(new_jobs) == 1
    runs = job_runs(tmp_path)
    assert len(runs) == 2
    assert first_run_ids < {r.info.run_id for r in runs}


@pytest.mark.slow
def test_failed_trials_are_told_failed_and_the_policy_stops_the_sweep(tmp_path, fashion_small):
    from optuna.trial import TrialState

    missing = tmp_path / "no-such-dev.jsonl"
    proc = run_py(
        _sweep_args(
            fashion_small, tmp_path, "fails", n_trials=5, n_jobs=2,
            extra=[f"data.dev={missing}", "hydra.sweeper.max_failure_rate=0.5"],
        ),
        check=False,
    )
    assert proc.returncode != 0
    # the first batch ran in full, then 2 of 2 failed > 0.5 stopped the sweep before a second batch
    study = _study(tmp_path, "fails")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.value is None and str(missing) in t.user_attrs["error"] for t in study.trials)
    assert "2 of 2 trials failed" in proc.stderr
    # the summary still comes out and names the failed jobs
    assert "job 0 FAILED" in proc.stdout and "job 1 FAILED" in proc.stdout
    summary = json.loads((tmp_path / "multirun" / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary] == ["FAILED", "FAILED"]


@pytest.mark.slow
def test_median_pruner_stops_a_weak_trial_in_process(tmp_path, fashion_small):
    import optuna
    from optuna.trial import TrialState

    # two set trials, in order: one that learns, then one whose learning rate is too small to learn anything
    study = optuna.create_study(study_name="prune", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                direction="maximize")
    study.enqueue_trial({"hyperparameters.learning_rate": 0.02, "hyperparameters.batch_size": 1000})
    study.enqueue_trial({"hyperparameters.learning_rate": 1e-7, "hyperparameters.batch_size": 1000})
    run_py(
        [
            *_sweep_args(fashion_small, tmp_path, "prune", n_trials=2, n_jobs=2, pruner="median"),
            "hyperparameters.max_steps=12",
            "hyperparameters.eval_frequency=4",
            "hyperparameters.learning_rate=choice(0.02, 1e-7)",
            "hyperparameters.dropout=0.1",  # a fixed value replaces the preset's range
            # the preset's pruner, with a test-sized start
            "hydra.sweeper.pruner.n_startup_trials=1",
            "hydra.sweeper.pruner.n_warmup_steps=0",
        ]
    )
    study = _study(tmp_path, "prune")
    strong, weak = study.trials
    assert strong.state == TrialState.COMPLETE and max(strong.intermediate_values.values()) > 0
    assert weak.state == TrialState.PRUNED
    assert weak.intermediate_values and max(weak.intermediate_values) <= 12
    result = json.loads((tmp_path / "multirun" / "1" / "result.json").read_text())
    assert result["status"] == "PRUNED" and "pruned at step" in result["error"]
    runs = {r.info.run_id: r for r in job_runs(tmp_path)}
    assert runs[result["mlflow_run_id"]].info.status == "KILLED"
    assert "pruned at step" in runs[result["mlflow_run_id"]].data.tags["pruned"]
