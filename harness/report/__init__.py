"""HTML output built from run folders (never recomputing metrics)."""
