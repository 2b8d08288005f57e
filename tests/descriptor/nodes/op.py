"""An operator that does nothing (the descriptor tests only need the file to exist)."""
