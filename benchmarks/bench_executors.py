"""Wall time of one run on each executor, and SLURM's scheduling overhead (run by hand, not a test).

    python benchmarks/bench_executors.py [--method nearest-input] [--dataset demo] [--workers 2] [--no-slurm]

Runs the same command with ``--executor local``, ``--workers N`` and ``--executor slurm`` (when ``sbatch`` answers)
into fresh run folders, checks the three ``metrics.parquet`` are identical, and prints each wall time, the
1-minute load average before it, and for SLURM the time from submission to the first committed unit (what the
driver prints as "first unit landed"). Uses ``HARNESS_THREADS=1`` in every process so the runs are comparable.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal


def _run(args: list[str], runs: Path) -> tuple[float, str]:
    env = {**os.environ, "HARNESS_THREADS": "1", "COLUMNS": "200"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", *args, "--runs-dir", str(runs)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(args)}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="nearest-input")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()
    base = ["--method", args.method, "--dataset", args.dataset, "--device", "cpu"]
    arms = {"local": [], f"workers={args.workers}": ["--workers", str(args.workers)]}
    if not args.no_slurm and shutil.which("sbatch"):
        arms["slurm"] = ["--executor", "slurm", "--executor-config", "cpus=1", "--executor-config", "mem=1"]
    tables = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, extra in arms.items():
            runs = Path(scratch) / name.replace("=", "")
            load = os.getloadavg()[0]
            wall, out = _run([*base, *extra], runs)
            first = re.search(r"first unit landed ([0-9.]+) s", " ".join(out.split()))
            tables[name] = pl.read_parquet(next(runs.glob("*/*/metrics.parquet")))
            extra_note = f", first unit {first.group(1)} s after submission" if first else ""
            print(f"{name:>10}: {wall:6.1f} s wall (load {load:.2f} before){extra_note}")
    reference = tables.pop("local")
    for table in tables.values():
        assert_frame_equal(table, reference)
    print(f"metrics.parquet identical across {', '.join(['local', *tables])}")


if __name__ == "__main__":
    main()
