"""Hydra configuration files (root configs and one group per concern)."""
