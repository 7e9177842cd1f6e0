"""Exceptions that the command line turns into a message and a non-zero exit, never a traceback."""


class CrampstatsError(Exception):
    """Base class for errors a user can act on; the message says what and where."""
