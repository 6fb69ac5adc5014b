"""Errors of the report builder (a module of its own, so the CLI can catch them without importing polars)."""

from __future__ import annotations


class ReportInputError(ValueError):
    """A run folder the report cannot use; the message names the folder and the field."""
