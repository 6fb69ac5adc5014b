"""Discovers plugins through the ``harness`` entry-point group and collects their specs.

Loading is fault-isolated: a plugin that fails to import, or whose hook raises, is recorded as a
``PluginFailure`` and everything else keeps working.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from harness.api.specs import (
    DatasetSpec,
    ExecutorSpec,
    MethodSpec,
    MetricSpec,
    ReportExtensionSpec,
    TrainerSpec,
    WeightsSpec,
)
from harness.plugins import hookspecs
from harness.safepath import check_name

ENTRY_POINT_GROUP = "harness"
BUILTIN_DISTRIBUTION = "head-avatar-harness"

KINDS: dict[str, tuple[str, type]] = {
    "methods": ("register_methods", MethodSpec),
    "datasets": ("register_datasets", DatasetSpec),
    "metrics": ("register_metrics", MetricSpec),
    "executors": ("register_executors", ExecutorSpec),
    "weights": ("register_weights", WeightsSpec),
    "report_extensions": ("register_report_extensions", ReportExtensionSpec),
    "trainers": ("register_trainers", TrainerSpec),
}


class UnknownNameError(LookupError):
    """An unknown method/dataset/metric/executor name, with close matches in the message."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "none"
        how = {"methods": " List them with `harness ls methods`; add your own as a plugin package (see "
                          "plugin_template/README.md).",
               "datasets": " List them with `harness ls datasets`."}.get(kind, "")
        super().__init__(f"unknown {kind[:-1]} {name!r}.{hint} Known {kind}: {listing}.{how}")
        self.kind, self.name, self.suggestions = kind, name, close


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    distribution: str
    stage: str
    error: str
    traceback: str = ""


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    distribution: str
    version: str
    module: str
    provides: tuple[str, ...] = ()


@dataclass
class Registry:
    specs: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    plugins: list[LoadedPlugin] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    plugin_distributions: dict[str, str] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.specs[kind][name]
        except KeyError:
            raise UnknownNameError(kind, name, self.specs[kind]) from None

    def method(self, name: str) -> MethodSpec:
        return self.get("methods", name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("datasets", name)

    def metric(self, name: str) -> MetricSpec:
        return self.get("metrics", name)

    def weights(self, name: str) -> WeightsSpec:
        return self.get("weights", name)

    def executor(self, name: str) -> ExecutorSpec:
        return self.get("executors", name)

    def trainer(self, name: str) -> TrainerSpec:
        return self.get("trainers", name)

    def owner(self, kind: str, name: str) -> str:
        return self.owners.get((kind, name), "")

    def plugin_label(self, plugin_name: str) -> str:
        """How a message names a plugin: built-in, or the distribution it comes from."""
        dist = self.plugin_distributions.get(plugin_name, "")
        if dist == BUILTIN_DISTRIBUTION:
            return f"built-in plugin {plugin_name!r}"
        return f"plugin {plugin_name!r} ({dist or 'no distribution'})"

    def plugin_version(self, plugin_name: str) -> str:
        for plugin in self.plugins:
            if plugin.name == plugin_name:
                return plugin.version
        return ""


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"] or "", dist.version or ""


def _collect(registry: Registry, plugin_name: str, dist_name: str, module: ModuleType | object,
             pm: pluggy.PluginManager) -> tuple[str, ...]:
    """Call each hook of one plugin in isolation and add its specs; returns the kinds it provided."""
    provided: list[str] = []
    for kind, (hook_name, spec_type) in KINDS.items():
        impl = getattr(module, hook_name, None)
        if impl is None or pm.parse_hookimpl_opts(module, hook_name) is None:
            continue
        collected: list[Any] = []

        def register(spec: Any, _type: type = spec_type, _kind: str = kind, _into: list[Any] = collected) -> None:
            if not isinstance(spec, _type):
                raise TypeError(f"{_kind} hook registered {type(spec).__name__}, expected {_type.__name__}")
            check_name(spec.name, f"{_kind[:-1]} name")
            _into.append(spec)

        try:
            impl(register=register)
        except BaseException as err:  # a broken plugin (even one calling sys.exit) must not take the others down
            if isinstance(err, KeyboardInterrupt):
                raise
            registry.failures.append(PluginFailure(plugin_name, dist_name, hook_name, _describe(err),
                                                   traceback.format_exc()))
            continue
        for spec in collected:
            existing = registry.owners.get((kind, spec.name))
            if existing is not None:
                registry.failures.append(PluginFailure(
                    plugin_name, dist_name, hook_name,
                    f"{kind[:-1]} {spec.name!r} from plugin {plugin_name!r} ({dist_name or 'no distribution'}) is "
                    f"refused: the name is already registered by {registry.plugin_label(existing)}"))
                continue
            registry.specs[kind][spec.name] = spec
            registry.owners[(kind, spec.name)] = plugin_name
        if collected:
            provided.append(kind)
    return tuple(provided)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def build_registry(
    eps: Iterable[EntryPoint] | None = None,
    extra_modules: Iterable[tuple[str, object]] = (),
) -> Registry:
    """Load every plugin of the entry-point group (plus ``extra_modules``, used by tests) into a new registry."""
    registry = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if eps is None:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    loaded: list[tuple[str, str, str, str, object]] = []
    # The harness's own plugins are collected first, so a third-party package can never take over a built-in name.
    for ep in sorted(eps, key=lambda e: (_distribution_of(e)[0] != BUILTIN_DISTRIBUTION, e.name)):
        dist_name, dist_version = _distribution_of(ep)
        try:
            module = ep.load()
            pm.register(module, name=f"{dist_name}:{ep.name}")
        except BaseException as err:  # SystemExit from a plugin's import is a failure of that plugin only
            if isinstance(err, KeyboardInterrupt):
                raise
            registry.failures.append(PluginFailure(ep.name, dist_name, "import", _describe(err),
                                                   traceback.format_exc()))
            continue
        loaded.append((ep.name, dist_name, dist_version, ep.value, module))
    for name, module in extra_modules:
        pm.register(module, name=name)
        loaded.append((name, "", "", getattr(module, "__name__", name), module))
    for name, dist_name, dist_version, module_path, module in loaded:
        registry.plugin_distributions[name] = dist_name
        provides = _collect(registry, name, dist_name, module, pm)
        registry.plugins.append(LoadedPlugin(name, dist_name, dist_version, module_path, provides))
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY


def reset_registry() -> None:
    global _REGISTRY
    _REGISTRY = None

