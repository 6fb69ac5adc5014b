"""Frames out of per-camera MP4 videos by seeking: jump to the key frame before the wanted frame, decode forward.

Frame ``t`` is the t-th frame in presentation order, counted from the stream's first timestamp at the stream's
average frame rate (NeRSemble's videos are constant-rate). Decoding stops at ``t``, so reading frame 500 of a
1,000-frame video decodes from the preceding key frame only, never the whole video.
"""

from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from threading import Lock
from typing import Any

import numpy as np

from harness.data.errors import DatasetError


class VideoReader:
    """One open video file. Not thread-safe; ``open_video`` hands out one per path from a small pool."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"missing video file {self.path}")
        try:
            self._container: Any = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError, OSError) as err:
            raise DatasetError(f"unreadable video file {self.path}: {err}") from None
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate or self._stream.time_base is None:
            raise DatasetError(f"video file {self.path} declares no frame rate")
        self.rate = Fraction(rate)
        self.time_base = Fraction(self._stream.time_base)
        self.start = self._stream.start_time or 0
        self.width = int(self._stream.codec_context.width)
        self.height = int(self._stream.codec_context.height)
        self.frames_declared = int(self._stream.frames or 0)
        self._position: int | None = None  # index of the last frame decoded, to read on without seeking
        self._highest = -1  # the highest frame index this reader has decoded (for error messages)
        self._decoder: Any = None

    def _index(self, pts: int | None) -> int:
        if pts is None:
            raise DatasetError(f"video file {self.path}: a frame without a timestamp")
        return round((pts - self.start) * self.time_base * self.rate)

    def _pts(self, index: int) -> int:
        return int(self.start + round(Fraction(index) / self.rate / self.time_base))

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as uint8 RGB (H, W, 3)."""
        import av

        if index < 0:
            raise DatasetError(f"video file {self.path}: frame {index} is negative")
        try:
            if self._position is None or not (self._position < index <= self._position + 8):
                self._container.seek(self._pts(index), stream=self._stream, backward=True, any_frame=False)
                self._decoder = self._container.decode(self._stream)
                last = -1
            else:  # reading on: the frame before is the last one decoded, even if nothing follows it
                last = self._position
            for frame in self._decoder:
                last = self._index(frame.pts)
                self._highest = max(self._highest, last)
                if last >= index:
                    self._position = last
                    if last != index:
                        raise DatasetError(f"video file {self.path}: frame {index} is missing (the stream jumps "
                                           f"to frame {last})")
                    return frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            self._position = None
            raise DatasetError(f"unreadable video file {self.path} at frame {index}: {err}") from None
        self._position = None
        last = max(last, self._highest)
        declared = f" of {self.frames_declared} declared" if self.frames_declared else ""
        decoded = f"last decodable frame {last}{declared}" if last >= 0 else f"no frame decodes{declared}"
        raise DatasetError(f"video file {self.path} ends before frame {index} ({decoded}; truncated?)")

    def decode_all(self) -> int:
        """Decode every frame from the start (``harness datasets check --deep``); returns how many decoded.

        Raises ``DatasetError`` naming the file and the frame after the last good one.
        """
        import av

        self._position = None
        decoded = 0
        try:
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
            for frame in self._container.decode(self._stream):
                frame.to_ndarray(format="rgb24")
                decoded += 1
        except av.error.FFmpegError as err:
            raise DatasetError(f"unreadable video file {self.path} at frame {decoded}: {err}") from None
        return decoded

    def count_frames(self) -> int:
        """Frames actually present, counted from the packets (no decoding)."""
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._position = None
        return sum(1 for packet in self._container.demux(self._stream) if packet.size > 0)

    def close(self) -> None:
        self._container.close()


class _Pool:
    """A few open videos, least recently used closed first (datasets have thousands of files)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._open: OrderedDict[Path, VideoReader] = OrderedDict()
        self._lock = Lock()

    def get(self, path: Path) -> VideoReader:
        with self._lock:
            reader = self._open.pop(path, None)
            if reader is None:
                reader = VideoReader(path)
            self._open[path] = reader
            while len(self._open) > self.size:
                self._open.popitem(last=False)[1].close()
            return reader

    def drop(self, path: Path) -> None:
        with self._lock:
            reader = self._open.pop(path, None)
            if reader is not None:
                reader.close()


_POOL = _Pool()


def read_video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of the video at ``path`` (uint8 RGB), raising ``DatasetError`` naming the file."""
    reader = _POOL.get(Path(path))
    try:
        return reader.read(index)
    except DatasetError:
        _POOL.drop(Path(path))
        raise


def video_size(path: Path) -> tuple[int, int]:
    """(width, height) from the stream header."""
    reader = _POOL.get(Path(path))
    return reader.width, reader.height


def write_video(path: Path, frames: list[np.ndarray], fps: float = 73.0, codec: str = "libx264",
                options: dict[str, str] | None = None, gop: int = 12) -> None:
    """Write uint8 RGB frames as an MP4 (used to make test data and the benchmark's videos)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p" if codec == "libx264" else "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"crf": "0", "preset": "ultrafast", "bf": "0", **(options or {})}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
