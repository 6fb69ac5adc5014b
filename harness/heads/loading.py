"""Choosing the head model a tracking dict refers to, and reading tracking dicts as ``HeadParams``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.heads.model import HeadModel, HeadParams
from harness.heads.template import TEMPLATE_NAME, head_template


class TrackingError(ValueError):
    pass


def load_head_model(setting: str) -> HeadModel:
    """``"template"`` (the open head template) or the path of the user's FLAME 2023 pickle."""
    if setting == "template":
        return head_template()
    from harness.heads.flame import load_flame

    return load_flame(Path(setting))


def head_model_for(tracking: dict[str, Any] | None, setting: str) -> HeadModel:
    """The head model named by ``setting`` ("template" or the path of a FLAME 2023 pickle), checked against the
    model the tracking was made with."""
    if tracking is None:
        raise TrackingError("this method needs head tracking; the dataset provides none for the source views")
    model = load_head_model(setting)
    wanted = tracking.get("model")
    if wanted != model.name:
        hint = " (set head_model to the path of flame2023.pkl)" if wanted != TEMPLATE_NAME else ""
        raise TrackingError(f"the tracking was made with head model {wanted!r}, but {model.name!r} is loaded{hint}")
    return model


def params_from_tracking(tracking: dict[str, Any] | None, model: HeadModel) -> HeadParams:
    if tracking is None:
        raise TrackingError("a view has no head tracking")
    if tracking.get("model") != model.name:
        raise TrackingError(f"tracking for head model {tracking.get('model')!r} cannot drive {model.name!r}")
    return HeadParams.from_dict(tracking, model)
