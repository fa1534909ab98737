"""How long the command line takes to answer when no model runs.

`emviewer --help` and the help of each subcommand should feel instant: they import neither
TensorFlow nor Qt (a test checks that). This prints the median wall time of a few runs of
each, next to a bare `python -c pass` on the same machine, and the ratio.

    python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    print(f"{'command':<32} {'median s':>9} {'x bare python':>14}")
    print(f"{'python -c pass':<32} {bare:>9.3f} {1.0:>14.1f}")
    for command in (["--help"], ["predict", "--help"], ["train", "--help"], ["models"]):
        seconds = median_seconds([sys.executable, "-m", "emviewer", *command], args.runs)
        print(f"{'emviewer ' + ' '.join(command):<32} {seconds:>9.3f} {seconds / bare:>14.1f}")


if __name__ == "__main__":
    main()
