"""An example method plugin: the template to copy for your own method."""
