"""UV and mesh rasterisation in torch, vectorised over triangles: the geometry the learned methods build on.

- ``uv_raster``: texel -> (face id, barycentric) of a UV layout, cached per (layout hash, resolution);
- ``mesh_raster``: pixel -> (face id, barycentric, depth), a z-buffer of a posed mesh into a camera;
- ``attributes``: vertex attributes into UV maps and images, UV maps read back at the mesh;
- ``splat``: image features splatted into UV space with bilinear weights, and a hole-filling pyramid;
- ``visibility``: depth and facing tests for vertices, texels and pixels.

Conventions: UV row 0 is at v near 1 (texel (row j, column i) centre at u = (i + 0.5) / R, v = 1 - (j + 0.5) / R);
barycentrics are in the corner order of ``faces`` / ``uv_faces``; depth is camera-space z, inf on background.
"""

from harness.geometry.attributes import (
    dilate_uv_map,
    interpolate,
    pixel_uv,
    sample_uv_map,
    sample_uv_map_at_vertices,
    uv_attribute_map,
    vertex_uv_corners,
)
from harness.geometry.mesh_raster import MeshRaster, camera_matrices, project, rasterize_mesh
from harness.geometry.splat import (
    UVPyramid,
    UVSplat,
    bilinear_texel_weights,
    splat_points,
    splat_pyramid,
    splat_to_uv,
)
from harness.geometry.uv_raster import (
    HasUVLayout,
    UVLayout,
    UVRaster,
    clear_uv_raster_cache,
    rasterize_uv,
    texel_uv,
    uv_layout_hash,
    uv_raster,
)
from harness.geometry.visibility import (
    depth_test,
    face_normals,
    facing,
    pixel_confidence,
    surface_normals,
    texel_visibility,
    vertex_normals,
    vertex_visibility,
)

__all__ = [
    "HasUVLayout", "MeshRaster", "UVLayout", "UVPyramid", "UVRaster", "UVSplat", "bilinear_texel_weights",
    "camera_matrices", "clear_uv_raster_cache", "depth_test", "dilate_uv_map", "face_normals", "facing",
    "interpolate", "pixel_confidence", "pixel_uv", "project", "rasterize_mesh", "rasterize_uv", "sample_uv_map",
    "sample_uv_map_at_vertices", "splat_points", "splat_pyramid", "splat_to_uv", "surface_normals",
    "texel_uv", "texel_visibility", "uv_attribute_map", "uv_layout_hash", "uv_raster", "vertex_normals",
    "vertex_uv_corners", "vertex_visibility",
]
