"""Executors that run units outside the driver: local worker processes and submitit's debug executor.

The tests on a real SLURM cluster are in test_scaleout_slurm.py."""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> pl.DataFrame:
    runs = tmp_path_factory.mktemp("local")
    result = run(RunRequest(method="nearest-input", dataset="demo", runs_dir=runs, device="cpu"), build_registry())
    return pl.read_parquet(result["prepared"].store.root / "metrics.parquet")


def _table(runs: Path) -> pl.DataFrame:
    return pl.read_parquet(next(runs.glob("*/*/metrics.parquet")))


def _record(runs: Path) -> dict:
    return json.loads(next(runs.glob("*/*/run.json")).read_text())


def test_two_workers_give_the_local_table(tmp_path: Path, local_table: pl.DataFrame) -> None:
    runs = tmp_path / "runs"
    result = harness_cli(["run", "--method", "nearest-input", "--dataset", "demo", "--device", "cpu",
                          "--workers", "2", "--runs-dir", str(runs)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert_frame_equal(_table(runs), local_table)
    logs = sorted(p.name for p in runs.glob("*/*/workers/*.log"))
    assert logs == ["worker-0.log", "worker-1.log"]  # two processes really ran
    assert _record(runs)["timing"]["units_predicted"] == DEMO_UNITS


def _worker_pids(driver: int) -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        parent = next((line.split()[1] for line in text.splitlines() if line.startswith("PPid:")), "")
        if parent == str(driver) and b"harness.scaleout.worker" in cmdline:
            pids.append(int(status.parent.name))
    return pids


def test_a_killed_worker_loses_only_its_unit_in_flight(tmp_path: Path, test_plugin_site: Path,
                                                        local_table: pl.DataFrame) -> None:
    runs = tmp_path / "runs"
    args = ["run", "--method", "slow-nearest", "--dataset", "demo", "--device", "cpu", "--workers", "2",
            "--runs-dir", str(runs)]
    env = {**os.environ, "PYTHONPATH": str(test_plugin_site), "HARNESS_TEST_SLEEP": "1.5", "COLUMNS": "200"}
    driver = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(runs.glob("*/*/predictions/*/info.json")):
        time.sleep(0.05)
    workers = _worker_pids(driver.pid)
    assert len(workers) == 2 and list(runs.glob("*/*/predictions/*/info.json")), "no unit was committed in time"
    time.sleep(0.3)  # the killed worker is inside its next unit
    os.kill(workers[0], signal.SIGKILL)
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 1, out  # the run ends, with one problem reported
    flat = " ".join(out.split())
    assert "was killed by signal 9 while predicting this unit" in flat
    committed = len(list(runs.glob("*/*/predictions/*/info.json")))
    assert committed == DEMO_UNITS - 1  # the other worker finished everything else
    assert not list(runs.glob("*/*/failures/*"))  # a lost unit is not a failed one: the next run does it

    again = harness_cli([*args[:-2], "--runs-dir", str(runs)], pythonpath=test_plugin_site,
                        env_extra={"HARNESS_TEST_SLEEP": "0"})
    assert again.returncode == 0, again.stdout + again.stderr
    record = _record(runs)
    assert record["timing"]["units_skipped"] == DEMO_UNITS - 1 and record["timing"]["units_predicted"] == 1
    assert_frame_equal(_table(runs).drop("method", "run"), local_table.drop("method", "run"))


def test_debug_executor_reports_unit_errors_without_stopping_in_pdb(tmp_path: Path, test_plugin_site: Path) -> None:
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--method", "nan-render", "--dataset", "demo", "--device", "cpu",
         "--executor", "slurm", "--executor-config", "cluster=debug", "--executor-config", "units_per_task=4",
         "--runs-dir", str(runs)],
        env={**os.environ, "PYTHONPATH": str(test_plugin_site), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=300, input="c\n" * 50)
    out = result.stdout + result.stderr
    assert "(Pdb)" not in out and "post_mortem" not in out
    assert result.returncode == 1, out
    assert "NaN" in " ".join(out.split())
    failures = sorted(p.stem for p in runs.glob("*/*/failures/*.json"))
    assert failures and all(name.startswith("901.") for name in failures)
    assert len(list(runs.glob("*/*/predictions/*/info.json"))) == DEMO_UNITS - len(failures)


@pytest.mark.parametrize(("options", "message"), [
    (["--executor", "slurm", "--executor-config", "partiton=debug"], "executor slurm has no option partiton"),
    (["--executor", "slurm", "--executor-config", "time=soon"], "give minutes, M:S, H:M:S or D-H:M:S"),
    (["--executor", "slurm", "--executor-config", "cluster=debug", "--executor-config", "partition=a"],
     "partition is a SLURM option"),
    (["--executor", "workers", "--executor-config", "workers=0"], "workers must be at least 1"),
    (["--executor", "local", "--executor-config", "workers=2"], "executor local takes no options"),
    (["--executor", "slurm", "--workers", "2"], "does not combine with --executor slurm"),
    (["--score-on", "slurm"], "--score-on slurm needs --executor slurm"),
    (["--executor", "slurmm"], "slurm"),
    (["--executor", "local-gpus"], "this run asked for --device cpu"),
])
def test_bad_executor_options_are_refused_before_any_unit_runs(tmp_path: Path, options: list[str],
                                                                message: str) -> None:
    runs = tmp_path / "runs"
    result = harness_cli(["run", "--method", "nearest-input", "--dataset", "demo", "--device", "cpu",
                          "--runs-dir", str(runs), *options])
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split())
    assert not list(runs.glob("*/*/predictions/*"))
    assert not list(runs.glob("*/*/submitit/*"))


def test_executor_options_come_from_config_yaml_under_the_command_line(tmp_path: Path, monkeypatch) -> None:
    from harness.executors import executor_options

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    (tmp_path / "config.yaml").write_text("executors:\n  slurm:\n    partition: gpu\n    time: 60\n")
    assert executor_options("slurm", {"time": "30"}) == {"partition": "gpu", "time": "30"}
    assert executor_options("workers", {}) == {}


@pytest.mark.parametrize(("limit", "minutes"), [("90", 90), ("1:30", 2), ("0:30", 1), ("2:00:00", 120), ("1-2", 1560),
                                                ("1-2:30", 1590), ("1-02:30:00", 1590)])
def test_time_limits_read_as_sbatch_reads_them(limit: str, minutes: int) -> None:
    from harness.scaleout.slurm import parse_settings

    assert parse_settings({"time": limit}).parameters["timeout_min"] == minutes  # M:S is minutes:seconds, as sbatch


def test_slurm_settings_map_to_submitit_parameters() -> None:
    from harness.scaleout.slurm import parse_settings

    settings = parse_settings({"partition": "gpu", "time": "1-02:30:00", "gpus": "1", "cpus": "8", "mem": "32",
                               "array_parallelism": "16", "account": "lab", "qos": "high",
                               "sbatch": "--constraint=a100 --exclusive", "units_per_task": "3"})
    assert settings.parameters == {
        "slurm_partition": "gpu", "timeout_min": 1590, "gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 32.0,
        "slurm_array_parallelism": 16, "slurm_account": "lab", "slurm_qos": "high",
        "slurm_additional_parameters": {"constraint": "a100", "exclusive": True}}
    assert settings.units_per_task == 3 and settings.threads == 8


def test_a_worker_that_resolves_another_run_predicts_nothing(tmp_path: Path, demo_adapter) -> None:
    from harness.scaleout.work import WorkerTask, run_task

    request = RunRequest(method="nearest-input", dataset="demo", runs_dir=tmp_path, device="cpu")
    outcomes = run_task(WorkerTask(request, "nearest-input-0000000000", "cpu", ("a", "b")))
    assert [o.unit for o in outcomes] == ["a", "b"]
    assert all("the driver to nearest-input-0000000000" in (o.error or "") for o in outcomes)
    assert not list(tmp_path.glob("*/*/predictions/*"))


def test_worker_tasks_survive_a_json_round_trip(tmp_path: Path) -> None:
    from harness.scaleout.work import WorkerTask

    request = RunRequest(method="m", dataset="d", protocol="p", data_root=tmp_path, runs_dir=tmp_path / "r",
                         config={"k": [1, 2]}, seed=3, executor="workers", executor_config={"workers": "2"})
    task = WorkerTask(request, "m-1", "cuda", ("u1", "u2"), "abc", 4)
    assert WorkerTask.from_json(json.loads(json.dumps(task.as_json()))) == task
