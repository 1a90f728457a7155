"""Typed errors of the LoRACap core.

Every error's ``str()`` is a complete sentence a user can act on; the UI and the CLI show it as it
is. ``exit_code`` is the CLI's exit status for that kind of failure:

* 2 -- bad usage or input (a wrong trigger word, a missing folder, a project from a newer version)
* 3 -- authentication failure (no API key, an invalid key)
* 4 -- quota exhausted (a per-day quota)
* 1 -- anything else
"""

from __future__ import annotations

from collections.abc import Sequence


class LoraCapError(Exception):
    """Base class of every error the core raises on purpose."""

    exit_code: int = 1


class InputError(LoraCapError):
    """The user's input cannot be used (a path, a value, a file)."""

    exit_code = 2


class UndecodableImageError(InputError):
    """An image file is there but its data is not a usable image: cut off, damaged, not an
    image, too large (:mod:`loracap.core.imaging`). ``reason`` is the lowercase fragment
    :attr:`~loracap.core.imaging.ImageInfo.reason` would hold, for marking the image invalid
    (:meth:`~loracap.core.project.Project.mark_invalid`)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f'Cannot use the image "{path}": {reason}.')
        self.reason = reason


class TriggerWordError(InputError):
    """A trigger word breaks the rules; ``suggestion`` holds the fixed form, or ``""``."""

    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.suggestion = suggestion


class ProjectError(InputError):
    """A project file cannot be created, opened or read."""


class ProjectNotWritableError(ProjectError):
    """The project file or its folder cannot be written, so the project cannot be opened for
    writing; opening it read-only still works."""


class ProjectVersionError(ProjectError):
    """The project file was written by a newer LoRACap (its schema version is higher)."""


class ProjectLockedError(ProjectError):
    """Another LoRACap process has the project open for writing."""


class ProjectReadOnlyError(ProjectError):
    """A write was attempted on a project opened read-only."""


class ExportError(LoraCapError):
    """An export cannot be written."""


class OutputExistsError(ExportError):
    """The export's output file exists and overwriting was not asked for."""

    exit_code = 2


class UncaptionedImagesError(ExportError):
    """Valid images have no caption and exporting them without one was not asked for.

    ``images`` lists their project-relative paths, in export order.
    """

    exit_code = 2

    def __init__(self, message: str, images: Sequence[str]) -> None:
        super().__init__(message)
        self.images = list(images)


class UntrainableImagesError(ExportError):
    """Images the format's trainer cannot train on (too small) and leaving them out was not
    asked for. ``images`` lists their project-relative paths."""

    exit_code = 2

    def __init__(self, message: str, images: Sequence[str]) -> None:
        super().__init__(message)
        self.images = list(images)


class OutsideImagesError(ExportError):
    """Images whose file lies outside the project folder, and ``allow_outside`` was not given
    -- or was, but a file is not an image. ``images`` lists their project paths."""

    exit_code = 2

    def __init__(self, message: str, images: list[str]) -> None:
        super().__init__(message)
        self.images = list(images)


class NothingToExportError(ExportError):
    """No image is left to export (an empty project, or every image left out)."""

    exit_code = 2


class CaptionError(LoraCapError):
    """Base class of the errors a captioning backend raises."""


class ApiKeyMissingError(CaptionError):
    """No API key was found in the environment or the OS keychain."""

    exit_code = 3


class AuthenticationError(CaptionError):
    """The service refused the API key (invalid, revoked, or without permission).

    Not retried: it stops the whole batch.
    """

    exit_code = 3


class QuotaExhaustedError(CaptionError):
    """A quota that does not reset within minutes (per day) is used up. Stops the batch."""

    exit_code = 4


class TransientError(CaptionError):
    """A failure worth retrying: a per-minute rate limit, a 5xx, a timeout, a lost connection.

    ``retry_after`` is the server's requested delay in seconds (``google.rpc.RetryInfo``), or None.
    ``kind`` is a short machine-readable label (``rate_limit``, ``server``, ``timeout``,
    ``connection``).
    """

    def __init__(self, message: str, *, kind: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class NetworkError(CaptionError):
    """The service could not be reached even after retries: stops the batch."""


class ImageRejectedError(CaptionError):
    """The model refused or could not caption this one image (safety block, empty answer).

    Not retried; the image is marked failed with this message and the batch goes on.
    """


class StorageError(LoraCapError):
    """The project file could not be written while captioning (the disk is full, over its
    quota, or failing). Stops the batch: every later caption would fail the same way. Exit
    code 1."""


class CancelledError(LoraCapError):
    """The operation was cancelled by the user."""


def stop_advice(error: BaseException, *, for_cli: bool) -> str:
    """What to do after ``error`` stopped a captioning batch: one sentence or two.

    Finished captions are always kept and the images not reached stay uncaptioned (not failed),
    so the advice is how to get the batch going again. ``for_cli`` chooses the command line's
    wording (``loracap key set``, "run the same command again") over the window's ("File >
    Settings…", "Generate again"). Free-tier quotas reset at midnight Pacific time (Gemini API
    rate-limit documentation).
    """
    again = "run the same command again" if for_cli else "choose Generate Captions again"
    if isinstance(error, (ApiKeyMissingError, AuthenticationError)):
        where = (
            "with `loracap key set` (or in the GEMINI_API_KEY environment variable)"
            if for_cli else "in File > Settings…"
        )
        return f"Set a valid Gemini API key {where}, then {again}."
    if isinstance(error, QuotaExhaustedError):
        return (
            f"Finished captions are kept; {again} after midnight Pacific time, when the daily "
            "quota resets, or use a key with a paid plan."
        )
    if isinstance(error, NetworkError):
        return f"Check the internet connection, then {again}; finished captions are kept."
    if isinstance(error, CaptionError) and not isinstance(error, TransientError):
        model = "with --model" if for_cli else "in File > Settings…"
        return (
            f"Finished captions are kept; if the model is the problem, choose another one "
            f"{model}, then {again}."
        )
    return f"Finished captions are kept; {again} to continue."
