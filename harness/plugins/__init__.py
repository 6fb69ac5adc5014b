"""Plugin system: hookspecs, entry-point discovery and the registry of specs."""

from harness.plugins.hookspecs import hookimpl
from harness.plugins.registry import PluginFailure, Registry, UnknownNameError, get_registry

__all__ = ["PluginFailure", "Registry", "UnknownNameError", "get_registry", "hookimpl"]
