"""Start-up time: `python run.py --help` and `python run.py --cfg job` against `python -m spacy --help`.

    python benchmarks/startup.py [--repeats 5]

Composition must not pay for what only a training job needs: spaCy, torch, MLflow and Vertex AI are
imported inside the functions that use them. Wall time of each command in a fresh process, minimum of the
interleaved repeats; the ratio is the slower of the two runner commands over spaCy's own --help,
goal <= 0.5.
"""

from __future__ import annotations

import sys
from typing import Dict, List

from harness import PYTHON, ROOT, BenchmarkError, Timing, base_parser, describe, min_ratio, ratio_line, run_py_cmd, timed, workdir

GOAL = 0.5

COMMANDS = {
    "python run.py --help": run_py_cmd(["--help"]),
    "python run.py --cfg job": run_py_cmd(["--cfg", "job"]),
    "python -m spacy --help": [PYTHON, "-m", "spacy", "--help"],
}
BASELINE = "python -m spacy --help"


def main(argv: List[str]) -> int:
    args = base_parser(__doc__.splitlines()[0], steps=None, repeats=5).parse_args(argv)
    times: Dict[str, List[Timing]] = {name: [] for name in COMMANDS}
    with workdir(args.workdir) as work:
        for i in range(args.repeats):
            for name, cmd in COMMANDS.items():
                times[name].append(timed(cmd, log=work / f"{i}-{name.replace(' ', '_')}.log", cwd=ROOT))
    for name, values in times.items():
        print(f"{name:24s} {describe(values)}")
    ratios = {name: min_ratio(values, times[BASELINE]) for name, values in times.items() if name != BASELINE}
    for name, ratio in ratios.items():
        print(f"{name} / {BASELINE}: wall {ratio.wall:.3f}, cpu {ratio.cpu:.3f}")
    worst = max(r.wall for r in ratios.values())
    print(ratio_line("startup", worst, f"<= {GOAL}"))
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchmarkError as err:
        sys.exit(f"error: {err}")
