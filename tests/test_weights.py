"""The weights cache: status, and fetching from a local HTTP server with good, corrupt and truncated files."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import harness_cli

from harness.api.method import MissingWeightsError
from harness.api.specs import WeightFile, WeightsSpec
from harness.weights import WeightsFetchError, fetch, require, status

GOOD = b"stand-in weights " * 1000
DET = b"detector bytes " * 300
REC = b"recognition bytes " * 400


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class _Server:
    def __init__(self, files: dict[str, bytes], lie_about_length: set[str]) -> None:
        self.files = files
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = outer.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                claimed = len(data) * 2 if self.path.lstrip("/") in lie_about_length else len(data)
                self.send_header("Content-Length", str(claimed))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    files = {
        "good.pth": GOOD,
        "corrupt.pth": GOOD[:-1] + b"X",
        "truncated.pth": GOOD,
        "pack.zip": _zip({"pack/det.onnx": DET, "pack/rec.onnx": REC, "pack/extra.txt": b"kept"}),
        "escape.zip": _zip({"../../evil.onnx": DET}),
        "alexnet-owt-7be5be79.pth": GOOD,
        "buffalo_l.zip": _zip({"det_10g.onnx": DET, "w600k_r50.onnx": REC}),
    }
    with _Server(files, lie_about_length={"truncated.pth"}) as srv:
        yield srv


def _file_spec(url: str) -> WeightsSpec:
    return WeightsSpec(name="single", url=url,
                       files=(WeightFile("torch/model.pth", sha256=hashlib.sha256(GOOD).hexdigest()),))


def _zip_spec(url: str) -> WeightsSpec:
    return WeightsSpec(name="pack", url=url, archive="zip", extract_to="models/pack",
                       files=(WeightFile("models/pack/det.onnx"), WeightFile("models/pack/rec.onnx")))


def test_fetch_verifies_a_published_checksum(server: _Server, tmp_path: Path) -> None:
    rows = fetch(_file_spec(f"{server.url}/good.pth"), root=tmp_path)
    assert [(r.state, r.size) for r in rows] == [("verified", len(GOOD))]
    assert (tmp_path / "torch/model.pth").read_bytes() == GOOD


@pytest.mark.parametrize("name, message", [("corrupt.pth", "expected"), ("truncated.pth", "cut short"),
                                           ("missing.pth", "404")])
def test_a_bad_download_is_rejected_and_nothing_is_written(server: _Server, tmp_path: Path, name: str,
                                                           message: str) -> None:
    with pytest.raises(WeightsFetchError, match=message):
        fetch(_file_spec(f"{server.url}/{name}"), root=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert status([_file_spec("unused")], root=tmp_path)[0].state == "missing"


def test_zip_without_published_checksums_is_recorded_then_corruption_is_caught(server: _Server,
                                                                              tmp_path: Path) -> None:
    spec = _zip_spec(f"{server.url}/pack.zip")
    assert [r.state for r in fetch(spec, root=tmp_path)] == ["recorded", "recorded"]
    assert (tmp_path / "models/pack/det.onnx").read_bytes() == DET
    assert (tmp_path / "models/pack/extra.txt").read_bytes() == b"kept"
    (tmp_path / "models/pack/rec.onnx").write_bytes(REC[:-3])
    states = {r.relpath: r.state for r in status([spec], root=tmp_path)}
    assert states == {"models/pack/det.onnx": "recorded", "models/pack/rec.onnx": "corrupt"}


def test_hand_placed_files_are_unverified_and_missing_ones_raise_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    spec = _zip_spec("https://example.invalid/pack.zip")
    (tmp_path / "models/pack").mkdir(parents=True)
    (tmp_path / "models/pack/det.onnx").write_bytes(DET)
    assert [r.state for r in status([spec], root=tmp_path)] == ["unverified", "missing"]
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    with pytest.raises(MissingWeightsError, match=r"harness weights fetch pack"):
        require(spec, "the test metric")


def test_archive_paths_that_escape_the_cache_are_refused(server: _Server, tmp_path: Path) -> None:
    spec = WeightsSpec(name="evil", url=f"{server.url}/escape.zip", archive="zip",
                       files=(WeightFile("evil.onnx"),))
    with pytest.raises(WeightsFetchError, match="unsafe path"):
        fetch(spec, root=tmp_path / "cache")
    assert not (tmp_path / "evil.onnx").exists()


def test_cli_fetch_rejects_a_file_that_misses_torchvisions_published_prefix(server: _Server,
                                                                            tmp_path: Path) -> None:
    env = {"HARNESS_HOME": str(tmp_path)}
    bad = harness_cli(["weights", "fetch", "lpips-alex", "--mirror", server.url], env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "does not start with the published 7be5be79" in bad.stdout
    good = harness_cli(["weights", "fetch", "insightface-buffalo_l", "--mirror", server.url], env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert (tmp_path / "weights/insightface/models/buffalo_l/w600k_r50.onnx").read_bytes() == REC
    shown = harness_cli(["weights", "status"], env)
    assert shown.returncode == 1
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    assert [("recorded" in r) for r in rows if "insightface-buffalo_l" in r] == [True, True]
    assert [("missing" in r) for r in rows if "lpips-alex" in r] == [True]


def test_run_reports_a_metric_without_weights_as_missing_and_strict_makes_it_an_error(tmp_path: Path,
                                                                                       demo_adapter) -> None:
    args = ["run", "--method", "nearest-input", "--dataset", "demo", "--runs-dir", str(tmp_path), "--device", "cpu"]
    shown = harness_cli([*args, "--config", "note=lenient"])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "metric LPIPS not computed" in shown.stdout and "harness weights fetch lpips-alex" in shown.stdout
    strict = harness_cli([*args, "--config", "note=strict", "--strict"])
    assert strict.returncode == 2
    for name in ("lpips", "csim", "dreamsim"):
        assert f"metric {name}: " in strict.stderr
    assert "alexnet-owt-7be5be79.pth" in strict.stderr and "harness weights fetch" in strict.stderr
