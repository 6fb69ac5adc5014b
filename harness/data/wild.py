"""In-the-wild photo sets: a folder of portraits, each cropped to a square around the head.

Layout: ``{root}/*.jpg|*.jpeg|*.png|*.webp`` (one subject per photo: subject = file stem, photo = ``photo``) and,
optionally, ``{root}/boxes.json`` = ``{"file name": [x0, y0, x1, y1]}``, a face box in pixels per image.

The crop follows field practice: a square of side 1.65 x sqrt(w x h) of the face box, centred on the box, padded
with white where it leaves the photo. The face box is, in order: the boxes file's entry; the largest face SCRFD
(insightface ``buffalo_l`` det_10g, the CSIM weights) finds, when those weights are in the cache; otherwise the
documented fallback, the centred square of the photo's shorter side. How each crop was found is recorded with the
cached frame. Photos have no calibration and no alpha: in-the-wild protocols give the photo the orbit's frontal
camera, and scoring is reference-free (CSIM and DreamSim against the photo, CSIM across rendered views).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.api.method import MissingWeightsError
from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import Inventory, check_image_file, require_folder
from harness.data.errors import DatasetError
from harness.data.preprocess import CropBox, crop_array
from harness.imageio import ImageReadError, read_image

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BOXES_FILE = "boxes.json"
PHOTO = "photo"
CROP_SCALE = 1.65


def face_detector() -> Any | None:
    """SCRFD from the CSIM weights when they are in the cache, else None (the fallback crop is used)."""
    from harness.scoring.sources import ARCFACE, INSIGHTFACE_DIR
    from harness.weights import require

    try:
        root = require(ARCFACE, "in-the-wild face crops")
    except MissingWeightsError:
        return None
    from insightface.model_zoo import model_zoo

    detector = model_zoo.get_model(str(root / INSIGHTFACE_DIR / "det_10g.onnx"), providers=["CPUExecutionProvider"])
    detector.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    return detector


def head_square(face: tuple[float, float, float, float]) -> CropBox:
    x0, y0, x1, y1 = face
    side = int(np.floor(CROP_SCALE * np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0)) + 0.5))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return CropBox(int(np.floor(cx - side / 2 + 0.5)), int(np.floor(cy - side / 2 + 0.5)), side, side)


class WildPhotos:
    needs_cache = True  # face detection per photo is worth keeping
    layout = "in-the-wild photo folder"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._detector = lru_cache(maxsize=1)(face_detector)
        self._boxes = lru_cache(maxsize=1)(self._read_boxes)
        self._files = lru_cache(maxsize=1)(self._list_files)  # read once per reader, not once per view

    @classmethod
    def open(cls, root: Path | None) -> WildPhotos:
        return cls(require_folder(root, "in-the-wild", "a folder of jpg/png/webp portraits"))

    @property
    def crop_identity(self) -> str:
        """Part of the frame cache's key: crops change when the detector appears."""
        return f"face-detector={'det_10g' if self._detector() is not None else 'none'}"

    def _list_files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(self.root.iterdir()):
            if path.suffix.lower() in PHOTO_SUFFIXES and path.is_file():
                if path.stem in files:
                    raise DatasetError(f"{self.root}: two photos share the name {path.stem!r} "
                                       f"({files[path.stem].name}, {path.name})")
                files[path.stem] = path
        return files

    def subjects(self) -> list[str]:
        files = self._files()
        if not files:
            raise DatasetError(f"{self.root}: no photos (*.jpg, *.jpeg, *.png, *.webp)")
        return sorted(files)

    def photos(self, subject: str) -> list[str]:
        return [PHOTO]

    def photo_path(self, subject: str) -> Path:
        files = self._files()
        if subject not in files:
            raise DatasetError(f"missing photo {self.root / subject}.* (jpg, jpeg, png or webp)")
        return files[subject]

    def source_files(self, ref: ViewRef) -> list[Path]:
        return [self.photo_path(ref.subject), self.root / BOXES_FILE]

    def _read_boxes(self) -> dict[str, list[float]]:
        path = self.root / BOXES_FILE
        if not path.is_file():
            return {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return {str(k): [float(v) for v in box] for k, box in raw.items() if len(box) == 4}
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as err:
            raise DatasetError(f"malformed boxes file {path}: {err}") from None

    def face_box(self, path: Path, image: np.ndarray) -> tuple[tuple[float, float, float, float] | None, str]:
        boxes = self._boxes()
        if path.name in boxes:
            x0, y0, x1, y1 = boxes[path.name]
            return (x0, y0, x1, y1), f"boxes file {self.root / BOXES_FILE}"
        detector = self._detector()
        if detector is None:
            return None, "fallback: centre square (no face detector weights; run `harness weights fetch arcface`)"
        bgr = np.ascontiguousarray((image[..., ::-1] * 255.0 + 0.5).astype(np.uint8))
        found, _ = detector.detect(bgr, max_num=1)
        if found is None or len(found) == 0:
            return None, "fallback: centre square (no face detected)"
        x0, y0, x1, y1 = (float(v) for v in found[0][:4])
        return (x0, y0, x1, y1), "face detector (SCRFD det_10g)"

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera:
        raise DatasetError(f"in-the-wild photo {subject} has no calibrated camera; the protocol's orbit defines it")

    def load_view(self, ref: ViewRef) -> View:
        path = self.photo_path(ref.subject)
        try:
            image, _ = read_image(path)
        except ImageReadError as err:
            raise DatasetError(str(err)) from None
        height, width = image.shape[:2]
        face, how = self.face_box(path, image)
        if face is None:
            side = min(width, height)
            box = CropBox((width - side) // 2, (height - side) // 2, side, side)
        else:
            box = head_square(face)
        crop = crop_array(image, box, np.ones(3, dtype=np.float32))
        nominal = Camera(np.eye(4), np.array([[box.width * 2.0, 0, box.width / 2], [0, box.width * 2.0,
                                                                                     box.height / 2], [0, 0, 1]]),
                         box.width, box.height)
        return View(ref=ref, image=np.ascontiguousarray(crop), camera=nominal, alpha=None,
                    alpha_note=f"in-the-wild photo, no alpha (crop: {how})")

    def check(self, subjects: list[str] | None = None, deep: bool = False) -> Inventory:
        """Every photo whole (header, PNG end; decoded with ``deep``), every box on a photo inside it."""
        inventory = Inventory(self.root, self.layout)
        try:
            files = self._files()
        except DatasetError as err:
            inventory.problems.append(str(err))
            return inventory
        if not files:
            inventory.problems.append(f"{self.root}: no photos (*.jpg, *.jpeg, *.png, *.webp)")
        try:
            boxes = self._boxes()
        except DatasetError as err:
            inventory.problems.append(str(err))
            boxes = {}
        inventory.problems += [f"{self.root / BOXES_FILE}: entry {name!r} names no photo in the folder"
                               for name in sorted(boxes) if name not in {p.name for p in files.values()}]
        for stem in subjects or sorted(files):
            if stem not in files:
                inventory.problems.append(f"missing photo {self.root / stem}.*")
                continue
            size, problem = check_image_file(files[stem], deep, "photo")
            if problem:
                inventory.problems.append(problem)
            box = boxes.get(files[stem].name)
            if size is not None and box is not None:
                x0, y0, x1, y1 = box
                if not (x0 < x1 and y0 < y1 and x1 > 0 and y1 > 0 and x0 < size[0] and y0 < size[1]):
                    inventory.problems.append(f"{self.root / BOXES_FILE}: the box {box} of {files[stem].name} is "
                                              f"empty or outside the {size[0]}x{size[1]} photo")
        inventory.found["photos"] = len(files)
        inventory.found["boxes"] = len(boxes)
        inventory.found["face_detector"] = self._detector() is not None
        return inventory
