"""The Gaussian container's .ply: bit-exact round trip in the standard 3DGS layout, bad files rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.render.gaussians import Gaussians, PlyFormatError


def _random(n: int, degree: int, features: int = 0, seed: int = 0) -> Gaussians:
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return Gaussians(means=f32(n, 3), quats=f32(n, 4), log_scales=f32(n, 3), opacity_logits=f32(n),
                     sh=f32(n, (degree + 1) ** 2, 3), features=f32(n, features) if features else None)


@pytest.mark.parametrize("degree, features", [(0, 0), (1, 0), (3, 0), (3, 5)])
def test_ply_round_trip_is_bit_exact(tmp_path: Path, degree: int, features: int) -> None:
    original = _random(257, degree, features)
    original.save_ply(tmp_path / "head.ply")
    loaded = Gaussians.load_ply(tmp_path / "head.ply")
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert getattr(loaded, name).tobytes() == getattr(original, name).tobytes(), name
    assert (loaded.features is None) == (features == 0)
    if features:
        assert loaded.features.tobytes() == original.features.tobytes()
    assert loaded.sh_degree == degree


def test_ply_uses_the_3dgs_property_layout(tmp_path: Path) -> None:
    g = _random(2, 1)
    g.save_ply(tmp_path / "a.ply")
    header = (tmp_path / "a.ply").read_bytes().split(b"end_header\n")[0].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith("property")]
    assert props == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
                     *[f"f_rest_{i}" for i in range(9)], "opacity", "scale_0", "scale_1", "scale_2",
                     "rot_0", "rot_1", "rot_2", "rot_3"]
    # f_rest is channel-major: the first three f_rest values of a Gaussian are its red degree-1 coefficients.
    body = np.frombuffer((tmp_path / "a.ply").read_bytes().split(b"end_header\n")[1], dtype="<f4").reshape(2, -1)
    np.testing.assert_array_equal(body[0, 9:12], g.sh[0, 1:, 0])
    np.testing.assert_allclose(g.opacities, 1 / (1 + np.exp(-g.opacity_logits)))


def test_bad_ply_files_are_rejected_with_the_path(tmp_path: Path) -> None:
    _random(10, 0).save_ply(tmp_path / "ok.ply")
    data = (tmp_path / "ok.ply").read_bytes()
    (tmp_path / "short.ply").write_bytes(data[:-7])
    with pytest.raises(PlyFormatError, match=r"short\.ply.*truncated"):
        Gaussians.load_ply(tmp_path / "short.ply")
    (tmp_path / "text.ply").write_bytes(b"not a ply")
    with pytest.raises(PlyFormatError, match=r"text\.ply: not a PLY"):
        Gaussians.load_ply(tmp_path / "text.ply")
    with pytest.raises(ValueError, match="sh has shape"):
        Gaussians(means=np.zeros((2, 3)), quats=np.zeros((2, 4)), log_scales=np.zeros((2, 3)),
                  opacity_logits=np.zeros(2), sh=np.zeros((2, 5, 3)))
