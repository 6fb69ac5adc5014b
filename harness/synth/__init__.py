"""Synthetic heads: the demo's head generator and the training corpus learned methods train on.

``heads``: identities, albedo, expressions and bound Gaussian heads on a head model. ``streams``: which random
streams identities come from, and the evaluation subjects no training identity may come near. ``cameras``: the
camera sets a corpus is rendered from. ``corpus``: generating (``harness synth``) and reading a corpus.
"""
