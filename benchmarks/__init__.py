"""The benchmark and the seed-style reference it measures against (not installed)."""
