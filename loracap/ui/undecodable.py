"""Images whose pixels turn out not to decode when the grid makes their thumbnail.

The scan checks a file's header and structure only, so a JPEG whose compressed data is damaged
between intact markers is listed as valid. When the grid's thumbnail loader then finds that its
pixels do not decode, :class:`~loracap.ui.thumbnails.ThumbnailProvider` emits ``undecodable``
(the decode and the definitive check run on the provider's loader threads). :class:`
UndecodableImages`, the window's controller for it, does what an export does with such an image
(:meth:`~loracap.core.project.Project.mark_invalid`): the image is marked invalid with the
reason, so it is left out of captioning and exports, its grid row shows it, and the status bar
says so once.

It is not marked when the project is open read-only (the status bar still tells), when the
image is invalid already, when the file is no longer the one the project recorded (its size or
modification time differ: it was replaced while it was read, or changed since the scan), or
when the path is not the image's (a load of a project closed since). On the GUI thread it costs
one ``stat`` and one small write.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject

from loracap.core.errors import LoraCapError

if TYPE_CHECKING:
    from loracap.core.records import ImageRecord
    from loracap.ui.main_window import MainWindow
    from loracap.ui.thumbnails import ThumbnailProvider

log = logging.getLogger(__name__)

#: How long the status bar shows the message, in milliseconds.
MESSAGE_MS = 15_000
#: File names a message about several images lists before "and N more".
MAX_NAMES = 3
#: What happens to an image marked invalid, as the status bar says it.
LEFT_OUT = "left out of captioning and exports"


class UndecodableImages(QObject):
    """Marks an image invalid when its thumbnail finds that its pixels do not decode.

    Made by the window with its thumbnail provider; listens to
    :attr:`~loracap.ui.thumbnails.ThumbnailProvider.undecodable`. A report that comes while a
    large project is still opening (its first rows are shown before the project file is open)
    waits for ``project_opened``. Use from the GUI thread only.
    """

    def __init__(self, window: MainWindow, thumbnails: ThumbnailProvider) -> None:
        super().__init__(window)
        self.window = window
        #: Reports that came before the project was open: image id -> (reason, path).
        self._waiting: dict[int, tuple[str, str]] = {}
        #: The file names of the images the status bar's current message is about.
        self._said: list[str] = []
        self._said_text = ""
        thumbnails.undecodable.connect(self.report)
        window.project_opened.connect(lambda _path: self._report_waiting())

    def report(self, image_id: int, reason: str, path: str) -> bool:
        """The pixels of image ``image_id``, read from ``path``, do not decode (``reason``, as
        :func:`loracap.core.imaging.pixel_problem` words it). Mark it invalid, refresh its row
        and say so. Returns True when it was marked; False when the image is not the open
        project's image at ``path``, is invalid already, its file changed (size or mtime not
        as recorded), or the project is open read-only or cannot be written."""
        window = self.window
        project = window.project
        if project is None:
            if window.model.loading:  # a large project's first rows: its file is opening
                self._waiting[image_id] = (reason, path)
            return False
        row = window.model.row_of(image_id)
        if row < 0:
            return False
        record = window.model.record(row)
        if not record.valid or os.fspath(record.abs_path) != path:
            return False
        if not _unchanged(record):
            log.info("%s did not decode, but it changed since it was scanned: not marked "
                     "invalid", path)
            return False
        name = record.file_name
        if project.read_only:
            log.info("%s does not decode (%s); the project is open read-only", path, reason)
            self._show(f"{name} does not decode: {reason}. The project is open read-only, "
                       "so it is not marked invalid.")
            return False
        try:
            project.mark_invalid(image_id, reason)
        except LoraCapError as exc:  # e.g. the project file cannot be written just now
            log.warning("Cannot mark %s invalid: %s", path, exc)
            return False
        log.info("Marked %s invalid: its pixels do not decode (%s)", path, reason)
        window.refresh_image(image_id)
        self._say_marked(name)
        return True

    def _report_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for image_id, (reason, path) in waiting.items():
            self.report(image_id, reason, path)

    def _say_marked(self, name: str) -> None:
        """One message: for this image, or for every image marked while it still shows."""
        if self._said_text and self.window.statusBar().currentMessage() == self._said_text:
            self._said.append(name)
            count = len(self._said)
            names = ", ".join(self._said[:MAX_NAMES])
            if count > MAX_NAMES:
                names += f" and {count - MAX_NAMES} more"
            text = (f"{count} images do not decode ({names}); they are marked invalid and "
                    f"{LEFT_OUT}.")
        else:
            self._said = [name]
            # The reason is in the image's preview and tooltip: the status bar stays short
            # enough for a 13-inch screen.
            text = f"{name} does not decode: it is marked invalid and {LEFT_OUT}."
        self._show(text)
        self._said_text = text

    def _show(self, text: str) -> None:
        self._said_text = ""
        self.window.statusBar().showMessage(text, MESSAGE_MS)


def _unchanged(record: ImageRecord) -> bool:
    """Whether ``record``'s file is a regular file of the size and mtime the project
    recorded (one ``stat``)."""
    try:
        info = os.stat(record.abs_path)
    except OSError:
        return False
    return (stat.S_ISREG(info.st_mode) and info.st_size == record.file_size
            and info.st_mtime == record.mtime)
