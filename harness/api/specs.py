"""Plugin specs: plain data describing a method, dataset, metric or executor.

A spec names its implementation with a lazy ``"module:attribute"`` target, so listing what is registered imports
nothing heavy (no torch); the target is imported only when the thing is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal


def load_target(target: str) -> Any:
    """Import ``"package.module:Attribute"`` and return the attribute."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"target {target!r} is not of the form 'module:Attribute'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError as err:
        raise ImportError(f"module {module_name!r} has no attribute {attribute!r} (target {target!r})") from err


@dataclass(frozen=True)
class Capabilities:
    """What a method can do; the runner refuses units a method cannot handle."""

    inputs: Literal["one", "few"] = "one"
    animatable: bool = False
    full_head: bool = False
    needs_tracking: bool = False  # head-model parameters per frame (NeRSemble's FLAME tracking, the demo's)
    # A reference floor (e.g. nearest-input) answers every unit, ignoring what it cannot use (the driving
    # expression, extra sources); the runner skips no unit for it. A real method leaves this False and gets only
    # the units its capabilities cover: reenactment needs ``animatable``, several sources need ``inputs="few"``.
    floor_baseline: bool = False


@dataclass(frozen=True)
class MethodSpec:
    name: str
    target: str
    display_name: str = ""
    description: str = ""
    version: str = "1"
    paper: str = ""
    paper_url: str = ""
    licence: str = ""
    status: Literal["reference", "reimplementation", "official", "experimental"] = "experimental"
    capabilities: Capabilities = field(default_factory=Capabilities)
    default_config: dict[str, Any] = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    training_data: tuple[str, ...] = ()  # datasets whose subjects the method was trained on (flagged on boards)

    @property
    def title(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: the adapter that reads its on-disk layout and the protocols defined on it.

    ``protocols`` maps a protocol name to the path of its versioned protocol file.
    """

    name: str
    target: str
    display_name: str = ""
    description: str = ""
    protocols: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)  # training splits: name -> split file
    default_protocol: str = ""
    root_env: str = ""
    obtain: str = ""
    synthetic_subjects: bool = False  # True only for procedural heads: no real person is in the data
    default_root: str = ""  # where the dataset lives by default, under $HARNESS_HOME (listing imports no reader)

    @property
    def title(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class MetricSpec:
    """A per-image metric. ``kind='pair'`` compares a prediction with its ground truth."""

    name: str
    target: str
    direction: Literal["higher", "lower"]
    display_name: str = ""
    value_range: tuple[float, float] = (float("-inf"), float("inf"))
    settings: str = ""
    kind: Literal["pair", "reference_free"] = "pair"
    weights: tuple[str, ...] = ()
    default: bool = True

    @property
    def title(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class WeightFile:
    """One file of a weight source, at ``relpath`` under the weights cache.

    ``sha256`` is the full checksum when it is known; ``sha256_prefix`` is the leading hex digits some publishers
    put in the file name (torchvision's convention). With neither, the checksum is recorded at the first verified
    fetch and checked from then on.
    """

    relpath: str
    sha256: str | None = None
    sha256_prefix: str | None = None


@dataclass(frozen=True)
class WeightsSpec:
    """Where a set of weight files comes from and where it lives in the cache (``$HARNESS_HOME/weights``).

    ``archive='file'``: ``url`` is the single file ``files[0]``. ``archive='zip'``: ``url`` is a zip whose members
    are found by the tail of each expected ``relpath`` below ``extract_to``; the whole folder around them is
    extracted (``strip`` leading path components are dropped first).
    """

    name: str
    url: str
    files: tuple[WeightFile, ...]
    description: str = ""
    archive: Literal["file", "zip"] = "file"
    extract_to: str = ""
    archive_sha256: str | None = None
    licence: str = ""
    strip: int = 0
    code: bool = False  # its files run as Python code (a torch.hub repo): only ever run when fetched and verified


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    target: str
    description: str = ""


@dataclass(frozen=True)
class TrainerSpec:
    """How ``harness train NAME`` trains a method's networks.

    ``target`` is a ``"module:Class"`` implementing ``harness.training.Trainer``; ``data`` names what it trains on
    (``"corpus"``: a synthetic corpus folder made by ``harness synth``); ``default_config`` holds every size and
    weight, overridable with ``--config k=v``.
    """

    name: str
    target: str
    description: str = ""
    data: tuple[str, ...] = ("corpus",)
    default_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportExtensionSpec:
    """Additions to the HTML reports.

    ``templates``: a folder of jinja2 templates (``"package:folder"``) that override the defaults by name (a user's
    ``--templates`` folder overrides these in turn). ``sections``: ``"module:function"`` called as
    ``function(page, context) -> [{"title": str, "html": str}]`` for ``page`` in ``"method"`` and ``"run"``; the
    html is inserted as given (the plugin escapes what it takes from its inputs).
    """

    name: str
    templates: str = ""
    sections: str = ""

