"""Exceptions that clv raises for problems a user can fix.

Every message says what is wrong (which column, how many rows, an example) and what to do.
The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class ClvError(Exception):
    """Base class of the errors clv raises on purpose."""


class DataValidationError(ClvError, ValueError):
    """The transaction log, customer list or configuration cannot be used as given."""


class ModelFitError(ClvError, RuntimeError):
    """A model did not converge, even after the penalized retry."""


class BundleError(ClvError, ValueError):
    """A model bundle is missing, foreign, damaged or of an unsupported format version."""


class ScoreError(ClvError, ValueError):
    """Scores that would hold a non-finite number where one is promised."""


class DatabaseError(ClvError, RuntimeError):
    """A database could not be reached, read or written (the message names the server without
    credentials, and says whether anything was changed)."""


class MemoryLimitError(ClvError, MemoryError):
    """A step needed more memory than the limit clv runs it under (the message names the limit
    and how to raise it)."""


class ClvWarning(UserWarning):
    """A notice about the data or the run that the user should read (the CLI prints these)."""
