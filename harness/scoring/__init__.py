"""Scoring: per-image metrics computed from prediction files and ground truth, into one long table."""
