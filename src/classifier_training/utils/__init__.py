"""Small shared helpers (Hydra registration, atomic file writes)."""
