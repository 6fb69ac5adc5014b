"""Gaussian heads: the container, its .ply format, and the renderers."""
