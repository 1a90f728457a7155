"""Writing a plan: a zip, a folder or one file, all or nothing, checked by reading it back.

Rules kept for every format:

* **Atomic**: everything is written under a temporary name beside the target
  (``.<name>.<random>.loracap-part``), read back, then moved into place; a crash, a full disk
  or a failed check never leaves half an export. Leftovers of an interrupted export are removed
  by the next export to the same folder.
* **Verified**: the written zip or folder is read back before it replaces anything: exactly
  the planned entries, none twice; each caption file holds exactly its caption; each copied
  image has the size of its source and (in a zip) its checksum; each converted image decodes.
* **Decodable**: every image's pixels are decoded before it is written -- copied ones by
  :func:`~loracap.core.imaging.pixel_problem`, on :data:`PIXEL_CHECK_THREADS` threads ahead of
  the writing; converted ones by their conversion. The scan checks only a file's structure
  (:mod:`loracap.core.structure`), so damaged compressed data inside an intact container is
  found here: :func:`export_project` marks such images invalid with the reason and leaves
  them out, as every invalid image is, and lists them in
  :attr:`~loracap.core.exports.base.ExportResult.undecodable`. A copied image whose file still
  has the size and mtime it had when its pixels last decoded whole is not decoded again
  (:mod:`loracap.core.exports.decoded`): a re-export of unchanged files costs about a copy.
* **Never over what is not an export**: the target is never the project file, a file that is
  not a regular file (a device, a pipe), a folder LoRACap did not write, or a folder holding
  the project or its images. An existing export is replaced with ``force``, or with
  ``replace_own`` when it is this project's own unchanged earlier export (recorded in the
  project file, format 4).
* Files get the permissions the umask allows (like any file a program creates), not 0600.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loracap import __version__
from loracap.core.errors import (
    ExportError,
    OutputExistsError,
    ProjectError,
    UndecodableImageError,
)
from loracap.core.exports.base import (
    EXPORT_MARKER,
    Container,
    ExportOptions,
    ExportPlan,
    ExportResult,
    LeftOutImage,
    PlannedImage,
    TrainerFormat,
)
from loracap.core.exports.decoded import DecodedFiles, file_state
from loracap.core.exports.pixels import encode_converted
from loracap.core.exports.planner import UndecodableImagesError, plan_export

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: Fixed timestamp for zip entries (the zip format's epoch), so an export's bytes depend only
#: on the images and captions.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

#: Suffixes of LoRACap's temporary names beside an export (and the ``.part`` of older ones).
PART_SUFFIX = ".loracap-part"
OLD_SUFFIX = ".loracap-old"

_UMASK_LOCK = threading.Lock()

#: Threads that decode images ahead of the writing (Pillow's decoders release the GIL).
PIXEL_CHECK_THREADS = max(1, min(4, os.cpu_count() or 1))

#: How many images the decoding threads may run ahead of the writing.
_CHECK_AHEAD = 4 * PIXEL_CHECK_THREADS

Progress = Callable[[int, int], None]


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes as lowercase hex (read in 1 MiB blocks).

    Raises :class:`OSError` when the file cannot be read.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- targets


def container_for(fmt: TrainerFormat, target: Path) -> Container:
    """What ``fmt`` writes at ``target``: its own container, or a zip for a folder format whose
    output path ends in ``.zip``."""
    if fmt.container is Container.FOLDER and fmt.zip_on_suffix and target.suffix.lower() == ".zip":
        return Container.ZIP
    return fmt.container


def default_output(project: Project, fmt: TrainerFormat) -> Path:
    """Where an export goes by default: its default name beside the project file."""
    return project.folder / fmt.default_name(project.settings.trigger)


def export_target(project: Project, fmt: TrainerFormat, out: Path | None = None) -> Path:
    """The absolute path an export writes: ``out``; for a zip or one-file format given an
    existing folder, the default name inside it; :func:`default_output` when ``out`` is None.
    For a folder format ``out`` is the export folder itself."""
    target = default_output(project, fmt)
    if out is not None:
        out = Path(out).expanduser()
        if fmt.container is not Container.FOLDER and out.is_dir():
            target = out / target.name
        else:
            target = out
    return Path(os.path.abspath(target))


def zip_fingerprint(path: Path) -> str:
    """The SHA-256 of a zip's size and its central directory (every entry's name, size and
    CRC-32), as lowercase hex: it changes whenever an entry's content, name or the file's size
    does, and costs a few kilobytes of reading instead of a pass over a gigabyte zip.

    Raises :class:`OSError` (or :class:`zipfile.BadZipFile`) for a file that is not a zip.
    """
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        start = archive.start_dir
    with path.open("rb") as handle:
        handle.seek(start)
        tail = handle.read()
    return hashlib.sha256(b"zip\0" + str(size).encode() + b"\0" + tail).hexdigest()


def _file_fingerprint(path: Path) -> str:
    """:func:`zip_fingerprint` for a zip, :func:`file_sha256` for any other file."""
    if zipfile.is_zipfile(path):
        try:
            return zip_fingerprint(path)
        except (OSError, zipfile.BadZipFile):
            pass
    return file_sha256(path)


def _marker_sha(folder: Path) -> str | None:
    marker = folder / EXPORT_MARKER
    try:
        return file_sha256(marker) if marker.is_file() else None
    except OSError:
        return None


def is_own_export(project: Project, path: Path) -> bool:
    """True when ``path`` is an export this project wrote and nobody changed since: a recorded
    export (:meth:`Project.exports`) at the same path with the same size and fingerprint (the
    SHA-256 of a text file, of a zip's central directory, of a folder's marker file)."""
    path = Path(os.path.abspath(path))
    records = project.exports(path)
    if not records:
        return False
    if path.is_dir():
        digest = _marker_sha(path)
        return digest is not None and any(rec.sha256 == digest for rec in records)
    try:
        size = path.stat().st_size
    except OSError:
        return False
    candidates = [rec for rec in records if rec.size == size]
    if not candidates or not path.is_file():
        return False
    try:
        digest = _file_fingerprint(path)
    except OSError:
        return False
    return any(rec.sha256 == digest for rec in candidates)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def check_target(project: Project, plan: ExportPlan, target: Path, *, force: bool,
                 replace_own: bool) -> bool:
    """Refuse a target an export must never write over; returns True when an existing export
    is to be replaced. Raises :class:`OutputExistsError` (exit 2) with what to do."""
    from loracap.core.project import PROJECT_SUFFIX

    container = container_for(plan.format, target)
    if target == project.path or target.suffix.lower() == PROJECT_SUFFIX:
        raise OutputExistsError(f"{target} is a LoRACap project file; an export never writes "
                                "over one. Choose another file with --out.")
    sources = {image.source for image in plan.images}
    if target in sources:
        raise OutputExistsError(f"{target} is one of the project's images; an export never "
                                "writes over one. Choose another file with --out.")
    if not target.parent.is_dir():
        raise ExportError(f"Cannot write {target}: the folder {target.parent} does not exist.")
    if container is Container.FOLDER and (
            _inside(project.path, target) or any(_inside(source, target) for source in sources)):
        raise OutputExistsError(f"{target} holds the project or its photos; a folder export "
                                "must go into a folder of its own. Choose another with --out.")
    if not os.path.lexists(target):
        return False
    if container is Container.FOLDER:
        if target.is_symlink() or not target.is_dir():
            raise OutputExistsError(f"{target} exists and is not a folder; choose another "
                                    "folder with --out.")
        if not (target / EXPORT_MARKER).is_file():
            if not any(target.iterdir()):
                return False  # an empty folder: written into
            raise OutputExistsError(f"{target} is a folder LoRACap did not write; an export "
                                    "never replaces one. Choose another folder with --out.")
    elif target.is_symlink() or not target.is_file():
        raise OutputExistsError(f"{target} exists and is not a regular file; an export never "
                                "replaces it. Choose another file with --out.")
    if force:
        return True
    if replace_own and is_own_export(project, target):
        return True
    if replace_own:
        raise OutputExistsError(
            f"{target} already exists and is not an export LoRACap wrote for this project (or "
            "it was changed since). Add --force to replace it, or choose another file with "
            "--out.")
    raise OutputExistsError(f"{target} already exists; use --force to replace it.")


def remove_stale_parts(target: Path) -> list[Path]:
    """Remove leftovers of interrupted exports to ``target``: LoRACap's temporary names beside
    it (``.<name>.*.loracap-part``, ``.<name>.*.loracap-old``, and ``.<name>.*.part`` of older
    versions). Returns what was removed."""
    removed = []
    prefix = f".{target.name}."
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or not name.endswith((PART_SUFFIX, OLD_SUFFIX, ".part")):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError as exc:
            log.warning("Could not remove the leftover %s: %s", entry, exc)
    return removed


# ---------------------------------------------------------------------- sinks


class _Sink(Protocol):
    def add_bytes(self, name: str, data: bytes, *, compress: bool) -> None: ...
    def add_copy(self, name: str, source: Path) -> None: ...
    def close(self) -> None: ...


class _ZipSink:
    """Entries in a zip: images stored (already compressed), text deflated, fixed times."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w")

    @staticmethod
    def _info(name: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    def add_bytes(self, name: str, data: bytes, *, compress: bool) -> None:
        self._zip.writestr(self._info(name, compress), data)

    def add_copy(self, name: str, source: Path) -> None:
        info = self._info(name, False)
        info.file_size = source.stat().st_size
        with source.open("rb") as src, self._zip.open(info, "w") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def close(self) -> None:
        self._zip.close()


class _FolderSink:
    """Files in a folder (sub-folders made as needed)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, name: str) -> Path:
        path = self._root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_bytes(self, name: str, data: bytes, *, compress: bool) -> None:
        self._path(name).write_bytes(data)

    def add_copy(self, name: str, source: Path) -> None:
        shutil.copyfile(source, self._path(name))

    def close(self) -> None:
        pass


def _image_bytes(image: PlannedImage) -> bytes:
    return encode_converted(image.source, image.conversions, Path(image.dest).suffix)


def _gone(image: PlannedImage, exc: OSError) -> ExportError:
    if isinstance(exc, FileNotFoundError):
        return ExportError(f"Cannot read {image.project_path}: it is gone (moved or deleted?).")
    return ExportError(f"Cannot read {image.project_path}: {exc.strerror or exc}.")


def _pixel_check(image: PlannedImage, decoded: set[int], known: DecodedFiles | None) -> str:
    """``""`` when ``image``'s pixels decode, else why not. Not decoded here: a converted
    image (its conversion decodes it), one in ``decoded``, or one whose file ``known`` says
    decoded whole in the state it still has; a whole decode is told to ``known`` with the
    state the file had before it."""
    if image.conversions or image.image_id in decoded:
        return ""
    state = file_state(image.source) if known is not None else None
    if known is not None and known.known(image.image_id, state):
        return ""
    from loracap.core.imaging import pixel_problem  # Pillow: loaded with the first export

    try:
        problem = pixel_problem(image.source)
    except OSError as exc:
        raise _gone(image, exc) from exc
    if known is not None:
        if problem:
            known.undecodable(image.image_id)
        else:
            known.decoded(image.image_id, state)
    return problem


def _pixel_checks(images: list[PlannedImage], decoded: set[int], known: DecodedFiles | None
                  ) -> Generator[str, None, None]:
    """:func:`_pixel_check` of every image, in order, decoded on :data:`PIXEL_CHECK_THREADS`
    threads up to :data:`_CHECK_AHEAD` images ahead; closing the iterator cancels the rest."""
    with ThreadPoolExecutor(PIXEL_CHECK_THREADS, thread_name_prefix="loracap-pixels") as pool:
        pending: deque[Future[str]] = deque()
        try:
            for image in images:
                pending.append(pool.submit(_pixel_check, image, decoded, known))
                if len(pending) >= _CHECK_AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _write_image(sink: _Sink, image: PlannedImage, converted: dict[str, bytes],
                 known: DecodedFiles | None) -> str:
    """Write one image, copied or converted (its bytes then kept in ``converted``); ``""``, or
    why its pixels do not decode when its conversion finds that they do not (a conversion
    that decodes is told to ``known``)."""
    if image.conversions:
        state = file_state(image.source) if known is not None else None
        try:
            data = _image_bytes(image)
        except UndecodableImageError as exc:
            if known is not None:
                known.undecodable(image.image_id)
            return exc.reason
        if known is not None:
            known.decoded(image.image_id, state)
        converted[image.dest] = data
        sink.add_bytes(image.dest, data, compress=False)
        return ""
    try:
        sink.add_copy(image.dest, image.source)
    except FileNotFoundError as exc:
        raise _gone(image, exc) from exc
    return ""


def _fill(sink: _Sink, plan: ExportPlan, progress: Progress | None,
          decoded: set[int], known: DecodedFiles | None) -> dict[str, bytes]:
    """Write every planned entry; returns the converted images' bytes by name (for the check).

    Every image's pixels are decoded first (:func:`_pixel_checks`; not those ``known`` to
    decode); ids that decode are added to ``decoded``. Raises :class:`UndecodableImagesError`
    listing every image that does not decode (after the first one, the others are only
    checked, not written).
    """
    converted: dict[str, bytes] = {}
    failures: dict[int, tuple[str, str]] = {}
    total = len(plan.images)
    with closing(_pixel_checks(plan.images, decoded, known)) as problems:
        for done, (image, problem) in enumerate(zip(plan.images, problems, strict=True),
                                                start=1):
            if not problem and not failures:
                problem = _write_image(sink, image, converted, known)
            if problem:
                failures[image.image_id] = (image.project_path, problem)
                continue
            if not image.conversions:
                decoded.add(image.image_id)
            if image.caption_dest is not None and not failures:
                sink.add_bytes(image.caption_dest, image.caption.encode("utf-8"), compress=True)
            if progress is not None:
                progress(done, total)
    if failures:
        raise UndecodableImagesError(failures)
    for name, data in plan.extra_files.items():
        sink.add_bytes(name, data, compress=True)
    return converted


def _expected(plan: ExportPlan) -> dict[str, PlannedImage | bytes]:
    """Every planned entry: images by their ``PlannedImage``, other files by their bytes."""
    entries: dict[str, PlannedImage | bytes] = {}
    for image in plan.images:
        entries[image.dest] = image
        if image.caption_dest is not None:
            entries[image.caption_dest] = image.caption.encode("utf-8")
    entries.update(plan.extra_files)
    return entries


def _decodes(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    return True


def _mismatch(name: str, why: str) -> ExportError:
    return ExportError(f"The written export does not hold what was planned ({name}: {why}); "
                       "nothing was exported.")


def verify_zip(path: Path, plan: ExportPlan) -> None:
    """Read a written zip back; raises :class:`ExportError` when anything differs from the plan.
    """
    expected = _expected(plan)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(names) != len(set(names)):
            raise _mismatch(next(n for n in names if names.count(n) > 1), "written twice")
        if set(names) != set(expected):
            odd = sorted(set(names) ^ set(expected))[0]
            raise _mismatch(odd, "missing or unexpected")
        bad = archive.testzip()
        if bad is not None:
            raise _mismatch(bad, "damaged (checksum)")
        for info in infos:
            want = expected[info.filename]
            if isinstance(want, bytes):
                if archive.read(info) != want:
                    raise _mismatch(info.filename, "other content")
            elif want.conversions:
                if not _decodes(archive.read(info)):
                    raise _mismatch(info.filename, "does not decode")
            elif info.file_size != want.source.stat().st_size:
                raise _mismatch(info.filename, "another size than its source")


def _walk(root: Path) -> Iterator[str]:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            yield (Path(folder) / name).relative_to(root).as_posix()


def verify_folder(root: Path, plan: ExportPlan) -> None:
    """Read a written folder back; raises :class:`ExportError` when anything differs from the
    plan (the marker file aside)."""
    expected = _expected(plan)
    names = {name for name in _walk(root) if name != EXPORT_MARKER}
    if names != set(expected):
        odd = sorted(names ^ set(expected))[0]
        raise _mismatch(odd, "missing or unexpected")
    for name, want in expected.items():
        path = root.joinpath(*name.split("/"))
        if isinstance(want, bytes):
            if path.read_bytes() != want:
                raise _mismatch(name, "other content")
        elif want.conversions:
            if not _decodes(path.read_bytes()):
                raise _mismatch(name, "does not decode")
        elif path.stat().st_size != want.source.stat().st_size:
            raise _mismatch(name, "another size than its source")


def _set_permissions(path: Path) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the permissions the umask
    allows, as any new file would get (temporary files start at 0600)."""
    mask = current_umask()
    if path.is_dir():
        for folder, dirs, files in os.walk(path):
            os.chmod(folder, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o666 & ~mask)
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o777 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def _marker_bytes(project: Project, plan: ExportPlan) -> bytes:
    data = {
        "written_by": f"LoRACap {__version__}",
        "project": project.path.name,
        "format": plan.format.name.value,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "token": secrets.token_hex(8),
    }
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def write_plan(project: Project, plan: ExportPlan, target: Path, *, replace_existing: bool,
               progress: Progress | None = None, decoded: set[int] | None = None,
               known: DecodedFiles | None = None) -> ExportResult:
    """Write ``plan`` to ``target`` (already checked with :func:`check_target`); an existing
    export there is replaced only when ``replace_existing``. Every image's pixels are decoded
    before it is written; ``decoded`` holds the ids of images known to decode (not decoded
    again), and gets the ids found to decode. ``known``: the project's record of files whose
    pixels decoded whole (not decoded again while unchanged), told of every decode; its
    :meth:`~loracap.core.exports.decoded.DecodedFiles.save` is the caller's.

    Raises :class:`UndecodableImagesError` for images whose pixels do not decode, and
    :class:`ExportError` (a source that cannot be read, a full disk, a failed check); nothing
    is left behind then.
    """
    decoded = set() if decoded is None else decoded
    container = container_for(plan.format, target)
    remove_stale_parts(target)
    temp = _temp_name(target)
    digest = ""
    try:
        if container is Container.FOLDER:
            temp.mkdir()
            sink: _Sink = _FolderSink(temp)
            _fill(sink, plan, progress, decoded, known)
            marker = _marker_bytes(project, plan)
            (temp / EXPORT_MARKER).write_bytes(marker)
            verify_folder(temp, plan)
            size = sum(p.stat().st_size for p in temp.rglob("*") if p.is_file())
            digest = hashlib.sha256(marker).hexdigest()
        elif container is Container.ZIP:
            zip_sink = _ZipSink(temp)
            try:
                _fill(zip_sink, plan, progress, decoded, known)
            finally:
                zip_sink.close()
            verify_zip(temp, plan)
            size, digest = temp.stat().st_size, zip_fingerprint(temp)
        else:
            (only,) = plan.extra_files.values()
            temp.write_bytes(only)
            if temp.read_bytes() != only:
                raise _mismatch(target.name, "other content")
            size, digest = len(only), file_sha256(temp)
        _set_permissions(temp)
        _move_into_place(temp, target, replace_existing=replace_existing)
    except OSError as exc:
        _discard(temp)
        reason = exc.strerror or str(exc)
        raise ExportError(f"Cannot write {target}: {reason}. Nothing was written.") from exc
    except BaseException:
        _discard(temp)
        raise
    return ExportResult(
        path=target, format=plan.format.name, images=len(plan.images),
        captions=sum(bool(image.caption) for image in plan.images),
        uncaptioned=plan.uncaptioned, renames=plan.renames, conversions=plan.conversions,
        bytes_written=size, untrainable=plan.untrainable, review_skipped=plan.review_skipped,
        sha256=digest)


def _leave_out(project: Project, failures: dict[int, tuple[str, str]]) -> list[LeftOutImage]:
    """Tell of images left out of an export because their pixels do not decode, and mark them
    invalid in a project open for writing; returns them, in the order found."""
    left_out = []
    for image_id, (path, reason) in failures.items():
        marked = False
        if not project.read_only:
            try:
                project.mark_invalid(image_id, reason)
                marked = True
            except ProjectError as exc:  # the export goes on; only the mark is missing
                log.warning("%s", exc)
        log.warning("Left %s out of the export: its pixels cannot be decoded (%s)%s.", path,
                    reason, "; it is now marked invalid in the project" if marked else "")
        left_out.append(LeftOutImage(path, reason, marked_invalid=marked))
    return left_out


def _discard(temp: Path) -> None:
    try:
        if temp.is_dir() and not temp.is_symlink():
            shutil.rmtree(temp)
        else:
            temp.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("Could not remove %s: %s", temp, exc)


def _move_into_place(temp: Path, target: Path, *, replace_existing: bool) -> None:
    if not temp.is_dir():
        os.replace(temp, target)
        return
    if os.path.lexists(target):
        if not replace_existing and any(target.iterdir()):
            raise OutputExistsError(f"{target} already exists; use --force to replace it.")
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}{OLD_SUFFIX}")
        os.replace(target, old)
        os.replace(temp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, target)


# ---------------------------------------------------------------------- the one call


def export_project(project: Project, fmt: TrainerFormat, out: Path | None = None,
                   options: ExportOptions | None = None, *, force: bool = False,
                   replace_own: bool = False, progress: Progress | None = None) -> ExportResult:
    """Plan and write an export in one call (what the CLI and the window run).

    ``out``: see :func:`export_target`. An existing export is replaced with ``force``, or with
    ``replace_own`` when it is this project's own unchanged earlier export; never a file or
    folder that is not an export (:func:`check_target`). Images whose pixels turn out not to
    decode (:class:`UndecodableImagesError`) are left out, each logged as a warning, and --
    when the project is open for writing -- marked invalid with the reason
    (:meth:`Project.mark_invalid`); the export is then planned and written again without them,
    and ``ExportResult.undecodable`` lists them. An image whose file has the size and mtime it
    had when its pixels last decoded whole is not decoded again; the files whose pixels this
    export decoded whole are recorded so, in one transaction at its end, whether it succeeded
    or not (:mod:`loracap.core.exports.decoded`; not in a project open read-only).
    A project open for writing records the export (:meth:`Project.record_export`);
    ``ExportResult.recorded`` says whether it did. Raises the planner's errors,
    :class:`OutputExistsError` and :class:`ExportError`.
    """
    target = export_target(project, fmt, out)
    undecodable: dict[int, str] = {}
    left_out: list[LeftOutImage] = []
    decoded: set[int] = set()
    known = DecodedFiles(project)
    try:
        while True:
            try:
                plan = plan_export(project, fmt, options, target=target,
                                   undecodable=undecodable)
                replacing = check_target(project, plan, target, force=force,
                                         replace_own=replace_own)
                result = write_plan(project, plan, target, replace_existing=replacing,
                                    progress=progress, decoded=decoded, known=known)
            except UndecodableImagesError as exc:
                found = {key: value for key, value in exc.failures.items()
                         if key not in undecodable}
                if not found:
                    raise
                for image_id in found:
                    known.undecodable(image_id)
                left_out.extend(_leave_out(project, found))
                undecodable.update((key, reason) for key, (_path, reason) in found.items())
                continue
            break
    finally:
        known.save()
    own = replacing and not force
    recorded = False
    if not project.read_only:
        try:
            project.record_export(result.path, fmt.name.value, size=result.bytes_written,
                                  sha256=result.sha256)
            recorded = True
        except ProjectError as exc:  # the export is written; only the record is missing
            log.warning("%s", exc)
    return replace(result, replaced_own=own, recorded=recorded, undecodable=left_out)
