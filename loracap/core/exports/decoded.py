"""Which images of an export are known to decode, so a re-export does not decode them again.

An export decodes every image's pixels before it writes it
(:mod:`loracap.core.exports.writer`): 4–30 × the time of a plain copy. When an image's pixels
decode whole, the size and mtime its file had just before the decode (``os.lstat``) are
recorded in the project (project format 8: ``images.decoded_size``, ``decoded_mtime``;
:meth:`~loracap.core.project.Project.record_decoded`). A later export skips the decode of a
file whose size and mtime are still the recorded ones; a file that changed since (another size
or another mtime: edited, replaced, cut off) is decoded again, and its state recorded again or
cleared. Captioning records the images it prepares the same way, for a preparation decodes
every pixel too (:mod:`loracap.core.prepared_decodes`): the first export after a batch
decodes only what changed since.

Limits, accepted: a file replaced by a damaged one of the same size *and* the same mtime (a
tool that writes in place and sets the old mtime back, or -- on a file system that keeps
mtimes in whole seconds or two, as FAT does -- a rewrite within the same tick as the decode)
is taken as decoding and exported. A
symbolic link is always decoded: its own size and mtime (``lstat``) say nothing of the file it
leads to. A file of an older project format opened read-only has no such columns: every image
is decoded, nothing is recorded; a project open read-only uses what is recorded but records
nothing.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from loracap.core.errors import ProjectError

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: The project format that added the columns (:mod:`loracap.core.schema`, ``ImageRow``).
DECODED_FORMAT = 8

#: A file's state as recorded: ``(size in bytes, mtime in seconds)``.
FileState = tuple[int, float]


def file_state(path: Path) -> FileState | None:
    """``(size, mtime)`` of the regular file at ``path`` (``os.lstat``: a link is not
    followed); None for a symbolic link or anything but a regular file, or a file that cannot
    be stat'ed (its decode then says why)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_size, info.st_mtime


class DecodedFiles:
    """The decode record of one export of ``project`` (or of one captioning batch:
    :class:`~loracap.core.prepared_decodes.PreparedDecodes`): read once when made, written by
    :meth:`save`.

    :meth:`known` says whether an image's file still has the state recorded at its last
    whole decode (the decode can be skipped); :meth:`decoded` and :meth:`undecodable` collect
    what this export found, from any thread. Nothing is read or written for a project of a
    format older than :data:`DECODED_FORMAT`, nothing written for a project open read-only.
    """

    def __init__(self, project: Project) -> None:
        self._project = project
        usable = project.format_version >= DECODED_FORMAT
        self._writable = usable and not project.read_only
        self._recorded: dict[int, FileState] = project.decoded_states() if usable else {}
        self._found: dict[int, FileState] = {}
        self._failed: set[int] = set()
        self._lock = threading.Lock()

    def known(self, image_id: int, state: FileState | None) -> bool:
        """True when the image's pixels decoded whole while its file had ``state`` (as
        :func:`file_state` gives it now): its decode need not be repeated."""
        return state is not None and self._recorded.get(image_id) == state

    def decoded(self, image_id: int, state: FileState | None) -> None:
        """The image's pixels decoded whole; ``state`` is its file's, stat'ed before the
        decode (a file changed during the decode then differs next time)."""
        if state is None or self._recorded.get(image_id) == state:
            return
        with self._lock:
            self._found[image_id] = state
            self._failed.discard(image_id)

    def undecodable(self, image_id: int) -> None:
        """The image's pixels did not decode: its recorded state, if any, is cleared."""
        with self._lock:
            self._found.pop(image_id, None)
            if image_id in self._recorded:
                self._failed.add(image_id)

    def save(self) -> int:
        """Write what this export found, in one transaction; returns how many states were
        written or cleared (0 for a project open read-only or of an older format). A project
        file that cannot be written is logged as a warning, not raised: only the record is
        missing, and the next export decodes again."""
        with self._lock:
            found, failed = dict(self._found), set(self._failed)
            self._found.clear()
            self._failed.clear()
        if not self._writable or not (found or failed):
            return 0
        # Imported here: the window imports the exports at startup, before SQLAlchemy.
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self._project.record_decoded(found, failed)
        except (ProjectError, SQLAlchemyError) as exc:  # a full disk, a lock held too long
            log.warning("Could not record which images decode in %s: %s",
                        self._project.path.name, exc)
            return 0
        for image_id in failed:
            self._recorded.pop(image_id, None)
        self._recorded.update(found)
        return len(found) + len(failed)
