"""SynShot: a synthetic 3DGS head prior in UV space, inverted by pivotal tuning from a few images."""
