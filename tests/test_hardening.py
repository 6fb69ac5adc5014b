"""Faults a user or a hostile file can cause: user data is never deleted, no write leaves its root, no code runs
from a data file, and a third-party plugin cannot take over a built-in name."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from harness.cli import main
from harness.data.errors import DatasetError, ProtocolError
from harness.jsonio import HARNESS_MADE, RefusedFolderError, atomic_folder
from harness.safepath import UnsafePathError, check_name, inside


def _precious(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    thesis = folder / "thesis.tex"
    thesis.write_text("precious")
    return thesis


# 1. user data deleted ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["demo", "demo-wild"])
def test_check_on_a_user_folder_reports_and_writes_nothing(tmp_path: Path, dataset: str, capsys) -> None:
    thesis = _precious(tmp_path / "d")
    code = main(["datasets", "check", dataset, "--data-root", str(tmp_path / "d")])
    assert code == 1
    assert "holds no generated" in " ".join(capsys.readouterr().out.split())
    assert thesis.read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["thesis.tex"]


def test_check_never_generates_even_into_an_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["datasets", "check", "demo-wild", "--data-root", str(empty)]) == 1
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("dataset", ["demo", "demo-wild"])
def test_run_refuses_to_generate_into_a_user_folder(tmp_path: Path, dataset: str, capsys) -> None:
    thesis = _precious(tmp_path / "d")
    code = main(["run", "--method", "nearest-input", "--dataset", dataset, "--data-root", str(tmp_path / "d"),
                 "--runs-dir", str(tmp_path / "runs")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "did not make" in err and "thesis.tex" in err
    assert thesis.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging folder, no run folder left behind


def test_env_variable_root_is_guarded_too(tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.data.resolve import open_reader
    from harness.plugins.registry import build_registry

    thesis = _precious(tmp_path / "d")
    spec = build_registry().dataset("demo-wild")
    monkeypatch.setenv(spec.root_env, str(tmp_path / "d"))
    with pytest.raises(DatasetError, match="did not make"):
        open_reader(spec, None, generate=True)
    assert thesis.read_text() == "precious"


def test_atomic_folder_replaces_only_empty_or_harness_made_folders(tmp_path: Path) -> None:
    target = tmp_path / "made"
    with atomic_folder(target, "test") as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / HARNESS_MADE).is_file()
    with atomic_folder(target, "test") as tmp:  # harness-made: replaced whole
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == [HARNESS_MADE, "b.txt"]
    thesis = _precious(tmp_path / "user")
    with pytest.raises(RefusedFolderError, match=r"thesis\.tex"), atomic_folder(tmp_path / "user") as tmp:
        raise AssertionError("the body must not run")
    assert thesis.read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RefusedFolderError, match="not a folder"), atomic_folder(tmp_path / "file"):
        pass


def test_a_folder_filled_while_generating_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "late"
    with pytest.raises(RefusedFolderError), atomic_folder(target) as tmp:
        (tmp / "x").write_text("1")
        _precious(target)
    assert (target / "thesis.tex").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["late"]


# 2. path escapes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "../../x", "a/b", "a\\b", "", "x\0y", " x", "~root", "a\nb"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafePathError):
        check_name(name, "subject")


@pytest.mark.parametrize("name", ["901", "EXP-3-cheeks+nose", "20210727--1234--ABC123", "my photo.jpg", "cam_1"])
def test_ordinary_names_pass(name: str) -> None:
    assert check_name(name, "subject") == name


def test_inside_follows_links(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside.png").write_bytes(b"x")
    (tmp_path / "root" / "link.png").symlink_to(tmp_path / "outside.png")
    assert inside(tmp_path / "root", tmp_path / "root" / "a" / "b.png")
    with pytest.raises(UnsafePathError, match="outside"):
        inside(tmp_path / "root", tmp_path / "root" / "link.png")
    with pytest.raises(UnsafePathError):
        inside(tmp_path / "root", tmp_path / "root" / ".." / "x")


def _hostile_protocol(tmp_path: Path, field: str, value: str) -> Path:
    raw = yaml.safe_load((Path(__file__).parents[1] / "datasets" / "demo" / "demo.yaml").read_text())
    if field == "subject":
        raw["subjects"] = [value]
    elif field == "sequence":
        raw["tasks"][0]["sequences"] = [value]
    else:
        raw["tasks"][0]["target_cameras"] = [value]
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("field", ["subject", "sequence", "camera"])
def test_protocol_names_that_leave_the_run_folder_are_refused(tmp_path: Path, field: str) -> None:
    from harness.data.protocol import load_protocol

    with pytest.raises(ProtocolError, match=field):
        load_protocol(_hostile_protocol(tmp_path, field, "../../x")).units()


def test_run_with_a_hostile_protocol_writes_nothing(tmp_path: Path, demo_adapter, capsys) -> None:
    path = _hostile_protocol(tmp_path, "subject", "../../../x")
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    code = main(["run", "--method", "nearest-input", "--dataset", "demo", "--protocol", str(path),
                 "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and "cannot be used as a file or folder name" in " ".join(capsys.readouterr().err.split())
    assert (victim / "keep.txt").read_text() == "keep"
    assert not (tmp_path / "runs").exists()


def test_protocol_name_is_checked(tmp_path: Path) -> None:
    from harness.data.protocol import load_protocol

    raw = yaml.safe_load((Path(__file__).parents[1] / "datasets" / "demo" / "demo.yaml").read_text())
    raw["name"] = "../up"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProtocolError, match="protocol name"):
        load_protocol(tmp_path / "p.yaml")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> Path:
    """A predictions folder for the demo protocol with one unit's predictions (the ground truth plus noise)."""
    from harness.data.protocol import load_protocol
    from harness.imageio import write_png
    from harness.store import RunStore

    root = tmp_path_factory.mktemp("external") / "preds"
    unit = load_protocol(Path(__file__).parents[1] / "datasets" / "demo" / "demo.yaml").units()[0]
    rng = np.random.default_rng(0)
    for ref in unit.targets:
        view = demo_adapter.load_view(ref)
        noisy = np.clip(view.image + rng.normal(0, 0.05, view.image.shape), 0, 1)
        write_png(root / "predictions" / unit.name / RunStore.relative_prediction(ref), noisy)
    return root


def _score(run_dir: Path) -> None:
    from harness.external import prepare_external_run
    from harness.plugins.registry import build_registry
    from harness.scoring.scorer import score_run

    registry = build_registry()
    prepare_external_run(run_dir, registry, "demo", "demo", None, "external")
    score_run(run_dir, registry, metric_names=["psnr"])


def test_score_refuses_prediction_links_that_leave_the_run(small_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(small_run, run_dir)
    unit = next((run_dir / "predictions").iterdir())
    first = sorted(unit.rglob("*.png"))[0]
    outside = tmp_path / "outside.png"
    shutil.copyfile(first, outside)
    first.unlink()
    first.symlink_to(outside)
    _score(run_dir)
    metrics = pl.read_parquet(run_dir / "metrics.parquet").filter(pl.col("unit") == unit.name)
    refused = metrics.filter(pl.col("camera") == first.stem.removeprefix("cam_"))
    assert set(refused["status"]) == {"missing"} and refused["note"].str.contains("outside").all()
    assert metrics.filter(pl.col("status") == "ok").height > 0  # the unit's other images are scored


def test_report_refuses_run_json_names_that_leave_the_site(small_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(small_run, run_dir)
    _score(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    for key, value in (("method", "../../evil"), ("run_id", "../../evil")):
        (run_dir / "run.json").write_text(json.dumps({**record, key: value}))
        code = main(["report", str(run_dir), "--out", str(tmp_path / "site" / "out")])
        assert code == 2 and key in capsys.readouterr().err
    assert not (tmp_path / "evil").exists() and not (tmp_path / "site" / "evil").exists()


def test_plugin_spec_names_are_checked() -> None:
    from harness.api.specs import MethodSpec
    from harness.plugins import hookspecs
    from harness.plugins.registry import build_registry

    class Hostile:
        @hookspecs.hookimpl
        def register_methods(self, register) -> None:
            register(MethodSpec(name="../escape", target="x:y"))

    registry = build_registry(eps=[], extra_modules=[("hostile", Hostile())])
    assert "../escape" not in registry.specs["methods"]
    assert any("cannot be used as a file or folder name" in f.error for f in registry.failures)


# 3. no code from data files ------------------------------------------------------------------------------------

class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_flame_pickle_cannot_run_code(tmp_path: Path) -> None:
    from harness.heads.flame import FlameFormatError, load_flame

    marker = tmp_path / "pwned"
    path = tmp_path / "flame2023.pkl"
    path.write_bytes(pickle.dumps({"v_template": _RunsShell(marker)}, protocol=2))
    with pytest.raises(FlameFormatError, match=r"(posix|os)\.system"):
        load_flame(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")])
def test_flame_unpickler_allows_only_the_classes_a_flame_file_needs(tmp_path: Path, payload) -> None:
    from harness.heads.flame import FlameFormatError, _read_pickle

    module, name = payload
    path = tmp_path / "f.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00.")
    with pytest.raises(FlameFormatError, match=f"{module}.{name}"):
        _read_pickle(path)


def test_damaged_flame_files_fail_with_one_clear_error(tmp_path: Path) -> None:
    from harness.heads.flame import FlameFormatError, _read_pickle

    path = tmp_path / "f.pkl"
    rng = np.random.default_rng(0)
    valid = pickle.dumps({"a": np.arange(6, dtype=np.float64)}, protocol=2)
    damaged = [rng.integers(0, 256, size=int(rng.integers(1, 300)), dtype=np.uint8).tobytes() for _ in range(200)]
    damaged += [valid[:cut] for cut in range(1, len(valid) - 1, 7)]
    for content in damaged:
        path.write_bytes(content)
        with pytest.raises(FlameFormatError, match=r"f\.pkl"):
            _read_pickle(path)


def test_flame_arrays_and_sparse_matrices_still_load(tmp_path: Path) -> None:
    import scipy.sparse

    from harness.heads.flame import _read_pickle

    data = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "s": scipy.sparse.csc_matrix(np.eye(3)),
            "i": np.int64(3), "d": np.dtype("float32")}
    path = tmp_path / "f.pkl"
    for protocol in (0, 2, 4):
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        back = _read_pickle(path)
        assert np.array_equal(back["a"], data["a"]) and (back["s"] != data["s"]).nnz == 0 and back["i"] == 3


def _code_source(root: Path):
    from harness.api.specs import WeightFile, WeightsSpec
    from harness.weights import file_sha256, record_checksums

    repo = root / "hub" / "repo"
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text("VALUE = 1\n")
    (repo / "model.py").write_text("X = 2\n")
    record_checksums(root, {f"hub/repo/{n}": file_sha256(repo / n) for n in ("hubconf.py", "model.py")})
    spec = WeightsSpec(name="hub", url="file:///none", files=(WeightFile("hub/repo/hubconf.py"),), archive="zip",
                       extract_to="hub/repo", code=True)
    return spec, repo


def test_hub_code_runs_only_when_its_recorded_checksum_holds(tmp_path: Path) -> None:
    from harness.weights import verify

    spec, repo = _code_source(tmp_path)
    assert verify(spec, tmp_path) == []
    (repo / "hubconf.py").write_text("import os; os.system('echo pwned')\n")
    assert [p.name for p, _ in verify(spec, tmp_path)] == ["hubconf.py"]


def test_hub_code_with_an_unrecorded_module_is_refused(tmp_path: Path) -> None:
    from harness.weights import verify

    spec, repo = _code_source(tmp_path)
    (repo / "extra.py").write_text("import os\n")
    problems = verify(spec, tmp_path)
    assert [p.name for p, _ in problems] == ["extra.py"] and "never run" in problems[0][1]


def test_dreamsim_refuses_tampered_hub_code(tmp_path: Path, monkeypatch) -> None:
    from standins import install_dreamsim_standin

    from harness.api.method import MissingWeightsError
    from harness.scoring.dreamsim_metric import DreamSim

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    cache = install_dreamsim_standin(tmp_path / "weights")
    marker = tmp_path / "pwned"
    (cache / "facebookresearch_dino_main" / "hubconf.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(MissingWeightsError, match=r"hubconf\.py"):
        DreamSim()
    assert not marker.exists()


# 4. plugins cannot take over built-in names --------------------------------------------------------------------

def test_a_third_party_plugin_cannot_replace_a_builtin(tmp_path: Path) -> None:
    from importlib.metadata import distributions

    from conftest import write_plugin_dist

    from harness.plugins.registry import build_registry

    module = tmp_path / "src" / "aaa_takeover.py"
    module.parent.mkdir()
    module.write_text(
        "from harness.api.specs import MethodSpec\nfrom harness.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef register_methods(register):\n"
        "    register(MethodSpec(name='gs-fit', target='aaa_takeover:Nothing'))\n")
    site = write_plugin_dist(tmp_path / "site", "evil-plugin", {"aaa": "aaa_takeover"}, [module])
    import sys

    sys.path.insert(0, str(site))
    try:
        eps = [ep for dist in distributions(path=[str(site), *sys.path[1:]]) for ep in dist.entry_points
               if ep.group == "harness"]
        registry = build_registry(eps=eps)
    finally:
        sys.path.remove(str(site))
    assert registry.method("gs-fit").target.startswith("harness_methods.gs_fit")
    refusal = [f for f in registry.failures if f.plugin == "aaa"]
    assert refusal and "built-in plugin 'gs-fit'" in refusal[0].error and "evil-plugin" in refusal[0].error


def test_a_plugin_calling_sys_exit_at_import_is_only_a_failure(tmp_path: Path) -> None:
    from importlib.metadata import EntryPoint

    from harness.plugins.registry import build_registry

    module = tmp_path / "exits_at_import.py"
    module.write_text("import sys\nsys.exit(3)\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        registry = build_registry(eps=[EntryPoint("exits", "exits_at_import", "harness")])
    finally:
        sys.path.remove(str(tmp_path))
    assert [f.plugin for f in registry.failures] == ["exits"] and "SystemExit" in registry.failures[0].error


# the demo stays fast on a busy machine -------------------------------------------------------------------------

def test_cpu_threads_follow_the_free_cores(monkeypatch) -> None:
    import os

    from harness import threads

    monkeypatch.delenv("HARNESS_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (2.3, 2.0, 1.0))
    assert threads.cpu_threads() == 1  # both cores busy with other work: one thread, never zero
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert threads.cpu_threads() == 2
    monkeypatch.setenv("HARNESS_THREADS", "3")
    assert threads.cpu_threads() == 3
    monkeypatch.setenv("HARNESS_THREADS", "many")
    with pytest.raises(SystemExit, match="HARNESS_THREADS"):
        threads.cpu_threads()
