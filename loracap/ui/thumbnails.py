"""Thumbnails for the image grid, decoded off the GUI thread and kept in a bounded cache.

:class:`ThumbnailProvider` is what the item model asks for a thumbnail from ``data()``. It never
reads a file on the calling (GUI) thread: a miss returns None and queues one background load;
when the load is done, the provider emits ``thumbnail_ready(image_id)`` and the next call
returns the pixmap.

How a load runs (in the provider's own ``QThreadPool``, at most two threads so scrolling never
starves the captioning workers of disk and CPU):

1. The disk cache is tried first: ``<cache_dir>/<sha1>.png``, where the SHA-1 is taken over the
   image's absolute path, modification time, file size and the thumbnail size in physical
   pixels, so an edited photo (new mtime or size) gets a new entry and a stale one is never
   shown, and the 1x and 2x thumbnails of one photo are two entries. A hit sets the entry's
   mtime to now, so the mtime tells how recently an entry was used (see pruning below).
2. Otherwise the photo is decoded with ``QImageReader`` with ``autoTransform`` on (EXIF
   orientation applied, as a person sees the photo) and a scaled size whose long side is the
   thumbnail size in physical pixels (Qt's JPEG reader then decodes at 1/2, 1/4 or 1/8 scale,
   which is cheap).
   Files Qt cannot read fall back to Pillow (draft mode for JPEG, ``exif_transpose``).
3. The result is written to the disk cache atomically (``QSaveFile``: a temporary file renamed
   over the target), so a killed process never leaves half a PNG behind.

Only the ``QImage`` crosses threads; it becomes a ``QPixmap`` on the GUI thread (a ``QPixmap``
must not be created anywhere else), goes into an in-memory LRU cache bounded in bytes, and the
row's ``dataChanged`` follows from ``thumbnail_ready``. A file that cannot be decoded gets a
"broken image" pixmap cached under its id, so it is not retried on every repaint (only when its
mtime or size changes, or after :meth:`ThumbnailProvider.invalidate`).

HiDPI: the provider is given the screen's device pixel ratio (``device_pixel_ratio``, or
:meth:`ThumbnailProvider.set_device_pixel_ratio` when it changes). Thumbnails are decoded at
``round(size * dpr)`` physical pixels and the pixmap carries that ratio
(``QPixmap.setDevicePixelRatio``), so its device-independent size is what a 1x load gives and
the delegate lays it out by ``deviceIndependentSize()``; the placeholder and the broken pixmap
are drawn the same way. The in-memory byte bound counts physical bytes, so at 2x it holds about
a quarter as many thumbnails.

Pixels that do not decode: when both decoders fail on a file, the loader thread asks
:func:`pixel_failure` whether the file's pixels themselves are damaged (a JPEG whose compressed
data is garbage between intact markers passes the scan, which checks structure only). Only
then, and only for a load whose result is still wanted, the provider emits
``undecodable(image_id, reason, path)`` with the reason an export would give
(:func:`loracap.core.imaging.pixel_problem`); a file that is missing, not a regular file, not
permitted or unreadable (an I/O error) is not reported, as it says nothing about the image.
Whoever owns the project decides what to do (the window marks the image invalid).

Pruning: :func:`prune_disk_cache` (run in the background by
:meth:`ThumbnailProvider.start_pruning`, once at startup) deletes the least recently used
entries when the cache exceeds :data:`DEFAULT_DISK_CACHE_BYTES`, and ``QSaveFile`` leftovers
older than a day. It touches nothing else in the folder.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import (
    QObject,
    QPointF,
    QRectF,
    QRunnable,
    QSaveFile,
    QSize,
    QStandardPaths,
    Qt,
    QThreadPool,
    pyqtSignal,
    pyqtSlot,
)
from PyQt6.QtGui import QColor, QImage, QImageReader, QPainter, QPen, QPixmap

log = logging.getLogger(__name__)

DEFAULT_THUMB_SIZE = 192
"""Long side of a thumbnail in device-independent pixels."""

DEFAULT_MEMORY_BYTES = 192 * 1024 * 1024
"""Default byte bound of the in-memory cache: 192 MiB of pixmap data, about 1,800 thumbnails of
a 4:3 photo at 192 px (192 × 144 × 4 bytes each). The least recently used entries go first.
The bound is in physical bytes: at a device pixel ratio of 2 a thumbnail is 384 × 288 × 4
bytes, so the default holds about 450."""

DEFAULT_MEMORY_ENTRIES = 5000
"""Default entry bound of the in-memory cache; it also bounds the "broken image" entries, which
share one pixmap and cost no bytes of their own."""

LOADER_THREADS = 2
"""Threads of the provider's own pool: decoding is disk- and CPU-bound, two keep the grid
responsive without competing with the captioning workers."""

QT_ALLOCATION_LIMIT_MB = 512
"""``QImageReader`` allocation limit. Qt's default (256 MB) is below what the largest image
LoRACap accepts needs (``MAX_PIXELS`` × 4 bytes, about 358 MB) when a format has to be decoded
at full size before scaling (PNG, WebP)."""


DEFAULT_DISK_CACHE_BYTES = 1024 * 1024 * 1024
"""Default byte bound of the disk cache: 1 GiB. A 192 px PNG thumbnail of a photo is about
30-50 KB (40 KB on average), so 1 GiB holds 2**30 / 40,000 ≈ 27,000 of them: between 20,000
and 30,000 thumbnails, a very large dataset, before anything is pruned. At 2x (384 px) an entry
is about four times larger, so about 6,000-7,000 fit."""

PRUNE_TARGET = 0.8
"""Pruning deletes down to this fraction of the bound, so it does not run again on the next
few thumbnails written."""

STALE_PARTIAL_SECONDS = 24 * 60 * 60
"""Age after which a ``QSaveFile`` temporary file (left by a killed process on systems without
anonymous temporary files) is deleted by :func:`prune_disk_cache`."""

_THUMB_NAME = re.compile(r"[0-9a-f]{40}\.png")
"""A disk cache entry: see :func:`disk_cache_name`."""

_PARTIAL_NAME = re.compile(r"[0-9a-f]{40}\.png\.[A-Za-z0-9]{6}")
"""``QSaveFile``'s temporary file of an entry: the target name and ``.XXXXXX``."""


def default_cache_dir() -> Path:
    """The per-user folder for the thumbnail disk cache: ``<CacheLocation>/thumbnails``."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base) / "thumbnails"


@dataclass(frozen=True)
class _Key:
    """What a thumbnail was made from; a cached pixmap is only used while this matches."""

    path: str
    mtime: float
    file_size: int


def disk_cache_name(path: Path, mtime: float, file_size: int, size: int) -> str:
    """File name of a thumbnail in the disk cache: ``<sha1 hex>.png``.

    The SHA-1 covers the absolute POSIX path, ``repr(mtime)`` (seconds), the file size in bytes
    and the thumbnail size in physical pixels (``round(size * dpr)``), joined with NUL
    characters.
    """
    text = "\0".join((Path(path).absolute().as_posix(), repr(float(mtime)), str(file_size),
                      str(size)))
    # surrogateescape: a file name that is not UTF-8 (kept byte for byte) still has a key.
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest() + ".png"


def load_thumbnail_image(
    path: Path, mtime: float, file_size: int, size: int, cache_dir: Path | None
) -> tuple[QImage | None, str]:
    """Return ``(image, "")`` with the thumbnail of ``path``, or ``(None, reason)``.

    Every file access of a thumbnail load happens here, and this runs on a loader thread only.
    The image's long side is ``size`` (physical) pixels at most (small images are not enlarged)
    and EXIF orientation is applied. ``cache_dir`` (may be None: no disk cache) is read first
    and written after a decode; a hit sets the entry's mtime to now (for
    :func:`prune_disk_cache`). A disk-cache failure is logged and otherwise ignored.
    """
    cached = None
    if cache_dir is not None:
        cached = cache_dir / disk_cache_name(path, mtime, file_size, size)
        if cached.is_file():
            from_cache = QImageReader(str(cached)).read()
            if not from_cache.isNull():
                _touch(cached)
                return from_cache, ""
            log.info("Unreadable thumbnail %s in the disk cache is replaced", cached)
    image, reason = _decode_with_qt(path, size)
    if image is None:
        image, pil_reason = _decode_with_pillow(path, size)
        if image is None:
            return None, pil_reason or reason
    if cached is not None:
        _write_cache(cached, image)
    return image, ""


def _scaled_size(width: int, height: int, size: int) -> QSize:
    """``(width, height)`` scaled so the long side is ``size``, keeping the aspect; never up."""
    long_side = max(width, height)
    if long_side <= size:
        return QSize(width, height)
    scale = size / long_side
    return QSize(max(1, round(width * scale)), max(1, round(height * scale)))


def _decode_with_qt(path: Path, size: int) -> tuple[QImage | None, str]:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    reader.setAllocationLimit(QT_ALLOCATION_LIMIT_MB)
    if not reader.canRead():
        return None, reader.errorString()
    stored = reader.size()  # before the EXIF transform; the long side is the same either way
    if stored.isValid() and stored.width() > 0 and stored.height() > 0:
        reader.setScaledSize(_scaled_size(stored.width(), stored.height(), size))
    image = reader.read()
    if image.isNull():
        return None, reader.errorString()
    if max(image.width(), image.height()) > size:  # a reader that ignored the scaled size
        image = image.scaled(
            size, size, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return image, ""


def _decode_with_pillow(path: Path, size: int) -> tuple[QImage | None, str]:
    # Imported on first use (the fallback when Qt cannot decode a file), not at the window's
    # startup. Importing loracap.core.imaging also silences Pillow's decompression-bomb warning
    # for the whole process, as it did when the window imported it at startup.
    from PIL import Image, ImageOps

    import loracap.core.imaging  # noqa: F401

    try:
        with Image.open(path) as im:
            if im.format in ("JPEG", "MPO"):
                im.draft("RGB", (size, size))
            im.load()
            oriented = ImageOps.exif_transpose(im)
            oriented.thumbnail((size, size), Image.Resampling.LANCZOS)
            rgba = oriented.convert("RGBA")
    except OSError as exc:
        if exc.errno is not None:  # missing, not permitted, an I/O error: not the data
            return None, f"cannot read the file: {exc.strerror or exc}"
        return None, f"cannot decode the image ({_first_line(exc)})"
    except Exception as exc:  # Pillow raises assorted errors on corrupt or unknown data
        return None, f"cannot decode the image ({_first_line(exc)})"
    data = rgba.tobytes("raw", "RGBA")
    image = QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888)
    return image.copy(), ""  # copy: the QImage must not point into the Python bytes


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    return (str(exc).splitlines() or [""])[0].strip() or type(exc).__name__


def pixel_failure(path: Path) -> str:
    """Why the pixels of the image file at ``path`` do not decode, or ``""``.

    The reason is :func:`loracap.core.imaging.pixel_problem`'s, the one an export gives for the
    same damage: a lowercase sentence fragment such as ``"truncated or corrupt image data
    (broken data stream when reading image file)"``. Returns ``""`` when the pixels decode,
    and also when the file itself cannot be read -- it is missing, not a regular file, not
    permitted, or a read fails with an I/O error -- since that says nothing about the image.
    Decodes the file (a JPEG at 1/8 scale, other formats whole): call it on a loader thread,
    never on the GUI thread. Never raises.
    """
    # Imported here: Pillow and loracap.core.imaging are not loaded at the window's startup.
    from loracap.core.imaging import pixel_problem

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return ""
        problem = pixel_problem(path)
    except OSError as exc:  # gone, not permitted or a failed read: not the data's fault
        log.debug("No pixel check of %s: %s", path, exc)
        return ""
    return problem


def _touch(path: Path) -> None:
    """Set a disk cache entry's mtime to now: it was just used."""
    try:
        os.utime(path)
    except OSError as exc:
        log.debug("Cannot touch the thumbnail %s: %s", path, exc)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False  # gone meanwhile (another LoRACap, or a person): nothing freed
    except OSError as exc:  # e.g. open in another process on Windows
        log.debug("Cannot delete the thumbnail %s: %s", path, exc)
        return False
    return True


def prune_disk_cache(cache_dir: Path, max_bytes: int = DEFAULT_DISK_CACHE_BYTES, *,
                     stop: threading.Event | None = None) -> tuple[int, int]:
    """Bound the disk cache; return ``(files removed, bytes freed)``.

    When the entries (``<40 hex digits>.png``, see :func:`disk_cache_name`) in ``cache_dir``
    total more than ``max_bytes``, the least recently used ones (oldest mtime; a cache hit
    sets it to now) are deleted until the total is at most :data:`PRUNE_TARGET` × ``max_bytes``.
    ``QSaveFile`` temporary files of entries older than :data:`STALE_PARTIAL_SECONDS` are
    deleted too. Nothing else in the folder is touched, symbolic links and sub-folders
    included. A file that cannot be deleted is logged at debug level and skipped; a missing
    folder prunes nothing. Setting ``stop`` ends the deletions early. Runs on any thread.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
    folder = Path(cache_dir)
    now = time.time()
    entries: list[tuple[float, str, int]] = []  # (mtime, name, bytes)
    stale: list[tuple[str, int]] = []
    total = 0
    try:
        with os.scandir(folder) as listing:
            for item in listing:
                is_entry = _THUMB_NAME.fullmatch(item.name) is not None
                if not is_entry and _PARTIAL_NAME.fullmatch(item.name) is None:
                    continue
                try:
                    if not item.is_file(follow_symlinks=False):
                        continue
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if is_entry:
                    entries.append((info.st_mtime, item.name, info.st_size))
                    total += info.st_size
                elif now - info.st_mtime > STALE_PARTIAL_SECONDS:
                    stale.append((item.name, info.st_size))
    except FileNotFoundError:
        return 0, 0
    except OSError as exc:
        log.warning("Cannot list the thumbnail cache %s: %s", folder, exc)
        return 0, 0

    removed = freed = 0
    for name, size in stale:
        if _unlink(folder / name):
            removed += 1
            freed += size
    before = total
    if total > max_bytes:
        target = int(max_bytes * PRUNE_TARGET)
        entries.sort()  # oldest first; the name makes equal mtimes deterministic
        for _mtime, name, size in entries:
            if total <= target or (stop is not None and stop.is_set()):
                break
            if _unlink(folder / name):
                removed += 1
                freed += size
                total -= size
    if removed:
        log.info("Thumbnail cache %s: removed %d files, %.1f MB freed (%.1f MB of entries "
                 "before, %.1f MB now, bound %.1f MB)", folder, removed, freed / 1e6,
                 before / 1e6, total / 1e6, max_bytes / 1e6)
    else:
        log.debug("Thumbnail cache %s: %.1f MB in %d entries, nothing to prune (bound %.1f MB)",
                  folder, total / 1e6, len(entries), max_bytes / 1e6)
    return removed, freed


def _write_cache(target: Path, image: QImage) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("Cannot create the thumbnail cache folder %s: %s", target.parent, exc)
        return
    out = QSaveFile(str(target))
    if not out.open(QSaveFile.OpenModeFlag.WriteOnly):
        log.warning("Cannot write the thumbnail %s: %s", target, out.errorString())
        return
    if not image.save(out, "PNG") or not out.commit():
        out.cancelWriting()
        log.warning("Cannot write the thumbnail %s: %s", target, out.errorString())


class _LoadSignals(QObject):
    """The signals of the loader jobs; one instance, owned by the provider (GUI thread)."""

    # image id, request token, QImage or None, failure reason ("" on success), and why the
    # pixels do not decode ("" unless they were read and do not: pixel_failure)
    loaded = pyqtSignal(int, int, object, str, str)


class _LoadJob(QRunnable):
    """One thumbnail load. Holds plain values only: no model, no index, no pixmap."""

    def __init__(self, signals: _LoadSignals, image_id: int, token: int, key: _Key, size: int,
                 cache_dir: Path | None) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the provider keeps it referenced until it has finished
        self._signals = signals
        self._image_id = image_id
        self._token = token
        self._key = key
        self._size = size
        self._cache_dir = cache_dir

    def run(self) -> None:
        undecodable = ""
        try:
            path = Path(self._key.path)
            image, reason = load_thumbnail_image(
                path, self._key.mtime, self._key.file_size, self._size, self._cache_dir)
            if image is None:  # both decoders failed: the file, or its pixels?
                undecodable = pixel_failure(path)
        except Exception as exc:  # never let a worker die silently
            log.exception("Thumbnail load of %s failed", self._key.path)
            image, reason = None, f"unexpected error: {exc}"
        self._signals.loaded.emit(self._image_id, self._token, image, reason, undecodable)


class _PruneSignals(QObject):
    """The signal of the pruning job; owned by the provider (GUI thread)."""

    done = pyqtSignal(int, int)  # files removed, bytes freed


class _PruneJob(QRunnable):
    """One :func:`prune_disk_cache` run on a pool thread."""

    def __init__(self, signals: _PruneSignals, cache_dir: Path, max_bytes: int,
                 stop: threading.Event) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the provider keeps it referenced until it has finished
        self._signals = signals
        self._cache_dir = cache_dir
        self._max_bytes = max_bytes
        self._stop = stop

    def run(self) -> None:
        try:
            removed, freed = prune_disk_cache(self._cache_dir, self._max_bytes, stop=self._stop)
        except Exception:  # never let a worker die silently
            log.exception("Pruning the thumbnail cache %s failed", self._cache_dir)
            removed, freed = 0, 0
        self._signals.done.emit(removed, freed)


def _check_ratio(device_pixel_ratio: float) -> float:
    ratio = float(device_pixel_ratio)
    if not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"device_pixel_ratio must be a positive number, got {device_pixel_ratio}")
    return ratio


class ThumbnailProvider(QObject):
    """Thumbnails by image id, loaded in the background and kept in a bounded LRU cache.

    ``cache_dir`` is the disk cache folder (None: no disk cache; see :func:`default_cache_dir`).
    ``size`` is the long side of a thumbnail in device-independent pixels;
    ``device_pixel_ratio`` the screen's ratio: thumbnails are decoded at
    :attr:`physical_size` = ``round(size * device_pixel_ratio)`` pixels and their pixmaps carry
    the ratio. The in-memory cache is an LRU bounded by ``max_bytes`` of pixmap data (physical
    width × height × depth / 8; default :data:`DEFAULT_MEMORY_BYTES`) and by ``max_entries``
    (default :data:`DEFAULT_MEMORY_ENTRIES`), whichever is reached first. ``disk_cache_bytes``
    is the bound :meth:`start_pruning` applies to the disk cache.
    Use from the GUI thread only. Call :meth:`shutdown` before the application quits.
    """

    thumbnail_ready = pyqtSignal(int)
    """Emitted on the GUI thread with an image id when its thumbnail (or broken pixmap) is
    cached; ask :meth:`pixmap` again to get it."""

    pruned = pyqtSignal(int, int)
    """Emitted on the GUI thread when a :meth:`start_pruning` run has finished, with the files
    removed and the bytes freed."""

    undecodable = pyqtSignal(int, str, str)
    """Emitted on the GUI thread, after ``thumbnail_ready`` of the broken pixmap, with an image
    id, the reason its pixels do not decode (:func:`pixel_failure`: as an export words it) and
    the path the thumbnail was asked for, when both decoders failed on a file that was read.
    Not emitted for a file that is missing, not a regular file, not permitted or unreadable
    (an I/O error), nor for a load that was invalidated, cleared, superseded or shut down.
    Nothing is retried: the broken pixmap stays cached as for any failed load."""

    def __init__(self, cache_dir: Path | None, size: int = DEFAULT_THUMB_SIZE,
                 parent: QObject | None = None, *, max_bytes: int = DEFAULT_MEMORY_BYTES,
                 max_entries: int = DEFAULT_MEMORY_ENTRIES, device_pixel_ratio: float = 1.0,
                 disk_cache_bytes: int = DEFAULT_DISK_CACHE_BYTES) -> None:
        super().__init__(parent)
        if size < 1:
            raise ValueError(f"size must be at least 1 pixel, got {size}")
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._size = size
        self._dpr = _check_ratio(device_pixel_ratio)
        self._disk_cache_bytes = disk_cache_bytes
        self._max_bytes = max_bytes
        self._max_entries = max(1, max_entries)
        self._cache: OrderedDict[int, tuple[_Key, QPixmap, int]] = OrderedDict()
        self._cache_bytes = 0
        self._pending: dict[int, tuple[int, _Key]] = {}  # image id -> (token, key)
        self._jobs: dict[int, _LoadJob] = {}  # token -> job, referenced until it has run
        self._next_token = 0
        self._placeholder: QPixmap | None = None
        self._broken: QPixmap | None = None
        self._closed = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(LOADER_THREADS)
        self._signals = _LoadSignals(self)
        self._signals.loaded.connect(self._on_loaded)
        # Pruning has its own single thread, so it never holds up a thumbnail load.
        self._maintenance = QThreadPool(self)
        self._maintenance.setMaxThreadCount(1)
        self._prune_job: _PruneJob | None = None
        self._prune_stop = threading.Event()
        self._prune_signals = _PruneSignals(self)
        self._prune_signals.done.connect(self._on_pruned)

    # ------------------------------------------------------------------ properties

    @property
    def size(self) -> int:
        """Long side of a thumbnail in device-independent pixels."""
        return self._size

    @property
    def device_pixel_ratio(self) -> float:
        """The device pixel ratio thumbnails are made for."""
        return self._dpr

    @property
    def physical_size(self) -> int:
        """Long side of a thumbnail in physical pixels: ``round(size * device_pixel_ratio)``."""
        return max(1, round(self._size * self._dpr))

    @property
    def pruning(self) -> bool:
        """Whether a :meth:`start_pruning` run has not finished yet."""
        return self._prune_job is not None

    @property
    def cache_dir(self) -> Path | None:
        """The disk cache folder, or None."""
        return self._cache_dir

    @property
    def pending_count(self) -> int:
        """Loads queued or running whose result is still wanted."""
        return len(self._pending)

    @property
    def cached_count(self) -> int:
        """Pixmaps in the in-memory cache (broken ones included)."""
        return len(self._cache)

    @property
    def cached_bytes(self) -> int:
        """Bytes of pixmap data in memory: at most ``max_bytes`` unless one entry is larger."""
        return self._cache_bytes

    # ------------------------------------------------------------------ lookups

    def pixmap(self, image_id: int, path: Path, mtime: float, file_size: int) -> QPixmap | None:
        """The thumbnail of an image if it is in memory, else None and one load is queued.

        ``path`` is the image's absolute path, ``mtime`` (seconds) and ``file_size`` (bytes)
        as recorded in the project: a cached pixmap made from another mtime or size is not
        returned. Never reads a file; a second call while the load is pending queues nothing.
        Loads requested last run first, so the rows on screen after a fast scroll come before
        the rows scrolled past.
        """
        key = _Key(str(Path(path)), float(mtime), int(file_size))
        entry = self._cache.get(image_id)
        if entry is not None and entry[0] == key:
            self._cache.move_to_end(image_id)
            return entry[1]
        if image_id in self._pending or self._closed:
            return None
        self._next_token += 1
        token = self._next_token
        job = _LoadJob(self._signals, image_id, token, key, self.physical_size, self._cache_dir)
        self._pending[image_id] = (token, key)
        self._jobs[token] = job
        self._pool.start(job, priority=token % 2**31)
        return None

    def placeholder(self) -> QPixmap:
        """A neutral rounded rectangle, ``size`` × ``size*3/4`` device-independent pixels (drawn
        at the device pixel ratio), shown while a thumbnail loads."""
        if self._placeholder is None:
            self._placeholder = self._draw_frame(QColor(128, 128, 128, 70), None)
        return self._placeholder

    def broken_pixmap(self) -> QPixmap:
        """The "broken image" pixmap: the placeholder's shape, crossed out."""
        if self._broken is None:
            self._broken = self._draw_frame(QColor(128, 128, 128, 50), QColor(170, 60, 60))
        return self._broken

    def _draw_frame(self, fill: QColor, cross: QColor | None) -> QPixmap:
        width, height = self._size, max(1, self._size * 3 // 4)  # device-independent
        pixmap = QPixmap(max(1, round(width * self._dpr)), max(1, round(height * self._dpr)))
        pixmap.setDevicePixelRatio(self._dpr)  # the painter below draws in logical pixels
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            rect = QRectF(1, 1, width - 2, height - 2)
            radius = max(2.0, self._size / 16)
            painter.setPen(QPen(QColor(128, 128, 128, 140), 1.5))
            painter.setBrush(fill)
            painter.drawRoundedRect(rect, radius, radius)
            if cross is not None:
                side = min(width, height) / 4
                centre = rect.center()
                painter.setPen(QPen(cross, max(2.0, self._size / 48),
                                    Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
                painter.drawLine(centre + QPointF(-side, -side), centre + QPointF(side, side))
                painter.drawLine(centre + QPointF(-side, side), centre + QPointF(side, -side))
        finally:
            painter.end()
        return pixmap

    # ------------------------------------------------------------------ device pixel ratio

    def set_device_pixel_ratio(self, device_pixel_ratio: float) -> None:
        """Make thumbnails for another device pixel ratio (the window moved to another screen).

        When the ratio changes, the in-memory cache, the placeholder and the broken pixmap are
        dropped and the queued loads cancelled, so the next :meth:`pixmap` loads again at the
        new physical size (the disk cache keeps both sizes). Views should repaint afterwards.
        """
        ratio = _check_ratio(device_pixel_ratio)
        if ratio == self._dpr:
            return
        self._dpr = ratio
        self.clear()
        self._placeholder = None
        self._broken = None

    # ------------------------------------------------------------------ disk cache pruning

    def start_pruning(self) -> bool:
        """Run :func:`prune_disk_cache` on the disk cache in the background; :attr:`pruned`
        follows. Return False (and do nothing) without a disk cache, after :meth:`shutdown`
        or while a run is still going."""
        if self._cache_dir is None or self._closed or self._prune_job is not None:
            return False
        job = _PruneJob(self._prune_signals, self._cache_dir, self._disk_cache_bytes,
                        self._prune_stop)
        self._prune_job = job
        self._maintenance.start(job)
        return True

    @pyqtSlot(int, int)
    def _on_pruned(self, removed: int, freed: int) -> None:
        self._prune_job = None
        self.pruned.emit(removed, freed)

    # ------------------------------------------------------------------ invalidation

    def invalidate(self, image_id: int) -> None:
        """Forget the thumbnail of one image (memory only) and drop its pending load's result."""
        self._drop(image_id)
        pending = self._pending.pop(image_id, None)
        if pending is not None:
            self._cancel_job(pending[0])

    def clear(self) -> None:
        """Forget every thumbnail in memory and cancel the queued loads (the disk cache stays)."""
        self._cache.clear()
        self._cache_bytes = 0
        for token, _key in self._pending.values():
            self._cancel_job(token)
        self._pending.clear()

    def shutdown(self) -> None:
        """Cancel the queued loads, wait for the running ones, and accept no more requests."""
        self._closed = True
        self._pending.clear()
        self._pool.clear()
        self._prune_stop.set()  # a pruning run stops deleting; its listing is short
        self._pool.waitForDone()
        self._maintenance.waitForDone()
        self._jobs.clear()  # every job has returned from run() now

    def _cancel_job(self, token: int) -> None:
        """Take a queued job out of the pool; a running one finishes and is ignored."""
        job = self._jobs.get(token)
        if job is not None and self._pool.tryTake(job):
            del self._jobs[token]

    def _drop(self, image_id: int) -> None:
        entry = self._cache.pop(image_id, None)
        if entry is not None:
            self._cache_bytes -= entry[2]

    # ------------------------------------------------------------------ results

    @pyqtSlot(int, int, object, str, str)
    def _on_loaded(self, image_id: int, token: int, image: QImage | None, reason: str,
                   undecodable: str) -> None:
        self._jobs.pop(token, None)
        pending = self._pending.get(image_id)
        if pending is None or pending[0] != token:
            return  # invalidated, cleared or shut down meanwhile
        del self._pending[image_id]
        key = pending[1]
        if image is None or image.isNull():
            log.info("No thumbnail for %s: %s", key.path, reason)
            pixmap = self.broken_pixmap()
            cost = 0  # shared pixmap: costs nothing per entry
        else:
            pixmap = QPixmap.fromImage(image)
            pixmap.setDevicePixelRatio(self._pixmap_ratio(max(image.width(), image.height())))
            # width() and height() are physical pixels: the bytes the pixmap really holds
            cost = pixmap.width() * pixmap.height() * max(1, pixmap.depth()) // 8
        self._drop(image_id)
        self._cache[image_id] = (key, pixmap, cost)
        self._cache_bytes += cost
        while len(self._cache) > 1 and (
            self._cache_bytes > self._max_bytes or len(self._cache) > self._max_entries
        ):
            _old_id, (_k, _p, old_cost) = self._cache.popitem(last=False)
            self._cache_bytes -= old_cost
        self.thumbnail_ready.emit(image_id)
        if undecodable and (image is None or image.isNull()):
            self.undecodable.emit(image_id, undecodable, key.path)

    def _pixmap_ratio(self, long_side: int) -> float:
        """The device pixel ratio for a loaded image whose long side is ``long_side`` pixels.

        A full-size load (``physical_size``) gets the screen's ratio. An image smaller than that
        is the whole photo (never enlarged), and gets the ratio that gives it the
        device-independent size a 1x load has: the photo's own size up to ``size``.
        """
        if long_side >= self.physical_size:
            return self._dpr
        return max(1.0, long_side / self._size)


__all__ = [
    "DEFAULT_DISK_CACHE_BYTES", "DEFAULT_MEMORY_BYTES", "DEFAULT_MEMORY_ENTRIES",
    "DEFAULT_THUMB_SIZE", "ThumbnailProvider", "default_cache_dir", "disk_cache_name",
    "load_thumbnail_image", "pixel_failure", "prune_disk_cache",
]
