"""Built-in method plugins (imported as ``harness_methods``), each registered through the ``harness``
entry-point group exactly as a third-party plugin package is."""
