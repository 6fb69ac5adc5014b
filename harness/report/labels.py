"""What a page calls things: metric titles (PSNR, SSIM, LPIPS, CSIM, DreamSim), their units, variants and unit
kinds, and the numbered footnotes that carry the reason (and fix) of every metric a page cannot show.

Data files keep the lowercase ids (``psnr``); every human-facing label goes through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PAPER_METRICS = ("psnr", "ssim", "lpips", "csim", "dreamsim")  # the columns of paper-reported tables
UNITS = {"psnr": "dB"}
VARIANTS = {"masked": "masked", "full": "full frame", "against_photo": "against the input photo",
            "cross_view": "across rendered views"}
KINDS = {"novel_view": "novel view", "self_reenactment": "self-reenactment", "in_the_wild": "in the wild"}
REFERENCE_FREE_KINDS = frozenset({"in_the_wild"})  # units with no ground truth: scored against their input photo


def metric_title(name: str, specs: Mapping[str, Any]) -> str:
    """The metric's display name from its spec ("PSNR"), else the id as given."""
    spec = specs.get(name)
    return str(spec.title) if spec is not None else name


def metric_axis(name: str, specs: Mapping[str, Any], direction: str) -> str:
    unit = f" [{UNITS[name]}]" if name in UNITS else ""
    return f"{metric_title(name, specs)}{unit} ({direction} is better)"


def variant_label(variant: str) -> str:
    return VARIANTS.get(variant, variant)


def kind_label(kind: str) -> str:
    return KINDS.get(kind, kind.replace("_", " "))


@dataclass
class Footnotes:
    """Numbered notes of one page: the same text gets the same number; ``mark`` returns it."""

    notes: list[str] = field(default_factory=list)

    def mark(self, text: str) -> int:
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1


def missing_note(name: str, reason: str, specs: Mapping[str, Any]) -> str:
    """The footnote of a metric that could not run: its title, then the reason, which ends with the fix."""
    title = metric_title(name, specs)
    return reason if reason.startswith(title) else f"{title}: {reason}"  # "LPIPS-alex: missing ..." stays
