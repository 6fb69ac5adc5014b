"""Plugin registration: data only, nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Callable

from harness.api import Capabilities, MethodSpec
from harness.plugins import hookimpl


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="nearest-input",
        display_name="Nearest input",
        target="harness_methods.nearest_input.method:NearestInput",
        description="Predicts every target with the source image whose camera looks from the closest direction. "
                    "No 3D at all: the lower bound any avatar method must beat.",
        version="2",  # 2: RGB predictions (no alpha): the copied photo claims no coverage
        licence="Apache-2.0",
        status="reference",
        capabilities=Capabilities(inputs="few", animatable=False, full_head=False, floor_baseline=True),
    ))
