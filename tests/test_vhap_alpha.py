"""VHAP's preprocessing of NeRSemble v2 (what GaussianAvatars trains on): alpha maps named
``alpha_maps/cam_{serial}_{idx:06d}.png`` at 25 fps, read for the 73 fps video frame FFmpeg's fps filter kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dataset_writers import SERIALS, write_v2
from PIL import Image

from harness.api.types import ViewRef
from harness.data.errors import DatasetError
from harness.data.nersemble_v2 import NersembleV2, vhap_frame, vhap_index
from harness.data.protocol import load_protocol
from harness.data.video import write_video
from harness.paths import protocols_dir

SEQUENCE = "EXP-1-head"


def test_the_index_mapping_is_ffmpegs_fps_filter_on_a_73_fps_video(tmp_path: Path) -> None:
    """VHAP runs ``ffmpeg -i cam.mp4 -vf fps=25``: push a real 73 fps MP4 through that filter and read which frame
    each 25 fps image holds (each frame is a distinct grey level)."""
    import av
    from av.filter import Graph

    count = 40
    video = tmp_path / "cam.mp4"
    write_video(video, [np.full((16, 16, 3), 6 * i, np.uint8) for i in range(count)], fps=73)
    kept = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        graph = Graph()
        source = graph.add_buffer(template=stream)
        chain = graph.add("fps", "fps=25")
        sink = graph.add("buffersink")
        source.link_to(chain)
        chain.link_to(sink)
        graph.configure()

        def drain() -> None:
            while True:
                try:
                    kept.append(round(int(graph.pull().to_ndarray(format="rgb24")[8, 8, 0]) / 6))
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        for frame in container.decode(stream):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    assert len(kept) >= 12
    assert kept == [vhap_frame(k) for k in range(len(kept))]
    assert [f for f in range(kept[-1] + 1) if vhap_index(f) is not None] == kept
    assert all(vhap_frame(vhap_index(f)) == f for f in kept)


def masks(width: int, height: int) -> dict[int, np.ndarray]:
    """A different box per VHAP index."""
    out = {}
    for index in range(3):
        mask = np.zeros((height, width), np.uint8)
        mask[40 + 30 * index:140 + 30 * index, 60:200] = 255
        out[index] = mask
    return out


@pytest.fixture
def vhap_folder(tmp_path: Path) -> tuple[Path, dict[int, np.ndarray]]:
    """A v2 participant (8 frames at 73 fps) after VHAP's preprocess_video.py: its 25 fps images and alpha maps
    next to the videos, named cam_{serial}_{idx:06d}; frames 1, 4, 7 are the ones kept."""
    write_v2(tmp_path, frames=8)
    boxes = masks(275, 401)
    sequence = tmp_path / "017" / "sequences" / SEQUENCE
    for serial in SERIALS:
        for index, mask in boxes.items():
            (sequence / "alpha_maps").mkdir(exist_ok=True)
            Image.fromarray(mask).save(sequence / "alpha_maps" / f"cam_{serial}_{index:06d}.png")
            Image.fromarray(np.full((401, 275, 3), 90, np.uint8)).save(sequence / "images" /
                                                                      f"cam_{serial}_{index:06d}.jpg")
    return tmp_path, boxes


def test_the_reader_uses_vhaps_alpha_for_the_frames_it_kept(vhap_folder) -> None:
    root, boxes = vhap_folder
    reader = NersembleV2.open(root)
    assert reader.frames("017", SEQUENCE) == list(range(8))  # VHAP's jpgs next to the videos change nothing
    for index, frame in ((0, 1), (1, 4), (2, 7)):
        view = reader.load_view(ViewRef("017", SEQUENCE, frame, SERIALS[1]))
        np.testing.assert_array_equal(view.alpha, boxes[index] / 255.0)
        assert view.alpha_note is None
    skipped = reader.load_view(ViewRef("017", SEQUENCE, 3, SERIALS[1]))
    assert skipped.alpha is None
    assert "VHAP's 25 fps export of camera 220700191 (3 alpha maps" in skipped.alpha_note
    assert "holds no frame 3: the nearest frames it holds are 1 and 4" in skipped.alpha_note
    path = reader.vhap_alpha_path(ViewRef("017", SEQUENCE, 4, SERIALS[1]))
    assert path is not None and path in reader.source_files(ViewRef("017", SEQUENCE, 4, SERIALS[1]))
    assert reader.vhap_alpha_path(ViewRef("017", SEQUENCE, 3, SERIALS[1])) is None


def test_check_counts_vhaps_maps_and_names_a_wrong_sized_one(vhap_folder) -> None:
    root, _ = vhap_folder
    inventory = NersembleV2.open(root).check()
    assert inventory.problems == []
    assert inventory.found["017"]["sequences"][SEQUENCE]["vhap_alpha_maps"] == 3 * len(SERIALS)
    bad = root / "017" / "sequences" / SEQUENCE / "alpha_maps" / f"cam_{SERIALS[0]}_000001.png"
    Image.fromarray(np.zeros((200, 137), np.uint8)).save(bad)
    assert f"alpha map {bad} is 137x200, the video is 275x401" in NersembleV2.open(root).check().problems
    with pytest.raises(DatasetError, match="is 137x200, the video is 275x401"):
        NersembleV2.open(root).load_view(ViewRef("017", SEQUENCE, 4, SERIALS[0]))


def test_the_v2_protocol_version_is_bumped_for_the_changed_pixels() -> None:
    protocol = load_protocol(protocols_dir() / "nersemble" / "v2-novel-view.yaml")
    assert protocol.version == 2 and "VHAP" in protocol.description
