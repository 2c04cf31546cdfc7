"""Errors a user can cause and fix: the CLI shows them as one line, never a traceback."""


class UserError(Exception):
    """Bad input from the user (a file, a flag, a plugin): one line, exit status 2."""

    exit_code = 2


class DataError(UserError):
    """A data file is missing, malformed or out of range; the message names file, row and column."""


class PluginError(UserError):
    """A plugin failed to load or declares something invalid; the message names the plugin."""


class PredictionError(ValueError):
    """A model's predictions break the contract (missing task, wrong shape, NaN, out of range)."""
