"""splat.viewer: browser viewer (placeholder package; see issues)."""
