"""Tracking cost: the same `python run.py` with MLflow tracking on, against tracking switched off.

    python benchmarks/tracking_cost.py [--steps 1000] [--repeats 3] [--data ../shared/data/fashion_brands]

off:    python run.py ... tracking.enabled=false
local:  python run.py ... tracking.uri=sqlite:///<workdir>/mlflow.db       (the default local store)
server: python run.py ... tracking.uri=http://127.0.0.1:<port>             (a real `mlflow server` this
                                                                           script starts and stops)

Tracking on means everything the runner records: params, tags, per-step metrics, artifacts and the model
(MLflow spaCy flavor, registered). Wall time, minimum of the interleaved repeats; the ratio is the worse
of local/off and server/off, goal <= 1.02. The server runs for the whole benchmark, the off runs included,
so that its idle cost is on both sides.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Dict, List

from harness import (
    BenchmarkError,
    Timing,
    base_parser,
    check_data,
    describe,
    fashion_run_overrides,
    min_ratio,
    mlflow_server,
    ratio_line,
    read_json,
    run_py_cmd,
    timed,
    workdir,
)

GOAL = 1.02


def main(argv: List[str]) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--stores", default="local,server", help="tracking stores to measure against off (default local,server)"
    )
    args = parser.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    if not stores or set(stores) - {"local", "server"}:
        parser.error("--stores takes local, server or local,server")
    check_data(args.data)
    data = args.data.resolve()
    times: Dict[str, List[Timing]] = {name: [] for name in ("off", *stores)}
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workdir(args.workdir))
        variants = {"off": ["tracking.enabled=false"]}
        if "local" in stores:
            variants["local"] = [f"tracking.uri=sqlite:///{work / 'mlflow.db'}"]
        if "server" in stores:
            variants["server"] = [f"tracking.uri={stack.enter_context(mlflow_server(work / 'server'))}"]
        print(f"tracking_cost: {args.steps} steps on {data}, {args.repeats} repeat(s), in {work}", flush=True)
        for i in range(args.repeats):
            for name, extra in variants.items():
                run_dir = work / f"{name}-{i}"
                overrides = fashion_run_overrides(data, args.steps, run_dir, work / f"cache-{name}-{i}")
                seconds = timed(run_py_cmd([*overrides, *extra]), log=work / f"{name}-{i}.log")
                result = read_json(run_dir / "result.json")
                if result["status"] != "COMPLETED":
                    raise BenchmarkError(f"{name} run {i} ended {result['status']}: {result.get('error')}")
                if name != "off" and not result.get("mlflow_run_id"):
                    raise BenchmarkError(f"{name} run {i} recorded no MLflow run")
                times[name].append(seconds)
                print(
                    f"  [{i}] {name:6s} {seconds.wall:7.2f}s (cpu {seconds.cpu:.2f}s)  dev ents_f {result['objective']}",
                    flush=True,
                )
    for name, values in times.items():
        print(f"{name:6s}: {describe(values)}")
    ratios = {name: min_ratio(times[name], times["off"]) for name in stores}
    for name, ratio in ratios.items():
        print(f"{name}/off: wall {ratio.wall:.3f}, cpu {ratio.cpu:.3f} (cpu leaves out the server process)")
    worst = max(r.wall for r in ratios.values())
    print(ratio_line("tracking_cost", worst, f"<= {GOAL}"))
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchmarkError as err:
        sys.exit(f"error: {err}")
