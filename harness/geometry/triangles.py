"""Scan conversion of 2D triangles onto a pixel grid, shared by the UV and the image rasteriser.

Both rasterisers work in "grid units": cell ``(ix, iy)`` (column, row) has its centre at ``(ix + 0.5, iy + 0.5)``,
as the pixel centres of ``harness.render.cpu``. A cell is covered by a triangle when its centre lies inside the
triangle or on its boundary (all three barycentrics ``>= -eps``), so a centre on an edge shared by two triangles is
covered by both and the caller's tie-break decides; nothing falls through the cracks between triangles.

The work is vectorised over triangles: each triangle's bounding box of cell centres is enumerated with
``repeat_interleave`` and tested in one batch, in chunks of triangles whose candidate counts add up to about
``budget``, so memory stays bounded without a Python loop over triangles. Winners are chosen with a scatter-min on
a packed int64 key (score bits in the high word, face id in the low word), which is deterministic on every device
because the minimum does not depend on the order of the updates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (faces (N,), barycentrics (N, 3)) -> scores (N,)

NO_HIT = torch.iinfo(torch.int64).max
AREA_EPS = 1e-12  # grid units squared: triangles smaller than this (zero-area ones included) cover no cell
DEFAULT_BUDGET = 1 << 20  # candidate (triangle, cell) pairs tested per chunk


def cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z component of the 2D cross product of (..., 2) vectors."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def edge_barycentric(points: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentrics (N, 3) of points (N, 2) in triangles (N, 3, 2), and the triangles' signed areas (times 2).

    Weights are in corner order (weight ``i`` belongs to ``tri[:, i]``) and work for either winding. Where the area
    is exactly zero the weights are computed against an area of 1 instead (finite, meaningless): callers drop those
    triangles before they get here, and this only keeps NaNs out of code paths that compute before masking.
    """
    a, b, c = tri.unbind(-2)
    area = cross2(b - a, c - a)
    w0 = cross2(c - b, points - b)
    w1 = cross2(a - c, points - c)
    w2 = cross2(b - a, points - a)
    safe = torch.where(area == 0, torch.ones_like(area), area)
    return torch.stack([w0, w1, w2], -1) / safe[..., None], area


def cell_centres(flat_index: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """Grid-unit centres (N, 2) of cells given by flat index ``iy * width + ix``."""
    return torch.stack([flat_index % width, flat_index // width], -1).to(dtype) + 0.5


def _bounds(lo: torch.Tensor, hi: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First cell index and cell count whose centres ``i + 0.5`` lie in [lo, hi], clamped to [0, size)."""
    slack = 1e-9
    first = torch.ceil((lo - 0.5 - slack).clamp(-1.0, size)).clamp_min(0)
    last = torch.floor((hi - 0.5 + slack).clamp(-1.0, size)).clamp_max(size - 1)
    return first.long(), (last - first + 1).clamp_min(0).long()


def scan_triangles(tri: torch.Tensor, width: int, height: int, valid: torch.Tensor | None = None,
                   eps: float = 1e-7, budget: int = DEFAULT_BUDGET
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every (triangle, covered cell) pair, in chunks: yields (face ids (N,), flat cell ids (N,), barycentrics (N, 3)).

    ``tri`` (F, 3, 2) holds corners in grid units (use float64: coverage on shared edges relies on it); ``valid``
    (F,) drops triangles (e.g. behind the near plane). Zero-area triangles are always dropped.
    """
    _, area = edge_barycentric(tri[:, 0], tri)
    keep = area.abs() > AREA_EPS
    keep &= torch.isfinite(tri).all(-1).all(-1)
    if valid is not None:
        keep &= valid
    x0, nx = _bounds(tri[..., 0].amin(1), tri[..., 0].amax(1), width)
    y0, ny = _bounds(tri[..., 1].amin(1), tri[..., 1].amax(1), height)
    counts = nx * ny
    ids = torch.nonzero(keep & (counts > 0)).squeeze(1)
    if len(ids) == 0:
        return
    counts = counts[ids]
    start = torch.cumsum(counts, 0) - counts
    _, sizes = torch.unique_consecutive(torch.div(start, budget, rounding_mode="floor"), return_counts=True)
    for chunk in torch.split(ids, sizes.tolist()):
        n = nx[chunk] * ny[chunk]
        local = torch.repeat_interleave(torch.arange(len(chunk), device=tri.device), n)
        offset = torch.arange(len(local), device=tri.device) - (torch.cumsum(n, 0) - n)[local]
        width_of = nx[chunk][local]
        ix = x0[chunk][local] + offset % width_of
        iy = y0[chunk][local] + torch.div(offset, width_of, rounding_mode="floor")
        faces = chunk[local]
        cells = iy * width + ix
        bary, _ = edge_barycentric(cell_centres(cells, width, tri.dtype), tri[faces])
        inside = (bary >= -eps).all(-1)
        yield faces[inside], cells[inside], bary[inside]


def pack_keys(score: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering by ``score`` (>= 0, rounded to float32) then by face id: the scatter-min's payload."""
    bits = score.clamp_min(0).to(torch.float32).view(torch.int32).to(torch.int64)
    return (bits << 32) | face


def unpack_faces(keys: torch.Tensor) -> torch.Tensor:
    """Face ids of packed keys, -1 where no triangle wrote."""
    return torch.where(keys == NO_HIT, torch.full_like(keys, -1), keys & 0xFFFFFFFF)


def nearest_faces(tri: torch.Tensor, score_of: ScoreFn, width: int, height: int,
                  valid: torch.Tensor | None = None, eps: float = 1e-7, budget: int = DEFAULT_BUDGET
                  ) -> torch.Tensor:
    """Per cell, the covering face of lowest ``score_of(faces, bary)`` (ties: lowest face id); -1 where none.

    Returns a (height, width) long tensor.
    """
    keys = torch.full((width * height,), NO_HIT, dtype=torch.int64, device=tri.device)
    for faces, cells, bary in scan_triangles(tri, width, height, valid, eps, budget):
        keys.scatter_reduce_(0, cells, pack_keys(score_of(faces, bary), faces), reduce="amin")
    return unpack_faces(keys).reshape(height, width)
