"""User-facing errors: each message is one line naming the culprit and, where there is one, the fix."""


class RaycvError(Exception):
    """Base of the errors the CLI prints as one line (no traceback)."""


class DataError(RaycvError, ValueError):
    """The dataset on disk (or its split into folds) cannot be used as it is."""


class RunFolderError(RaycvError):
    """The run folder exists, differs, or cannot be written."""
