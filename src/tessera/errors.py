"""Errors a user can act on. The CLI prints them as one line (``error: ...``) and exits with status 2."""


class TesseraError(Exception):
    """A problem with the user's input or environment, described in one line that names the file or key."""


class ConfigError(TesseraError, ValueError):
    """An unknown config key, a value of the wrong type, or a config that cannot work."""
