"""A disk cache of prepared uploads: the JPEG a vision backend sends for an image file, kept so
that a retry, a second pass or a second backend does not decode, scale and encode the photo
again (issue 15).

An entry is found by what the upload is made of, never by where the file lies: the file's
content hash (BLAKE2b of its bytes), its size in bytes, the long side asked for (``max_side``,
pixels), the JPEG quality and :data:`PREPARATION_VERSION`, the version of the preparation
rules. So a copy or a renamed file hits, an edited file misses, and changing how uploads are
made (bump the version) never serves an old one. Hashing a photo costs a read of it (about a
millisecond per megabyte); to spare even that, each :class:`UploadCache` remembers, for this
process, the hash of every file it hashed by ``(path, size, mtime_ns, ctime_ns, inode)`` --
except files changed in the last :data:`RACY_WINDOW_S` seconds, whose time stamps could still
hide an edit (the problem git calls "racy").

The cache is a folder (``<user cache>/uploads``, :func:`default_cache`: the platform's per-user
cache folder or, in portable mode, ``LoRACap-data/cache``; :mod:`loracap.core.userdirs`) of one
file per entry, ``<2 hex>/<40 hex>.upload``: a header (:data:`MAGIC`, the payload's length and
its BLAKE2b-128 digest) and the payload. It is

* safe with several threads and processes: an entry is written to a temporary file beside it
  and moved into place with ``os.replace`` (atomic), so a reader sees a whole entry or none;
  two writers of one entry write the same bytes;
* bounded: when the entries exceed ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 2 GiB), the
  least recently used are removed until they fill at most :data:`PRUNE_TO` of it (a hit marks
  its entry used by setting its modification time);
* never a reason for a caption to fail: an entry that is corrupt, short or unreadable is
  ignored (and removed) and the image prepared again; a cache folder that cannot be written (a
  full disk, a read-only folder) is logged once and the upload is prepared without it.

Setting ``LORACAP_NO_UPLOAD_CACHE=1`` in the environment turns the cache off
(:func:`default_cache` then returns None). Plain Python: no Qt, no Pillow.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loracap.core.userdirs import user_dirs

log = logging.getLogger(__name__)

#: Version of the rules that make an upload (:func:`loracap.core.imaging.prepare_for_upload`):
#: part of every key, so bumping it when the rules change retires every older entry.
PREPARATION_VERSION = 1

#: Default bound of the cache, in bytes (2 GiB: about 5,000 uploads of 1536 px).
DEFAULT_MAX_BYTES = 2 * 1024**3

#: After a prune the entries fill at most this fraction of ``max_bytes`` (so that the next
#: writes do not prune again at once).
PRUNE_TO = 0.9

#: Environment variable that turns the cache off when set to anything but ``""`` or ``"0"``.
DISABLE_ENV = "LORACAP_NO_UPLOAD_CACHE"

#: Name of the cache's folder inside the user cache folder.
FOLDER_NAME = "uploads"

#: The first bytes of every entry: the format of this module, version 1.
MAGIC = b"LCUPLD1\n"

#: A file whose modification or status change is more recent than this (seconds) when it is
#: hashed is hashed again next time: within it, an edit may leave size and time stamps alike.
RACY_WINDOW_S = 2.0

#: Temporary files of an interrupted write older than this (seconds) are removed by a prune.
STALE_TEMP_S = 3600.0

#: Most files whose hash one cache remembers (the memory is then cleared and starts again).
MAX_REMEMBERED = 100_000

_SUFFIX = ".upload"
_TEMP_PREFIX = ".tmp-"
_HEADER = struct.Struct(">8sQ16s")  # magic, payload length (bytes), BLAKE2b-128 of the payload
_CHUNK = 1 << 20


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True)
class _Stamp:
    """What identifies a version of a file cheaply: ``os.stat`` fields."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Stamp:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def file_digest(path: Path) -> str:
    """The content hash of the file at ``path``: BLAKE2b (20 bytes) of its bytes as 40 lowercase
    hex digits. Reads the file in chunks of 1 MiB. Raises ``OSError`` when it cannot be read."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fp:
        while chunk := fp.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry_key(digest: str, size: int, max_side: int, quality: int) -> str:
    """The key of the upload of a file with content hash ``digest`` (:func:`file_digest`) and
    ``size`` bytes, prepared with a long side of at most ``max_side`` pixels at JPEG
    ``quality``, under :data:`PREPARATION_VERSION`: 40 lowercase hex digits."""
    text = f"{PREPARATION_VERSION}\0{digest}\0{size}\0{max_side}\0{quality}"
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


class UploadCache:
    """The prepared uploads kept in ``folder`` (created on the first write), at most about
    ``max_bytes`` bytes of them. Thread-safe; several processes may share one folder.

    :meth:`prepared` is the one call a backend needs; :meth:`get`, :meth:`put` and
    :meth:`prune` are its parts. No method raises for a problem of the cache itself (it is
    logged); :meth:`prepared` raises what its ``prepare`` raises.
    """

    def __init__(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        self._prune_lock = threading.Lock()
        self._digests: dict[str, tuple[_Stamp, str]] = {}
        self._bytes: int | None = None  # the entries' size as last counted, plus writes since
        self._write_warned = False

    # -- the one call a backend needs ----------------------------------------------------------

    def prepared(self, path: Path, max_side: int, quality: int,
                 prepare: Callable[[], bytes]) -> bytes:
        """The upload of the image file at ``path`` (``max_side`` pixels, JPEG ``quality``):
        from the cache when it holds one for the file's content, else ``prepare()`` -- which
        must make exactly that upload -- stored for next time.

        ``prepare()`` alone runs, and nothing is stored, when the file is not a regular file
        or cannot be read (``prepare()`` then raises the error a user should see) and when it
        changed while being prepared. Raises what ``prepare()`` raises, nothing else.
        """
        source = self._source_key(Path(path), max_side, quality)
        if source is None:
            return prepare()
        key, stamp = source
        cached = self.get(key)
        if cached is not None:
            return cached
        data = prepare()
        try:
            unchanged = _Stamp.of(os.stat(path)) == stamp
        except OSError:
            unchanged = False
        if unchanged:
            self.put(key, data)
        return data

    def _source_key(self, path: Path, max_side: int, quality: int) -> tuple[str, _Stamp] | None:
        """``(entry key, stamp)`` of the file at ``path`` now, or None when it is not a regular
        file or cannot be read (nothing is cached for it)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None  # a FIFO or a device: never read here (reading could block)
        stamp = _Stamp.of(st)
        name = os.fspath(path)
        with self._lock:
            known = self._digests.get(name)
        if known is not None and known[0] == stamp:
            digest = known[1]
        else:
            started = time.time_ns()
            try:
                digest = file_digest(path)
                after = _Stamp.of(os.stat(path))
            except OSError:
                return None
            if after != stamp:
                return None  # changed while read: the hash may match neither version
            racy = started - max(stamp.mtime_ns, stamp.ctime_ns) < RACY_WINDOW_S * 1e9
            if not racy:
                with self._lock:
                    if len(self._digests) >= MAX_REMEMBERED:
                        self._digests.clear()
                    self._digests[name] = (stamp, digest)
        return entry_key(digest, stamp.size, max_side, quality), stamp

    # -- entries -------------------------------------------------------------------------------

    def entry_path(self, key: str) -> Path:
        """Where the entry ``key`` (:func:`entry_key`) is kept."""
        return self.folder / key[:2] / f"{key}{_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The payload of entry ``key``, or None when there is none or it is not whole (a
        corrupt or short entry is removed). A hit marks the entry used (for the bound)."""
        entry = self.entry_path(key)
        try:
            with open(entry, "rb") as fp:
                raw = fp.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.debug("Upload cache entry %s not read: %s", entry, exc)
            return None
        payload = _payload(raw)
        if payload is None:
            log.info("Ignored a damaged upload cache entry %s (%d bytes)", entry, len(raw))
            _remove(entry)
            return None
        try:
            os.utime(entry)  # used now: the last to be removed
        except OSError:
            pass  # a read-only cache still serves its entries
        return payload

    def put(self, key: str, payload: bytes) -> bool:
        """Store ``payload`` as entry ``key`` (atomically: a temporary file moved into place),
        then prune when the cache exceeds its bound. Returns False, after logging, when it
        could not be stored (a full disk, a read-only folder) or is larger than the bound."""
        size = _HEADER.size + len(payload)
        if size > self.max_bytes:
            return False
        entry = self.entry_path(key)
        temp: str | None = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_SUFFIX,
                                            dir=entry.parent)
            with os.fdopen(handle, "wb") as fp:
                fp.write(_HEADER.pack(MAGIC, len(payload), _checksum(payload)))
                fp.write(payload)
            os.replace(temp, entry)
            temp = None
        except OSError as exc:
            self._write_failed(exc)
            return False
        finally:
            if temp is not None:
                _remove(Path(temp))
        with self._lock:
            counted = self._bytes
            if counted is not None:
                self._bytes = counted + size
        if counted is None or counted + size > self.max_bytes:
            self.prune()
        return True

    def _write_failed(self, exc: OSError) -> None:
        with self._lock:
            warned, self._write_warned = self._write_warned, True
        if warned:
            log.debug("Upload cache entry not written: %s", exc)
        else:
            log.warning("The upload cache in %s cannot be written (%s); images are prepared "
                        "without it.", self.folder, exc.strerror or exc)

    # -- the bound -----------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """The bytes the entries fill on disk now (a walk of the folder)."""
        return sum(size for _, _, size in _entries(self.folder))

    def prune(self) -> int:
        """Remove the least recently used entries until the rest fill at most
        :data:`PRUNE_TO` of ``max_bytes`` (nothing when they fill at most ``max_bytes``), and
        temporary files older than :data:`STALE_TEMP_S`. Returns the bytes removed. One thread
        of a process prunes at a time; another process may prune alongside (a removed entry
        is a miss)."""
        with self._prune_lock:
            entries = sorted(_entries(self.folder, stale_after=STALE_TEMP_S))
            total = sum(size for _, _, size in entries)
            removed = 0
            if total > self.max_bytes:
                goal = int(self.max_bytes * PRUNE_TO)
                for _used, entry, size in entries:
                    if total - removed <= goal:
                        break
                    if _remove(entry):
                        removed += size
                log.info("Upload cache pruned: %d MB removed, %d MB kept in %s",
                         removed // 1_000_000, (total - removed) // 1_000_000, self.folder)
            with self._lock:
                self._bytes = total - removed
            return removed


def _payload(raw: bytes) -> bytes | None:
    """The payload of an entry's bytes, or None when they are not a whole entry."""
    if len(raw) < _HEADER.size:
        return None
    magic, length, checksum = _HEADER.unpack_from(raw)
    payload = raw[_HEADER.size:]
    if magic != MAGIC or length != len(payload) or _checksum(payload) != checksum:
        return None
    return payload


def _entries(folder: Path, stale_after: float | None = None) -> list[tuple[float, Path, int]]:
    """``(last used, path, size in bytes)`` of every entry under ``folder`` (none when it
    cannot be listed); with ``stale_after`` (seconds), temporary files older than that are
    removed on the way."""
    found: list[tuple[float, Path, int]] = []
    now = time.time()
    try:
        shards = [e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return found
    for shard in shards:
        try:
            files = list(os.scandir(shard.path))
        except OSError:
            continue
        for item in files:
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if item.name.startswith(_TEMP_PREFIX):
                if stale_after is not None and now - st.st_mtime > stale_after:
                    _remove(Path(item.path))
                continue
            if item.name.endswith(_SUFFIX):
                found.append((st.st_mtime, Path(item.path), st.st_size))
    return found


def _remove(path: Path) -> bool:
    """Remove ``path``; False when it could not be (gone already, in use, read-only)."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


_caches: dict[Path, UploadCache] = {}
_caches_lock = threading.Lock()


def cache_disabled() -> bool:
    """True when ``LORACAP_NO_UPLOAD_CACHE`` turns the cache off."""
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0")


def default_cache() -> UploadCache | None:
    """The cache of this user (``<user cache>/uploads``, see :mod:`loracap.core.userdirs`), one
    object per folder for the process; None when ``LORACAP_NO_UPLOAD_CACHE`` turns it off.
    The folder is looked up on every call, so a change of ``LORACAP_HOME`` takes effect."""
    if cache_disabled():
        return None
    folder = user_dirs().cache / FOLDER_NAME
    with _caches_lock:
        cache = _caches.get(folder)
        if cache is None:
            cache = _caches[folder] = UploadCache(folder)
        return cache


__all__ = ["DEFAULT_MAX_BYTES", "DISABLE_ENV", "PREPARATION_VERSION", "UploadCache",
           "cache_disabled", "default_cache", "entry_key", "file_digest"]
