from __future__ import annotations


class DatasetError(RuntimeError):
    """A dataset file is missing, unreadable or inconsistent; the message names the path."""


class ProtocolError(ValueError):
    """A protocol file is malformed; the message names the file and the field."""
