"""Files bundled with Doradus, read with `importlib.resources` (see README.md here)."""
