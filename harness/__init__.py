"""Benchmark harness for one- and few-shot 3D head avatar reconstruction."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("head-avatar-harness")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
