"""splat.compression: compressed scene formats (placeholder package; see issues)."""
