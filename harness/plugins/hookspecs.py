"""Hook specifications. Each hook hands the plugin a ``register`` callback taking one spec.

A plugin module implements any subset::

    from harness.plugins import hookimpl
    from harness.api import MethodSpec

    @hookimpl
    def register_methods(register):
        register(MethodSpec(name="my-method", target="my_package.method:MyMethod"))
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[..., None]) -> None:
    """Register method specs (``harness.api.MethodSpec``)."""


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register dataset specs (``harness.api.DatasetSpec``)."""


@hookspec
def register_metrics(register: Callable[..., None]) -> None:
    """Register metric specs (``harness.api.MetricSpec``)."""


@hookspec
def register_executors(register: Callable[..., None]) -> None:
    """Register executor specs (``harness.api.ExecutorSpec``)."""


@hookspec
def register_weights(register: Callable[..., None]) -> None:
    """Register weight sources (``harness.api.WeightsSpec``) that metrics or methods name in their ``weights``."""


@hookspec
def register_report_extensions(register: Callable[..., None]) -> None:
    """Register report extensions (``harness.api.ReportExtensionSpec``): template folders and page sections."""


@hookspec
def register_trainers(register: Callable[..., None]) -> None:
    """Register trainers (``harness.api.TrainerSpec``) that ``harness train NAME`` runs."""
