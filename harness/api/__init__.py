"""Types shared by the core and every plugin. Importing this package never imports torch."""

from harness.api.method import Avatar, Method, MissingWeightsError
from harness.api.specs import (
    Capabilities,
    DatasetSpec,
    ExecutorSpec,
    MethodSpec,
    MetricSpec,
    ReportExtensionSpec,
    TrainerSpec,
    WeightFile,
    WeightsSpec,
    load_target,
)
from harness.api.types import Camera, EvalUnit, RunContext, Target, View, ViewRef

__all__ = [
    "Avatar",
    "Camera",
    "Capabilities",
    "DatasetSpec",
    "EvalUnit",
    "ExecutorSpec",
    "Method",
    "MethodSpec",
    "MetricSpec",
    "MissingWeightsError",
    "ReportExtensionSpec",
    "RunContext",
    "Target",
    "TrainerSpec",
    "View",
    "ViewRef",
    "WeightFile",
    "WeightsSpec",
    "load_target",
]
