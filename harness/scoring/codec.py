"""The video round trip of a benchmark submission: RGB frames -> MP4 -> RGB frames, as the NeRSemble server sees them.

The NeRSemble benchmark server scores submissions of one MP4 per camera and sequence, written by its toolkit with
``mediapy.write_video(frames, crf=14, fps=...)``: FFmpeg's H.264 encoder (libx264, its default preset), 8-bit
``yuv420p`` (the toolkit names neither, these are mediapy's and FFmpeg's defaults), RGB converted by swscale
(BT.601 matrix, limited range, bicubic chroma filter, FFmpeg's command-line default) and decoded back to ``rgb24``
by PyAV. This module does the same through PyAV, which bundles FFmpeg, so local scores can be taken on the frames
the server would score.

``yuv420p`` needs an even width and height; an odd-sized frame is padded by repeating its last column (row) and
the decoded frame cropped back, so every scored pixel is one that was coded (the padding shares chroma samples
with the last column or row only).

A protocol asks for the round trip with::

    scoring:
      codec_roundtrip: {codec: h264, crf: 14, pix_fmt: yuv420p, fps: 73}   # every field optional (defaults)

Every stage runs on one thread (x264, swscale, the decoder), and each frame carries its timestamp. Even so, x264's
output for the same frames was seen to differ now and then between encodes while other processes loaded the CPU
(a few in a hundred, 0.01 dB PSNR apart in the case measured), so scores after the round trip repeat to about
0.01 dB, not bitwise.

``fps`` is the frame rate written into the video: 73 for the NVS task, 24.3 for the mono-avatar task. It matters:
x264's rate control depends on it (the same frames at 73 and 24.3 fps decode up to 19/255 apart, measured).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.errors import ProtocolError

SUBMISSION_CODEC = "h264"  # FFmpeg's name; encoded by libx264
SUBMISSION_CRF = 14  # the benchmark toolkit's setting
SUBMISSION_PIX_FMT = "yuv420p"  # mediapy's default for 8-bit RGB frames
RGB_TO_YUV_FILTER = "BICUBIC"  # swscale's filter for the RGB -> YUV conversion, as the ffmpeg command line uses
NVS_FPS = Fraction(73)  # the NVS task's videos
MONO_AVATAR_FPS = Fraction(243, 10)  # the mono-avatar task's videos (24.3 fps)
CODECS = {"h264": "libx264"}
CODEC_TITLES = {"h264": "H.264"}
PIX_FMTS = ("yuv420p", "yuv444p")


class CodecError(RuntimeError):
    """A round trip that FFmpeg refused (unknown encoder, failed encode or decode); the message says which."""


@dataclass(frozen=True)
class CodecRoundTrip:
    codec: str = SUBMISSION_CODEC
    crf: int = SUBMISSION_CRF
    pix_fmt: str = SUBMISSION_PIX_FMT
    fps: float = float(NVS_FPS)

    @property
    def rate(self) -> Fraction:
        return Fraction(str(self.fps)).limit_denominator(1000)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{CODEC_TITLES[self.codec]} crf {self.crf} {self.pix_fmt} at {self.fps:g} fps"

    def describe(self) -> str:
        return (f"scores are after an {self.label} MP4 round trip of the predictions (one video per camera and unit, "
                "as the NeRSemble benchmark server scores submissions)")


def parse_codec_roundtrip(raw: Any, where: str) -> CodecRoundTrip | None:
    """The ``codec_roundtrip`` setting (None, ``true``, or a mapping of codec, crf, pix_fmt)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return CodecRoundTrip()
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: codec_roundtrip must be true or a mapping of codec, crf, pix_fmt, fps")
    unknown = sorted(set(raw) - {"codec", "crf", "pix_fmt", "fps"})
    if unknown:
        raise ProtocolError(f"{where}: unknown codec_roundtrip field(s) {unknown}")
    fps = raw.get("fps", float(NVS_FPS))
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not 0 < fps <= 1000:
        raise ProtocolError(f"{where}: codec_roundtrip.fps must be a number in (0, 1000]")
    setting = CodecRoundTrip(codec=str(raw.get("codec", SUBMISSION_CODEC)),
                             crf=raw.get("crf", SUBMISSION_CRF), pix_fmt=str(raw.get("pix_fmt", SUBMISSION_PIX_FMT)),
                             fps=float(fps))
    if setting.codec not in CODECS:
        raise ProtocolError(f"{where}: codec_roundtrip.codec is {setting.codec!r}; expected one of {list(CODECS)}")
    if not isinstance(setting.crf, int) or isinstance(setting.crf, bool) or not 0 <= setting.crf <= 51:
        raise ProtocolError(f"{where}: codec_roundtrip.crf must be an integer in [0, 51]")
    if setting.pix_fmt not in PIX_FMTS:
        raise ProtocolError(f"{where}: codec_roundtrip.pix_fmt is {setting.pix_fmt!r}; expected one of "
                            f"{list(PIX_FMTS)}")
    return setting


def protocol_codec(protocol_raw: dict[str, Any], where: str = "protocol") -> CodecRoundTrip | None:
    """The round trip a protocol's ``scoring`` section asks for, or None."""
    scoring = protocol_raw.get("scoring")
    if scoring is None:
        return None
    if not isinstance(scoring, dict) or set(scoring) - {"codec_roundtrip"}:
        raise ProtocolError(f"{where}: 'scoring' must be a mapping with the one field codec_roundtrip")
    return parse_codec_roundtrip(scoring.get("codec_roundtrip"), f"{where}: scoring")


def with_codec(protocol_raw: dict[str, Any], setting: CodecRoundTrip) -> dict[str, Any]:
    """A copy of a protocol's content whose ``scoring`` section asks for ``setting``."""
    return {**protocol_raw, "scoring": {**(protocol_raw.get("scoring") or {}), "codec_roundtrip": setting.as_dict()}}


def recorded_codec(run: dict[str, Any]) -> CodecRoundTrip | None:
    """The round trip a run's latest scores were taken after (``run.json``: ``scoring`` then the protocol)."""
    recorded = (run.get("scoring") or {}).get("codec_roundtrip")
    if recorded is not None:
        return parse_codec_roundtrip(recorded, "run.json: scoring")
    return protocol_codec(run.get("protocol_content") or {}, "run.json: protocol_content")


def _even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def encode_mp4(frames: Iterable[np.ndarray], fps: Fraction, setting: CodecRoundTrip,
               path: Path | None = None, threads: int = 1) -> bytes:
    """uint8 RGB frames (H, W, 3), all one size, as one MP4 (odd sizes padded to even, see above): written to
    ``path`` frame by frame (then b"" is returned), else returned as bytes. A frame of another size than the first
    is refused."""
    import av

    buffer = io.BytesIO()
    count, size = 0, None
    try:
        with av.open(str(path) if path is not None else buffer, mode="w", format="mp4") as container:
            stream = None
            for array in frames:
                if size is None:
                    size = array.shape[:2]
                    stream = container.add_stream(CODECS[setting.codec], rate=fps)
                    stream.width, stream.height = size[1] + size[1] % 2, size[0] + size[0] % 2
                    stream.pix_fmt = setting.pix_fmt
                    stream.codec_context.thread_count = threads
                    stream.options = {"crf": str(setting.crf), "threads": str(threads)}
                elif array.shape[:2] != size:
                    raise CodecError(f"frame {count} is {array.shape[1]}x{array.shape[0]}, the video "
                                     f"{size[1]}x{size[0]}")
                frame = av.VideoFrame.from_ndarray(_even(np.ascontiguousarray(array, dtype=np.uint8)),
                                                   format="rgb24").reformat(
                    format=setting.pix_fmt, interpolation=RGB_TO_YUV_FILTER, threads=1)
                frame.pts, frame.time_base = count, 1 / fps  # x264's rate control reads the timestamps
                for packet in stream.encode(frame):  # type: ignore[union-attr]
                    container.mux(packet)
                count += 1
            if stream is None:
                raise CodecError("no frames to encode")
            for packet in stream.encode():
                container.mux(packet)
    except (av.error.FFmpegError, ValueError) as err:
        where = f"{size[1]}x{size[0]} " if size else ""
        raise CodecError(f"encoding {where}frames as {setting.label} failed at frame {count}: {err}") from None
    return buffer.getvalue()


def decode_mp4(data: bytes | io.BufferedIOBase) -> list[np.ndarray]:
    """Every frame of an MP4 (bytes or a binary file) as uint8 RGB, in presentation order."""
    import av

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with av.open(source, mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_count = 1
            return [frame.reformat(format="rgb24", threads=1).to_ndarray().copy()  # not a view of the frame
                    for frame in container.decode(stream)]
    except av.error.FFmpegError as err:
        raise CodecError(f"decoding the video failed: {err}") from None


def round_trip(frames: Sequence[np.ndarray], setting: CodecRoundTrip) -> list[np.ndarray]:
    """Float RGB frames in [0, 1] (one camera, in frame order) after encoding as one MP4 and decoding, as float32.

    Frames are quantised to 8 bits first (the submission's input), exactly as predictions are written as PNG.
    """
    from harness.imageio import to_uint8

    height, width = frames[0].shape[:2]
    decoded = decode_mp4(encode_mp4([to_uint8(f[..., :3]) for f in frames], setting.rate, setting))
    if len(decoded) != len(frames):
        raise CodecError(f"the round trip of {len(frames)} frame(s) decoded {len(decoded)}")
    return [d[:height, :width].astype(np.float32) / 255.0 for d in decoded]


def round_trip_views(predictions: dict[Any, tuple[np.ndarray, np.ndarray | None]],
                     background: Sequence[float], setting: CodecRoundTrip) -> dict[Any, np.ndarray]:
    """One unit's predictions ({ViewRef: (rgb, alpha or None)}) as a submission would carry them, round-tripped.

    Each camera's frames of one sequence (and size) form one video, in frame order. An RGBA prediction is
    composited over ``background`` first, since a submission holds RGB frames only; the result is RGB.
    """
    bg = np.asarray(background, dtype=np.float32)
    groups: dict[tuple, list[Any]] = {}
    for ref, (rgb, _) in predictions.items():
        groups.setdefault((ref.subject, ref.sequence, ref.camera, rgb.shape), []).append(ref)
    out: dict[Any, np.ndarray] = {}
    for refs in groups.values():
        refs.sort(key=lambda r: r.frame)
        frames = []
        for ref in refs:
            rgb, alpha = predictions[ref]
            frames.append(rgb if alpha is None else rgb * alpha[..., None] + bg * (1.0 - alpha[..., None]))
        out.update(zip(refs, round_trip(frames, setting), strict=True))
    return out



def protocol_file_with_codec(spec: Any, name_or_path: str | None, folder: Path, setting: CodecRoundTrip) -> Path:
    """The protocol ``name_or_path`` of dataset ``spec`` with the round trip added, written as a file under
    ``folder`` (named by its content, so the same request finds the same file), for ``harness run
    --codec-roundtrip``: the protocol's content, and so the run's identity and ``run.json``, carry the setting."""
    import yaml

    from harness.data.resolve import resolve_protocol
    from harness.jsonio import stable_hash

    protocol = resolve_protocol(spec, name_or_path)
    raw = with_codec(protocol.raw, setting)
    path = Path(folder) / f"{spec.name}.{protocol.name}.codec-{stable_hash(raw, 10)}.yaml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path
