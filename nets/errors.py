"""The project's own error types.

Everything a user can get wrong (a missing or corrupt data file, a damaged or foreign model
file, an unreadable image, a bad setting) raises a subclass of `NetsError` whose message
says what went wrong and what to do. `train.py` prints that message and exits non-zero;
any other exception is a bug.
"""


class NetsError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class DataError(NetsError):
    """A dataset file or directory is missing, truncated, corrupt or inconsistent."""


class DownloadError(DataError):
    """The dataset could not be downloaded (no mirror answered with a verified file)."""


class CheckpointError(NetsError):
    """A model or checkpoint file cannot be read, or does not match what it claims."""


class ImageError(NetsError):
    """An image file cannot be read or holds no digit."""


class ConfigError(NetsError):
    """A setting is invalid (layer sizes, learning rate, names of costs or optimizers...)."""


class TrainingDiverged(NetsError):
    """The loss became NaN or infinite during training."""


class RunInterrupted(NetsError):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped training cleanly; the message says where
    the checkpoint is. `exit_code` is 128 + the signal's number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
