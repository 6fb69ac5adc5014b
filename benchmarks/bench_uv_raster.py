"""UV and mesh rasterisation timings (harness.geometry) on the open head template.

    python benchmarks/bench_uv_raster.py                  # CPU, one thread
    python benchmarks/bench_uv_raster.py --device cuda --threads 4

Prints: texel -> face rasterisation (uncached) at R = 64, 128, 256; the pixel z-buffer per view at 64x64, 128x128,
256x256; and splatting a 32-channel feature map into a 128 x 128 UV map per view (raster given, so it is the splat
alone, plus the per-pixel confidence). Each figure is the median of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from harness.api.types import Camera
from harness.data.rig import look_at_world_to_camera
from harness.geometry import pixel_confidence, rasterize_mesh, rasterize_uv, splat_to_uv
from harness.heads.model import deform
from harness.heads.template import head_template


def frontal_camera(size: int) -> Camera:
    """The demo rig's frontal camera (1 m away, 1250 px focal at 400 px width), square, at ``size`` x ``size``."""
    target = np.array([0.0, -0.02, 0.0])
    w2c = look_at_world_to_camera(target + np.array([0.0, 0.0, 1.0]), target, np.array([0.0, 1.0, 0.0]))
    f = size * 1250.0 / 400.0
    return Camera(w2c, np.array([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]]), size, size)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after a warm-up."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = head_template()
    vertices = deform(model, model.params()).vertices.to(device)
    faces = torch.as_tensor(model.faces, device=device)
    print(f"template: {len(model.v_template)} vertices, {len(model.faces)} faces; device {device}, "
          f"{args.threads} thread(s)")

    uv = torch.as_tensor(model.uv_coords, device=device)
    uv_faces = torch.as_tensor(model.uv_faces, device=device)
    for resolution in (64, 128, 256):
        seconds = timed(lambda r=resolution: rasterize_uv(uv, uv_faces, r), args.repeats, device)
        print(f"{'texel -> face':16s}{f'R={resolution}':10s}{'':9s}{seconds * 1e3:8.1f} ms")

    for size in (64, 128, 256):
        camera = frontal_camera(size)
        seconds = timed(lambda c=camera: rasterize_mesh(vertices, faces, c), args.repeats, device)
        print(f"{'z-buffer':16s}{f'{size}x{size}':10s}per view {seconds * 1e3:8.1f} ms")

    for size in (64, 128, 256):
        camera = frontal_camera(size)
        raster = rasterize_mesh(vertices, faces, camera)
        features = torch.randn(32, size, size, device=device)

        def splat(c: Camera = camera, r=raster, f: torch.Tensor = features) -> object:
            weights = pixel_confidence(r, vertices, faces, c)
            return splat_to_uv(f, r, model, 128, weights=weights)

        seconds = timed(splat, args.repeats, device)
        print(f"{'splat 32ch->128':16s}{f'{size}x{size}':10s}per view {seconds * 1e3:8.1f} ms  "
              f"({int(raster.mask.sum())} covered pixels)")


if __name__ == "__main__":
    main()
