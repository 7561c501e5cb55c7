"""User-facing errors: the CLI prints their message without a traceback."""


class SSSError(Exception):
    """A problem with the user's input (a file, a flag, a dataset) that the message explains."""
