"""Finding the photos of a dataset folder and the caption files beside them.

The walk follows the conventions of the trainers LoRACap exports to: hidden files and folders
are skipped (ai-toolkit skips them; ``._*`` AppleDouble files and ``__MACOSX`` folders are
macOS zip leftovers that Replicate's trainer skips too), and a caption is the ``<stem>.txt``
file beside its image (Replicate, ai-toolkit, fal).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loracap.core.errors import CancelledError, InputError
from loracap.core.imaging import IMAGE_EXTENSIONS, UNSUPPORTED_EXTENSIONS, ImageInfo, probe_image
from loracap.core.records import readable_path

logger = logging.getLogger(__name__)

EXPORT_MARKER = ".loracap-export"
"""File name LoRACap's folder exports write; a sub-folder holding it is never scanned."""

SIDECAR_EXTENSION = ".txt"
"""Extension of the caption file read beside each image (Replicate, ai-toolkit, fal)."""

MAX_SIDECAR_BYTES = 1024 * 1024
"""Larger ``.txt`` files are not read as captions (sidecar_error says so)."""

CANDIDATE_EXTENSIONS: frozenset[str] = IMAGE_EXTENSIONS | UNSUPPORTED_EXTENSIONS
"""Lowercase extensions of the files the scan lists (usable or not)."""

ProgressCallback = Callable[[int, str], None]
"""``progress(files_so_far, rel_path)``, called once per file listed."""


@dataclass(frozen=True)
class ScannedFile:
    """One candidate image found by ``scan_folder``.

    ``path`` is absolute (through any followed link, as the user sees the tree) and exact: open
    the file through it. ``rel_path`` is POSIX-style and relative to the scanned root
    (``"sub/IMG_1.JPG"``), for showing: a name that is not valid UTF-8 (``caf\\xe9.jpg`` saved
    in Latin-1 on Linux) has each bad byte as ``\\xHH``
    (:func:`~loracap.core.records.readable_path`), as messages and the project show it.
    ``sidecar_caption`` is the whitespace-stripped text of ``<stem>.txt`` beside the image,
    None if there is no such file or it is blank; ``sidecar_error`` says why a present one
    could not be read (``""`` otherwise).
    """

    path: Path
    rel_path: str
    info: ImageInfo
    sidecar_caption: str | None
    sidecar_error: str


@dataclass(frozen=True)
class _Listing:
    """The names of one folder, read once, in which caption files are looked up.

    ``captions`` maps each casefolded ``*.txt`` name to the first name (sorted) that folds to
    it, so finding an image's caption file costs one dictionary look-up, not a pass over the
    folder.
    """

    names: frozenset[str]
    captions: dict[str, str]

    @classmethod
    def of(cls, names: list[str]) -> _Listing:
        """The listing of a folder holding ``names``."""
        captions: dict[str, str] = {}
        for name in sorted(names):
            folded = name.casefold()
            if folded.endswith(SIDECAR_EXTENSION):
                captions.setdefault(folded, name)
        return cls(frozenset(names), captions)

    def sidecar(self, image_name: str) -> str | None:
        """The name of ``<stem>.txt`` beside ``image_name`` (exact case first), or None."""
        wanted = os.path.splitext(image_name)[0] + SIDECAR_EXTENSION
        if wanted in self.names:
            return wanted
        return self.captions.get(wanted.casefold())


@dataclass(frozen=True)
class _Link:
    """A symbolic link met during the walk, followed once the real tree is done."""

    entry: os.DirEntry[str]
    parts: tuple[str, ...]
    listing: _Listing


@dataclass
class _Walk:
    """State of one scan: where it started, what it has seen, how to report."""

    root: Path
    root_real: str
    cancel: threading.Event | None
    progress: ProgressCallback | None
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)
    seen_files: set[tuple[int, int]] = field(default_factory=set)
    links: deque[_Link] = field(default_factory=deque)
    count: int = 0


def scan_folder(
    root: Path,
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> Iterator[ScannedFile]:
    """Walk ``root`` recursively and yield a ``ScannedFile`` for every candidate image.

    Candidates have an extension in ``IMAGE_EXTENSIONS`` or ``UNSUPPORTED_EXTENSIONS``, in any
    letter case; each is probed with ``probe_image`` (unsupported ones come back invalid with
    advice: a check of the file's header and structure, not a decode of its pixels). Caption
    files are looked up in the listing of their folder, read once: an image without one costs
    no file-system call. The order is stable: depth-first, entries of each folder sorted by
    name ignoring case, files and sub-folders interleaved; then the files reached through
    symbolic links.

    Skipped: names starting with ``.`` (hidden files and folders, ``._*`` AppleDouble files),
    ``__MACOSX`` folders, project files and their backups (names containing ``.loraproj``),
    and sub-folders holding an ``EXPORT_MARKER`` file (the root itself is scanned even if it
    holds one, so an export folder can be opened on purpose). Symbolic links whose target is
    outside ``root`` are not followed; links inside are, after the real tree, and every real
    folder and file is visited once, so a file is listed under its real path rather than a
    link's (loops end, duplicates are dropped; hard links count as one file). Folders that
    cannot be listed are logged and skipped.

    The root is checked when this is called; the walk runs as the iterator is consumed.
    ``progress(files_so_far, rel_path)`` is called for each file before it is yielded.

    Raises:
        InputError: ``root`` does not exist or is not a folder (at call time).
        CancelledError: ``cancel`` was set (raised from the iterator).
    """
    root_path = Path(os.path.abspath(root))
    if not root_path.exists():
        raise InputError(f'The folder "{root_path}" does not exist.')
    if not root_path.is_dir():
        raise InputError(f'"{root_path}" is not a folder; choose the folder that holds the photos.')
    walk = _Walk(root_path, os.path.realpath(root_path), cancel, progress)
    return _walk_root(walk)


def _walk_root(walk: _Walk) -> Iterator[ScannedFile]:
    """Yield the candidates under the root (generator body of ``scan_folder``)."""
    _check_cancel(walk)
    try:
        walk.seen_dirs.add(_identity(os.stat(walk.root)))
    except OSError as exc:
        logger.warning("cannot read folder %s: %s", walk.root, exc)
        return
    yield from _walk_dir(walk, walk.root, (), is_root=True)
    while walk.links:
        link = walk.links.popleft()
        if not _target_inside_root(walk, link.entry):
            continue
        if _is_dir(link.entry):
            yield from _enter_dir(walk, link.entry, link.parts)
        else:
            scanned = _scan_file(walk, link.entry, link.parts, link.listing)
            if scanned is not None:
                yield scanned


def _walk_dir(
    walk: _Walk, folder: Path, rel_parts: tuple[str, ...], *, is_root: bool = False
) -> Iterator[ScannedFile]:
    """Yield the candidates in ``folder`` and below, in sorted order; queue links for later."""
    _check_cancel(walk)
    entries = _list_dir(folder)
    if entries is None:
        return
    listing = _Listing.of([entry.name for entry in entries])
    if EXPORT_MARKER in listing.names and not is_root:
        logger.info("skipping %s: it holds a LoRACap export (%s)", folder, EXPORT_MARKER)
        return
    for entry in entries:
        if _ignored(entry.name):
            continue
        parts = (*rel_parts, entry.name)
        if entry.is_symlink():
            walk.links.append(_Link(entry, parts, listing))
        elif _is_dir(entry):
            yield from _enter_dir(walk, entry, parts)
        else:
            scanned = _scan_file(walk, entry, parts, listing)
            if scanned is not None:
                yield scanned


def _list_dir(folder: Path) -> list[os.DirEntry[str]] | None:
    """Return the entries of ``folder`` sorted by name ignoring case; None if unreadable."""
    try:
        with os.scandir(folder) as iterator:
            entries = list(iterator)
    except OSError as exc:
        logger.warning("skipping folder %s: %s", folder, exc.strerror or exc)
        return None
    entries.sort(key=lambda entry: (entry.name.casefold(), entry.name))
    return entries


def _ignored(name: str) -> bool:
    """True for hidden names, ``__MACOSX`` and LoRACap project files or their backups."""
    folded = name.casefold()
    return name.startswith(".") or folded == "__macosx" or ".loraproj" in folded


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """True if ``entry`` is a folder or a link to one (False if it cannot be stat'ed)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _enter_dir(
    walk: _Walk, entry: os.DirEntry[str], parts: tuple[str, ...]
) -> Iterator[ScannedFile]:
    """Walk into a sub-folder unless it was already visited (through another link)."""
    try:
        identity = _identity(os.stat(entry.path))
    except OSError as exc:
        logger.warning("skipping folder %s: %s", entry.path, exc.strerror or exc)
        return
    if identity in walk.seen_dirs:
        logger.debug("skipping %s: folder already visited (symbolic link)", entry.path)
        return
    walk.seen_dirs.add(identity)
    yield from _walk_dir(walk, Path(entry.path), parts)


def _scan_file(
    walk: _Walk, entry: os.DirEntry[str], parts: tuple[str, ...], listing: _Listing
) -> ScannedFile | None:
    """Probe one candidate file and read its sidecar (if the folder's listing holds one);
    None if the file was already listed."""
    if os.path.splitext(entry.name)[1].lower() not in CANDIDATE_EXTENSIONS:
        return None
    try:
        identity: tuple[int, int] | None = _identity(os.stat(entry.path))
    except OSError:
        identity = None  # broken link or vanished file: listed, probe says why
    if identity is not None:
        if identity in walk.seen_files:
            logger.debug("skipping %s: file already listed (link)", entry.path)
            return None
        walk.seen_files.add(identity)
    _check_cancel(walk)
    path = Path(entry.path)
    rel_path = readable_path("/".join(parts))
    sidecar = listing.sidecar(entry.name)
    caption, error = read_sidecar(path, sidecar) if sidecar is not None else (None, "")
    scanned = ScannedFile(path, rel_path, probe_image(path), caption, error)
    walk.count += 1
    if walk.progress is not None:
        walk.progress(walk.count, rel_path)
    return scanned


def _target_inside_root(walk: _Walk, entry: os.DirEntry[str]) -> bool:
    """True if the symbolic link ``entry`` resolves to a path inside the scanned root."""
    target = os.path.realpath(entry.path)
    try:
        inside = os.path.commonpath([walk.root_real, target]) == walk.root_real
    except ValueError:  # different drives on Windows
        inside = False
    if not inside:
        logger.debug("not following %s: its target %s is outside %s", entry.path, target, walk.root)
    return inside


def _identity(st: os.stat_result) -> tuple[int, int]:
    """Return ``(device, inode)``: what makes a file or folder the same real one.

    Taken from ``os.stat``, not ``DirEntry.stat``, which leaves both at 0 on Windows.
    """
    return st.st_dev, st.st_ino


def _check_cancel(walk: _Walk) -> None:
    """Raise ``CancelledError`` if the caller asked the scan to stop."""
    if walk.cancel is not None and walk.cancel.is_set():
        raise CancelledError("The folder scan was cancelled.")


def read_sidecar(image_path: Path, sidecar_name: str | None = None) -> tuple[str | None, str]:
    """Return ``(caption, error)`` from the caption file beside ``image_path``.

    ``sidecar_name`` is the file's name in the image's folder; by default ``<stem>.txt``.
    The text is decoded as UTF-8 with or without a BOM and whitespace-stripped; ``caption``
    is None when there is no such file, it is blank, or it cannot be read, and ``error`` then
    says why it could not be read (``""`` if there was nothing to read). Never raises for a
    bad file, and never opens anything but a regular file.
    """
    name = sidecar_name if sidecar_name is not None else image_path.stem + SIDECAR_EXTENSION
    sidecar = image_path.with_name(name)
    name = readable_path(name)  # for the messages
    try:
        st = os.stat(sidecar)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f'cannot read the caption file "{name}": {exc.strerror or exc}'
    if not stat.S_ISREG(st.st_mode):
        return None, f'the caption file "{name}" is not a regular file'
    if st.st_size > MAX_SIDECAR_BYTES:
        return None, f'the caption file "{name}" is larger than 1 MB; it is not read as a caption'
    try:
        data = sidecar.read_bytes()
    except OSError as exc:
        return None, f'cannot read the caption file "{name}": {exc.strerror or exc}'
    return _decode_caption(name, data)


def _decode_caption(name: str, data: bytes) -> tuple[str | None, str]:
    """Decode caption bytes as UTF-8 (BOM optional); explain other encodings."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, f'the caption file "{name}" is UTF-16 text; save it as UTF-8'
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        return None, (
            f'the caption file "{name}" is not UTF-8 text (byte 0x{byte:02X} at position '
            f"{exc.start}); save it as UTF-8"
        )
    text = text.strip()
    return (text or None), ""
