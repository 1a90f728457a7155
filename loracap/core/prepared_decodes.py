"""Captioning records which images' pixels decoded whole, so that the next export does not
decode them again.

Preparing an image for a captioner decodes all of its pixels (a vision backend's upload,
:func:`loracap.core.imaging.prepare_for_upload`: even in JPEG draft mode libjpeg
entropy-decodes every block; the WD14 tagger's full decode) -- or reads the upload cache,
whose entry was made by such a decode of the very same bytes
(:mod:`loracap.core.upload_cache`, keyed by content). That is the decode an export would
otherwise repeat before writing the image (:mod:`loracap.core.exports.decoded`). So a
successful preparation records the file state (``os.lstat`` size and mtime) taken *before*
it, as an export's decode does: a file changed during or after the preparation has another
state and is decoded again by the export.

Only for preparations known to decode whole: a captioner says so with
``prepare_decodes_whole = True`` (:func:`loracap.core.backends.base.prepare_decodes_whole`);
an unknown captioner is never assumed to. The one-by-one runner
(:mod:`loracap.jobs.runner`) and batch API submissions
(:func:`loracap.core.batches.flow.submit_batch`) collect the states while they prepare and
write them once, when they end (:meth:`PreparedDecodes.save`): a crash loses them, and the
export then decodes again -- nothing worse. Nothing is written to a project open read-only
or of an older format, as for an export (:class:`~loracap.core.exports.decoded.DecodedFiles`).
Multi-person captions decode each image themselves, to crop it, through
:meth:`PreparedDecodes.prepare` too (``CaptionJob.decodes``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from loracap.core.errors import UndecodableImageError
from loracap.core.exports.decoded import DecodedFiles, file_state

if TYPE_CHECKING:
    from loracap.core.project import Project

_T = TypeVar("_T")


class PreparedDecodes:
    """The whole decodes of one captioning batch of ``project``, whose image files are
    ``files`` (image id -> absolute path, as :attr:`ImageRecord.abs_path` gives it).

    Wrap each preparation in :meth:`prepare` (from any thread); call :meth:`save` when the
    batch ends. Reads the project's recorded states once, when made (so an unchanged state is
    not written again).
    """

    def __init__(self, project: Project, files: Mapping[int, Path]) -> None:
        self._found = DecodedFiles(project)
        self._ids = {Path(path): image_id for image_id, path in files.items()}

    def prepare(self, prepare: Callable[[Path, int], _T], path: Path, max_side: int) -> _T:
        """``prepare(path, max_side)`` -- a preparation that decodes the image's pixels whole
        -- with its outcome recorded for the image of ``path``: the file's state before the
        call when it returns; the recorded state cleared when it raises
        :class:`~loracap.core.errors.UndecodableImageError` (the pixels do not decode). Any
        other error (an unreadable file, a model that does not load) records nothing. A path
        of no image of ``files`` is prepared and not recorded. Raises what ``prepare``
        raises."""
        image_id = self._ids.get(Path(path))
        if image_id is None:
            return prepare(path, max_side)
        state = file_state(path)
        try:
            prepared = prepare(path, max_side)
        except UndecodableImageError:
            self._found.undecodable(image_id)
            raise
        self._found.decoded(image_id, state)
        return prepared

    def recording(self, prepare: Callable[[Path, int], _T]) -> Callable[[Path, int], _T]:
        """``prepare`` with each call recorded as by :meth:`prepare`."""
        def recorded(path: Path, max_side: int) -> _T:
            return self.prepare(prepare, path, max_side)

        return recorded

    def save(self) -> int:
        """Write the states found since the last save, in one transaction; how many were
        written or cleared. 0, nothing written, for a project open read-only or of a format
        older than 8; a project file that cannot be written is logged, not raised
        (:meth:`DecodedFiles.save <loracap.core.exports.decoded.DecodedFiles.save>`)."""
        return self._found.save()
