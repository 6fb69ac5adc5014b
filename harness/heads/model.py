"""The head-model interface shared by FLAME and the open template, and its linear blend skinning.

A head model is plain arrays (FLAME's own structure): a neutral mesh, identity and expression blendshapes,
optional pose correctives, a joint regressor with a kinematic tree and skinning weights, a UV layout, landmarks
embedded in faces, and named vertex regions. ``deform`` poses it with ``HeadParams``.

Joints follow FLAME's order: root, neck, jaw, left eye, right eye (parents -1, 0, 1, 1, 1).

Head parameters follow NeRSemble's FLAME tracking: the articulated pose (neck, jaw, eyes; axis-angle) is applied by
skinning with a zero root rotation, then the model-to-world similarity ``x_world = scale * R(rotation) x + t``
with ``R`` built from intrinsic Euler angles XYZ (``R = Rx @ Ry @ Rz``), as the benchmark toolkit does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

JOINT_NAMES = ("root", "neck", "jaw", "eye_l", "eye_r")
PARENTS = (-1, 0, 1, 1, 1)


@dataclass(frozen=True)
class HeadModel:
    name: str
    v_template: np.ndarray  # (V, 3) metres
    faces: np.ndarray  # (F, 3) int
    shapedirs: np.ndarray  # (V, 3, S)
    exprdirs: np.ndarray  # (V, 3, E)
    J_regressor: np.ndarray  # (J, V) dense
    lbs_weights: np.ndarray  # (V, J)
    uv_coords: np.ndarray  # (Vt, 2) in [0, 1]; empty when the model comes without a UV layout
    uv_faces: np.ndarray  # (F, 3) indices into uv_coords, or (0, 3)
    landmark_faces: np.ndarray  # (L,)
    landmark_bary: np.ndarray  # (L, 3)
    landmark_names: tuple[str, ...] = ()
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    posedirs: np.ndarray | None = None  # (P, V * 3), P = 9 * (J - 1), FLAME's pose correctives
    parents: tuple[int, ...] = PARENTS

    def __post_init__(self) -> None:
        v = len(self.v_template)
        j = len(self.parents)
        checks = {
            "v_template": (self.v_template.shape, (v, 3)),
            "shapedirs": (self.shapedirs.shape[:2], (v, 3)),
            "exprdirs": (self.exprdirs.shape[:2], (v, 3)),
            "J_regressor": (self.J_regressor.shape, (j, v)),
            "lbs_weights": (self.lbs_weights.shape, (v, j)),
            "uv_faces": (self.uv_faces.shape, self.faces.shape if len(self.uv_faces) else (0, 3)),
            "landmark_bary": (self.landmark_bary.shape, (len(self.landmark_faces), 3)),
        }
        for name, (got, expected) in checks.items():
            if tuple(got) != tuple(expected):
                raise ValueError(f"head model {self.name!r}: {name} has shape {tuple(got)}, expected {expected}")
        if self.posedirs is not None and self.posedirs.shape != (9 * (j - 1), v * 3):
            raise ValueError(f"head model {self.name!r}: posedirs has shape {self.posedirs.shape}, "
                             f"expected {(9 * (j - 1), v * 3)}")

    @property
    def num_shape(self) -> int:
        return self.shapedirs.shape[2]

    @property
    def num_expression(self) -> int:
        return self.exprdirs.shape[2]

    def face_regions(self) -> np.ndarray:
        """Region name of each face (the region of its first vertex; "" where none), as a (F,) string array."""
        label = np.full(len(self.v_template), "", dtype=object)
        for name, vertices in self.regions.items():
            label[vertices] = name
        return label[self.faces[:, 0]].astype(str)

    def params(self, **values: Any) -> HeadParams:
        """Neutral parameters sized for this model, with ``values`` filled in (shorter vectors are zero-padded)."""
        return HeadParams.neutral(self.num_shape, self.num_expression).replace(**values)


@dataclass(frozen=True)
class HeadParams:
    shape: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))  # Euler XYZ, radians
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale: float = 1.0
    jaw: np.ndarray = field(default_factory=lambda: np.zeros(3))  # axis-angle
    neck: np.ndarray = field(default_factory=lambda: np.zeros(3))
    eyes: np.ndarray = field(default_factory=lambda: np.zeros(6))  # left then right, axis-angle

    @classmethod
    def neutral(cls, num_shape: int, num_expression: int) -> HeadParams:
        return cls(np.zeros(num_shape), np.zeros(num_expression))

    def replace(self, **values: Any) -> HeadParams:
        fields = self.as_arrays()
        for key, value in values.items():
            if key not in fields:
                raise ValueError(f"unknown head parameter {key!r}; known: {', '.join(fields)}")
            if key == "scale":
                fields[key] = float(np.asarray(value).reshape(-1)[0])
                continue
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            size = len(fields[key])
            if len(arr) > size:
                if np.any(arr[size:] != 0):
                    raise ValueError(f"head parameter {key!r} has {len(arr)} values, this model takes {size}")
                arr = arr[:size]
            fields[key] = np.concatenate([arr, np.zeros(size - len(arr))])
        return HeadParams(**fields)

    def as_arrays(self) -> dict[str, Any]:
        return {"shape": np.asarray(self.shape, np.float64), "expression": np.asarray(self.expression, np.float64),
                "rotation": np.asarray(self.rotation, np.float64),
                "translation": np.asarray(self.translation, np.float64), "scale": float(self.scale),
                "jaw": np.asarray(self.jaw, np.float64), "neck": np.asarray(self.neck, np.float64),
                "eyes": np.asarray(self.eyes, np.float64)}

    def to_dict(self) -> dict[str, Any]:
        rounded = lambda v: v if isinstance(v, float) else [round(float(x), 7) for x in v]  # noqa: E731
        return {k: rounded(v) for k, v in self.as_arrays().items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], model: HeadModel) -> HeadParams:
        values = {k: v for k, v in raw.items() if k in ("shape", "expression", "rotation", "translation", "scale",
                                                         "jaw", "neck", "eyes")}
        return model.params(**values)


def euler_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Intrinsic XYZ Euler angles (..., 3) to rotation matrices: ``Rx(a) @ Ry(b) @ Rz(c)``."""
    a, b, c = angles.unbind(-1)
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()], -1)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()], -1)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one], -1)
    shape = (*angles.shape[:-1], 3, 3)
    return rx.reshape(shape) @ ry.reshape(shape) @ rz.reshape(shape)


def axis_angle_to_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula for (..., 3) axis-angle vectors (exact identity at zero)."""
    angle = vectors.norm(dim=-1, keepdim=True)
    axis = vectors / angle.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*vectors.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=vectors.dtype).expand_as(cross)
    s, c = angle.sin()[..., None], angle.cos()[..., None]
    return eye + s * cross + (1 - c) * (cross @ cross)


@dataclass
class DeformedHead:
    vertices: torch.Tensor  # (V, 3) world
    joints: torch.Tensor  # (J, 3) world
    landmarks: torch.Tensor  # (L, 3) world
    joint_transforms: torch.Tensor  # (J, 4, 4) model space, rest -> posed


def _tensor(x: Any, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def deform(model: HeadModel, params: HeadParams, dtype: torch.dtype = torch.float32) -> DeformedHead:
    """Shape, expression, pose correctives, linear blend skinning, then the model-to-world similarity."""
    t = lambda x: _tensor(x, dtype)  # noqa: E731
    v_shaped = t(model.v_template) + t(model.shapedirs) @ t(params.shape) + t(model.exprdirs) @ t(params.expression)
    joints = t(model.J_regressor) @ v_shaped
    pose = torch.stack([torch.zeros(3, dtype=dtype), t(params.neck), t(params.jaw), t(params.eyes[:3]),
                        t(params.eyes[3:])])
    rots = axis_angle_to_matrix(pose)
    v_posed = v_shaped
    if model.posedirs is not None:
        pose_feature = (rots[1:] - torch.eye(3, dtype=dtype)).reshape(-1)
        v_posed = v_shaped + (pose_feature @ t(model.posedirs)).reshape(-1, 3)
    transforms = _chain(rots, joints, model.parents)
    weights = t(model.lbs_weights)
    blended = torch.einsum("vj,jab->vab", weights, transforms)
    skinned = (blended[:, :3, :3] @ v_posed[:, :, None])[..., 0] + blended[:, :3, 3]
    posed_joints = (transforms[:, :3, :3] @ joints[:, :, None])[..., 0] + transforms[:, :3, 3]
    world_rot = euler_xyz_to_matrix(t(params.rotation)) * float(params.scale)
    to_world = lambda x: x @ world_rot.T + t(params.translation)  # noqa: E731
    vertices = to_world(skinned)
    return DeformedHead(vertices, to_world(posed_joints), to_world(landmarks_from(model, skinned)), transforms)


def _chain(rots: torch.Tensor, joints: torch.Tensor, parents: tuple[int, ...]) -> torch.Tensor:
    """Per-joint rest->posed transforms (J, 4, 4) along the kinematic tree."""
    dtype = rots.dtype
    world: list[torch.Tensor] = []
    for j, parent in enumerate(parents):
        local = torch.eye(4, dtype=dtype)
        local = torch.cat([torch.cat([rots[j], (joints[j] - (joints[parent] if parent >= 0 else 0))[:, None]], 1),
                           local[3:]], 0)
        world.append(local if parent < 0 else world[parent] @ local)
    stacked = torch.stack(world)
    # Remove the rest-pose joint location so the transform maps rest-pose points to posed points.
    offset = (stacked[:, :3, :3] @ joints[:, :, None])[..., 0]
    stacked = stacked.clone()
    stacked[:, :3, 3] = stacked[:, :3, 3] - offset
    return stacked


def surface_points(vertices: torch.Tensor, faces: Any, face_ids: Any, bary: Any) -> torch.Tensor:
    """Points given by (face, barycentric coordinates) on a mesh with these vertex positions."""
    corners = vertices[torch.as_tensor(np.asarray(faces))[torch.as_tensor(np.asarray(face_ids))]]
    return (corners * torch.as_tensor(np.asarray(bary), dtype=vertices.dtype)[:, :, None]).sum(1)


def landmarks_from(model: HeadModel, vertices: torch.Tensor) -> torch.Tensor:
    return surface_points(vertices, model.faces, model.landmark_faces, model.landmark_bary)
