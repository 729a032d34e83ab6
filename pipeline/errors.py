"""Errors that are the user's to fix (their data, params or files), reported as one line.

Stage scripts print these as a one-line message and exit 1 (``pipeline.stage.run``); any
other exception is a bug and keeps its traceback.
"""


class InputError(Exception):
    """A problem with the input: names the file or key and what to do about it."""


class MissingError(InputError, KeyError):
    """Something the input should contain is missing (a ``KeyError`` for callers that look
    things up); prints its message without ``KeyError``'s quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
