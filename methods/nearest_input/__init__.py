"""``nearest-input``: the honest lower bound of a method that ignores 3D."""
