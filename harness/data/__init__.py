"""Dataset adapters (on-disk layouts -> the harness contract) and versioned protocols."""
