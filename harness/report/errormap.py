"""Error maps: per-pixel mean absolute RGB error drawn with a perceptual colour map, and the scale bar that says
what each colour means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ERROR_MAX = 0.25  # the colour map spans 0 .. 0.25 mean absolute error (64 of 255 levels); larger errors saturate
COLOUR_MAP = "inferno"  # black (no error) -> purple -> orange -> pale yellow (ERROR_MAX or more)
TICKS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)


def _lookup(fractions: np.ndarray) -> np.ndarray:
    import matplotlib

    return np.asarray(matplotlib.colormaps[COLOUR_MAP](np.clip(fractions, 0.0, 1.0)))[..., :3]


def error_map(prediction: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """(H, W, 3) colours of the per-pixel mean absolute error over RGB of two (H, W, 3) images in [0, 1]."""
    error = np.abs(prediction.astype(np.float64) - ground_truth.astype(np.float64)).mean(-1)
    return _lookup(error / ERROR_MAX).astype(np.float32)


@dataclass(frozen=True)
class ScaleBar:
    gradient: str  # a CSS linear-gradient of the colour map
    ticks: tuple[tuple[float, str], ...]  # (position in percent, label)
    caption: str


def scale_bar(stops: int = 11) -> ScaleBar:
    colours = _lookup(np.linspace(0.0, 1.0, stops))
    css = ", ".join(f"rgb({r * 255:.0f}, {g * 255:.0f}, {b * 255:.0f}) {100 * i / (stops - 1):.0f}%"
                    for i, (r, g, b) in enumerate(colours))
    ticks = tuple((100 * t / ERROR_MAX, f"{t:g}" + ("+" if t == ERROR_MAX else "")) for t in TICKS)
    return ScaleBar(f"linear-gradient(to right, {css})", ticks,
                    f"per-pixel mean absolute error over R, G, B (intensities in [0, 1]; {ERROR_MAX:g} = "
                    f"{ERROR_MAX * 255:.0f} of 255 levels; larger errors show as the last colour)")
