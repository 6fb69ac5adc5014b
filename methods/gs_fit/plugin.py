"""Registration of the gs-fit reference method: data only, nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Callable

from harness.api import Capabilities, MethodSpec
from harness.plugins import hookimpl


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="gs-fit",
        display_name="gs-fit (no prior)",
        target="harness_methods.gs_fit.method:GsFit",
        description="Gaussians bound to the tracked head mesh and fitted to the source views by gradient descent, "
                    "with no learned prior; driven by the target's head parameters. The baseline every learned "
                    "prior must beat.",
        version="3",  # 3: RGBA predictions carry straight colour
        licence="Apache-2.0",
        status="reference",
        capabilities=Capabilities(inputs="few", animatable=True, full_head=True, needs_tracking=True),
        default_config={"num_gaussians": 6000, "steps": 40, "fit_scale": 0.5},
    ))
