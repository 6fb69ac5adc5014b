"""``--executor slurm`` on a real single-node SLURM cluster (tools/slurm/start_slurm.sh; .ci/run starts it).

Skipped, with the reason, where no cluster answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import harness_cli
from polars.testing import assert_frame_equal

from harness.plugins.registry import build_registry
from harness.runner import RunRequest, run

DEMO_UNITS = 9


def _cluster_problem() -> str | None:
    for tool in ("sbatch", "scontrol", "sacct", "squeue", "scancel"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tools/slurm/start_slurm.sh brings up a cluster)"
    for command in (["scontrol", "ping"], ["sacct", "-n", "-X", "-S", "now"]):
        try:
            probe = subprocess.run(command, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` did not answer in 20 s"
        if probe.returncode != 0 or "DOWN" in probe.stdout:
            return f"`{' '.join(command)}` failed: {' '.join((probe.stdout + probe.stderr).split())[:200]}"
    return None


PROBLEM = _cluster_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no SLURM cluster: {PROBLEM}")

SLURM = ["--executor", "slurm", "--executor-config", "cpus=1", "--executor-config", "mem=1",
         "--executor-config", "state_every=1", "--executor-config", "poll=0.2"]


@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> pl.DataFrame:
    runs = tmp_path_factory.mktemp("local")
    result = run(RunRequest(method="nearest-input", dataset="demo", runs_dir=runs, device="cpu"), build_registry())
    return pl.read_parquet(result["prepared"].store.root / "metrics.parquet")


def _three_sequential_tasks(runs: Path) -> list[str]:
    """A slow method's 9 units as 3 tasks of 3 units, one running at a time: there is time to act mid-run."""
    return ["run", "--method", "slow-nearest", "--dataset", "demo", "--device", "cpu", *SLURM,
            "--executor-config", "units_per_task=3", "--executor-config", "array_parallelism=1",
            "--runs-dir", str(runs)]


def _run_dir(runs: Path) -> Path:
    return next(runs.glob("*/*/run.json")).parent


def _tasks(runs: Path) -> list[dict]:
    return json.loads((_run_dir(runs) / "slurm_jobs.json").read_text())["tasks"]


def _same_scores(runs: Path, table: pl.DataFrame) -> None:
    got = pl.read_parquet(_run_dir(runs) / "metrics.parquet")
    assert_frame_equal(got.drop("method", "run"), table.drop("method", "run"))


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _committed(runs: Path) -> int:
    return len(list(runs.glob("*/*/predictions/*/info.json")))


def test_a_job_array_gives_the_local_table(tmp_path: Path, local_table: pl.DataFrame) -> None:
    runs = tmp_path / "runs"
    result = harness_cli(["run", "--method", "nearest-input", "--dataset", "demo", "--device", "cpu", *SLURM,
                          "--executor-config", "gpus=1", "--score-on", "slurm", "--runs-dir", str(runs)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert_frame_equal(pl.read_parquet(_run_dir(runs) / "metrics.parquet"), local_table)
    tasks = _tasks(runs)
    assert len(tasks) == DEMO_UNITS and len({t["job_id"] for t in tasks}) == DEMO_UNITS
    assert len({t["job_id"].split("_")[0] for t in tasks}) == 1  # one array
    # Each task asked for one of the fake GPUs: SLURM gave it one (CUDA_VISIBLE_DEVICES in its environment).
    job = tasks[0]["job_id"]
    shown = subprocess.run(["sacct", "-j", job, "-n", "-X", "-o", "AllocTRES%80"], capture_output=True,
                           text=True).stdout
    assert "gres/gpu=1" in shown, shown
    assert "scoring as SLURM job" in result.stderr


def test_a_cancelled_job_is_reported_and_the_next_run_finishes_only_the_rest(tmp_path: Path,
                                                                           test_plugin_site: Path,
                                                                           local_table: pl.DataFrame) -> None:
    runs = tmp_path / "runs"
    args = _three_sequential_tasks(runs)
    env = {**os.environ, "PYTHONPATH": str(test_plugin_site), "HARNESS_TEST_SLEEP": "2", "COLUMNS": "200"}
    driver = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    assert _wait(lambda: _committed(runs) >= 1, 240), "no unit was committed in time"
    array = _tasks(runs)[0]["job_id"].split("_")[0]
    subprocess.run(["scancel", array], check=True)
    out, _ = driver.communicate(timeout=240)
    flat = " ".join(out.split())
    assert driver.returncode == 1, out
    assert "ended CANCELLED before this unit was committed" in flat and "_log.err" in flat
    done = _committed(runs)
    assert 1 <= done < DEMO_UNITS
    assert not list(runs.glob("*/*/failures/*"))

    again = harness_cli(args, pythonpath=test_plugin_site, env_extra={"HARNESS_TEST_SLEEP": "0"})
    assert again.returncode == 0, again.stdout + again.stderr
    timing = json.loads((_run_dir(runs) / "run.json").read_text())["timing"]
    assert timing["units_skipped"] == done and timing["units_predicted"] == DEMO_UNITS - done
    _same_scores(runs, local_table)


def test_a_killed_driver_reattaches_instead_of_submitting_again(tmp_path: Path, test_plugin_site: Path,
                                                                local_table: pl.DataFrame) -> None:
    runs = tmp_path / "runs"
    args = _three_sequential_tasks(runs)
    env = {**os.environ, "PYTHONPATH": str(test_plugin_site), "HARNESS_TEST_SLEEP": "1", "COLUMNS": "200"}
    driver = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def submitted() -> bool:
        try:
            return all(t.get("job_id") for t in _tasks(runs))
        except (StopIteration, OSError, ValueError, KeyError):
            return False

    assert _wait(submitted, 120), "the driver did not record its jobs"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    arrays = {t["job_id"].split("_")[0] for t in _tasks(runs)}

    again = harness_cli(args, pythonpath=test_plugin_site, env_extra={"HARNESS_TEST_SLEEP": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "re-attached to" in again.stderr and "harness: submitted" not in again.stderr
    assert {t["job_id"].split("_")[0] for t in _tasks(runs)} == arrays  # no second array
    _same_scores(runs, local_table)


@pytest.mark.parametrize(("option", "said"), [("sbatch=--frobnicate=1", "frobnicate"),
                                               ("partition=nosuchpartition", "partition")])
def test_a_request_slurm_refuses_is_reported_before_anything_is_submitted(tmp_path: Path, option: str,
                                                                          said: str) -> None:
    runs = tmp_path / "runs"
    before = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now-1hour"], capture_output=True,
                            text=True).stdout.split()
    result = harness_cli(["run", "--method", "nearest-input", "--dataset", "demo", "--device", "cpu", *SLURM,
                          "--executor-config", option, "--runs-dir", str(runs)])
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "SLURM refused the job request" in message and said in message and "nothing was submitted" in message
    after = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now-1hour"], capture_output=True,
                           text=True).stdout.split()
    assert after == before
    assert not (_run_dir(runs) / "slurm_jobs.json").exists()
