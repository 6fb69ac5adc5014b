"""Registration only: a spec is data, and its target is imported lazily, so keep heavy imports out of here."""

from __future__ import annotations

from collections.abc import Callable

from harness.api import Capabilities, MethodSpec
from harness.plugins import hookimpl


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="example-mean-colour",
        display_name="Example: mean colour",
        target="harness_example_plugin.method:MeanColour",
        description="Paints the source's silhouette-averaged colour over the source alpha: a template, not a method.",
        version="1",
        licence="Apache-2.0",
        status="experimental",
        capabilities=Capabilities(inputs="one"),
        default_config={"background": 1.0},
    ))
