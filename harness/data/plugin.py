"""Built-in datasets, registered through the same hook a third-party dataset plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from harness.api.specs import DatasetSpec
from harness.plugins.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="demo",
        display_name="Demo heads (procedural)",
        target="harness.data.demo:DemoDataset",
        description="3 heads made from the open head template, 6 frames, 16 NeRSemble-like cameras, with "
                    "tracking; written on first use in the NeRSemble v1 layout and read back through the v1 reader.",
        protocols={"demo": "demo/demo.yaml"},
        default_protocol="demo",
        root_env="HARNESS_DEMO_ROOT",
        obtain="Generated automatically into $HARNESS_HOME/data on first use (about a minute on 2 cores).",
    ))
