from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.errors import DatasetError, ProtocolError
from harness.data.nersemble_v1 import NersembleV1
from harness.data.protocol import load_protocol, parse_protocol
from harness.paths import protocols_dir


def test_demo_protocol_expands_into_named_units() -> None:
    protocol = load_protocol(protocols_dir() / "demo" / "demo.yaml")
    units = protocol.units()
    assert protocol.label == "demo@v2"
    assert len(units) == 9
    assert units[0].name == "901.EXP-1-head.novel_view.f00000"
    assert [u.kind for u in units[:3]] == ["novel_view", "novel_view", "self_reenactment"]
    assert all(t.frame != 0 for t in units[2].targets)


@pytest.mark.parametrize(("mutation", "message"), [
    (lambda r: r.pop("version"), "missing required field 'version'"),
    (lambda r: r["tasks"][0].update(kind="dance"), "tasks[0].kind is 'dance'"),
    (lambda r: r["tasks"][0].update(frames=[]), "tasks[0].frames must be a non-empty list"),
    (lambda r: r["tasks"][0].update(frames=["x"]), "tasks[0].frames must be a non-empty list of integers"),
])
def test_malformed_protocols_are_rejected_with_the_field_named(mutation, message) -> None:
    import yaml

    raw = yaml.safe_load((protocols_dir() / "demo" / "demo.yaml").read_text())
    mutation(raw)
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_protocol(raw, "p.yaml")


def test_missing_calibration_and_camera_are_named(tmp_path: Path, demo_adapter) -> None:
    reader = NersembleV1(tmp_path)
    with pytest.raises(DatasetError, match=str(tmp_path / "901" / "camera_params.json")):
        reader.camera("901", "EXP-1-head", 0, "222200037")
    with pytest.raises(DatasetError, match="camera 123 is not in 'world_2_cam'"):
        demo_adapter.camera("901", "EXP-1-head", 0, "123")
