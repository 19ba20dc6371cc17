"""User-facing errors: the CLI prints these as one clear message (no traceback)."""


class SplatError(Exception):
    """An error caused by the user's input or environment, with a readable message."""


class BuildError(SplatError):
    """A compiled backend could not be built; the message says what to install."""
