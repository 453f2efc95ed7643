"""Runner overhead: one `python run.py` against the workflow it replaces, on the same data and seed.

    python benchmarks/overhead.py [--steps 1000] [--repeats 3] [--data ../shared/data/fashion_brands]

runner:   python run.py <fashion_brands, CPU tok2vec, N steps>   (composition, validation + conversion,
          config rendering, training, evaluation of model-best, MLflow tracking incl. the model, the
          run report), as a user runs it: resumable checkpoints on
baseline: python benchmarks/baseline_preprocess.py ...          (the old preprocess step)
          python -m spacy train <the config.cfg the runner rendered> --paths.train ... --paths.dev ...
          python -m spacy evaluate <model-best> dev.spacy

Wall time of each side (minimum of the repeats, interleaved) and their ratio; goal <= 1.03. Both sides
train the same documents with the same config and seed, so their dev ents_f must be identical: the
script prints both and fails if they differ. Each runner run gets a fresh conversion cache (the first run
on new data, which is the case that includes conversion); the MLflow store persists across repeats, as it
does for a user.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Tuple

from harness import (
    PYTHON,
    BenchmarkError,
    Timing,
    base_parser,
    check_data,
    describe,
    fashion_run_overrides,
    min_ratio,
    ratio_line,
    read_json,
    run_py_cmd,
    timed,
    workdir,
)

GOAL = 1.03


def run_runner(work: Path, data: Path, steps: int, i: int) -> Tuple[Timing, float, Path]:
    run_dir = work / f"runner-{i}"
    overrides = fashion_run_overrides(data, steps, run_dir, work / f"cache-{i}")
    overrides.append(f"tracking.uri=sqlite:///{work / 'mlflow.db'}")
    seconds = timed(run_py_cmd(overrides), log=work / f"runner-{i}.log")
    ents_f = as_written_by_spacy(float(read_json(run_dir / "evaluation.json")["ents_f"]))
    return seconds, ents_f, run_dir / "config.cfg"


def as_written_by_spacy(value: float) -> float:
    """`spacy evaluate --output` writes floats with srsly (10 decimals) and we read them back with json:
    put the runner's score through the same two steps to compare like with like."""
    import srsly

    return json.loads(srsly.json_dumps(value))


def run_baseline(work: Path, data: Path, config: Path, i: int) -> Tuple[Timing, float]:
    out = work / f"baseline-{i}"
    out.mkdir(parents=True, exist_ok=True)
    train, dev = out / "train.spacy", out / "dev.spacy"
    seconds = timed(
        [PYTHON, str(Path(__file__).parent / "baseline_preprocess.py"),
         str(data / "train.jsonl"), str(train), str(data / "dev.jsonl"), str(dev)],
        log=out / "preprocess.log",
    )  # fmt: skip
    seconds += timed(
        [PYTHON, "-m", "spacy", "train", str(config), "--output", str(out),
         "--paths.train", str(train), "--paths.dev", str(dev)],
        log=out / "train.log",
    )  # fmt: skip
    metrics = out / "metrics.json"
    seconds += timed(
        [PYTHON, "-m", "spacy", "evaluate", str(out / "model-best"), str(dev), "--output", str(metrics)],
        log=out / "evaluate.log",
    )  # fmt: skip
    return seconds, float(read_json(metrics)["ents_f"])


def main(argv: List[str]) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    check_data(args.data)
    data = args.data.resolve()
    runner_s: List[Timing] = []
    baseline_s: List[Timing] = []
    scores: List[Tuple[float, float]] = []
    with workdir(args.workdir) as work:
        print(f"overhead: {args.steps} steps on {data}, {args.repeats} repeat(s), in {work}", flush=True)
        for i in range(args.repeats):
            seconds, runner_f, config = run_runner(work, data, args.steps, i)
            runner_s.append(seconds)
            print(f"  [{i}] runner    {seconds.wall:7.2f}s (cpu {seconds.cpu:.2f}s)  dev ents_f {runner_f}", flush=True)
            seconds, baseline_f = run_baseline(work, data, config, i)
            baseline_s.append(seconds)
            print(f"  [{i}] baseline  {seconds.wall:7.2f}s (cpu {seconds.cpu:.2f}s)  dev ents_f {baseline_f}", flush=True)
            scores.append((runner_f, baseline_f))
    print(f"runner   (python run.py): {describe(runner_s)}")
    print(f"baseline (preprocess + spacy train + spacy evaluate): {describe(baseline_s)}")
    differ = [(r, b) for r, b in scores if r != b]
    print(f"best dev ents_f: runner {scores[0][0]}, baseline {scores[0][1]}")
    ratio = min_ratio(runner_s, baseline_s)
    print(f"runner/baseline: wall {ratio.wall:.3f}, cpu {ratio.cpu:.3f}")
    if differ:
        print(
            "FAIL: the runner and the baseline trained the same documents with the same config and seed "
            f"but scored differently (runner, baseline): {differ}"
        )
    print(ratio_line("overhead", ratio.wall, f"<= {GOAL}"))
    return 2 if differ else 0 if ratio.wall <= GOAL else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchmarkError as err:
        sys.exit(f"error: {err}")
