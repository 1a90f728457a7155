"""The upload cache (issue 15) on real photos and a real folder: found by content, not by path;
missed when anything that makes the upload differs; a damaged entry prepared again; bounded;
and never the reason a caption fails."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from loracap.core import imaging, upload_cache
from loracap.core.backends.base import UPLOAD_QUALITY, prepare_jpeg
from loracap.core.errors import InputError
from loracap.core.upload_cache import UploadCache, entry_key, file_digest
from tests.fakes.photos import make_photo


class Preparer:
    """The real :func:`imaging.prepare_for_upload` of one file, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def of(self, path: Path, max_side: int = 512) -> Callable[[], bytes]:
        def prepare() -> bytes:
            self.calls.append(path)
            return imaging.prepare_for_upload(path, max_side=max_side, quality=UPLOAD_QUALITY)
        return prepare


def upload(cache: UploadCache, preparer: Preparer, path: Path, max_side: int = 512) -> bytes:
    return cache.prepared(path, max_side, UPLOAD_QUALITY, preparer.of(path, max_side))


def entries(cache: UploadCache) -> list[Path]:
    return sorted(cache.folder.glob("*/*.upload"))


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return make_photo(tmp_path / "photos" / "IMG_0001.jpg", size=(800, 600), seed=1)


def test_the_same_photo_at_another_path_is_not_prepared_again(tmp_path: Path,
                                                              photo: Path) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    first = upload(cache, preparer, photo)
    copy = tmp_path / "elsewhere" / "renamed.jpg"
    copy.parent.mkdir()
    shutil.copyfile(photo, copy)
    assert upload(cache, preparer, copy) == first
    assert upload(cache, preparer, photo) == first
    assert preparer.calls == [photo]
    assert len(entries(cache)) == 1
    # A second process (a new cache object on the same folder) finds it too.
    assert upload(UploadCache(tmp_path / "cache"), preparer, copy) == first
    assert preparer.calls == [photo]


def test_another_size_another_long_side_or_an_edit_is_prepared_again(tmp_path: Path,
                                                                     photo: Path) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    small = upload(cache, preparer, photo, max_side=512)
    large = upload(cache, preparer, photo, max_side=700)
    assert small != large and preparer.calls == [photo, photo]
    # The same photo as another file of another size (re-saved): another upload.
    other = make_photo(tmp_path / "photos" / "IMG_0002.png", size=(800, 600), seed=1)
    upload(cache, preparer, other)
    assert preparer.calls == [photo, photo, other]
    # An edit of the file in place, with its time stamps put back: the content decides.
    stat = os.stat(photo)
    make_photo(photo, size=(800, 600), seed=2)
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = upload(cache, preparer, photo, max_side=512)
    assert edited != small and preparer.calls == [photo, photo, other, photo]
    assert len(entries(cache)) == 4


def test_a_remembered_hash_still_sees_an_edit(tmp_path: Path, photo: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Files are remembered only once older than the racy window; here at once.
    monkeypatch.setattr(upload_cache, "RACY_WINDOW_S", 0.0)
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    first = upload(cache, preparer, photo)
    reads: list[Path] = []
    real_digest = upload_cache.file_digest

    def counting_digest(path: Path) -> str:
        reads.append(path)
        return real_digest(path)

    monkeypatch.setattr(upload_cache, "file_digest", counting_digest)
    assert upload(cache, preparer, photo) == first
    assert reads == []  # remembered: not read again
    # Rewritten in place with the same size and modification time: the change time differs.
    data = bytearray(photo.read_bytes())
    stat = os.stat(photo)
    assert data[6:11] == b"JFIF\x00"
    data[15] ^= 0x01  # the JFIF header's horizontal density: still a photo that decodes
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    upload(cache, preparer, photo)
    assert reads == [photo] and preparer.calls == [photo, photo]


def test_the_key_holds_content_size_long_side_quality_and_rules() -> None:
    digest = "ab" * 20
    keys = {entry_key(digest, 1000, 1536, 90), entry_key("cd" * 20, 1000, 1536, 90),
            entry_key(digest, 1001, 1536, 90), entry_key(digest, 1000, 1024, 90),
            entry_key(digest, 1000, 1536, 80)}
    assert len(keys) == 5
    assert entry_key(digest, 1000, 1536, 90) == entry_key(digest, 1000, 1536, 90)


@pytest.mark.parametrize("damage", ["short", "flipped", "empty", "foreign"])
def test_a_damaged_entry_is_ignored_and_the_photo_prepared_again(
        tmp_path: Path, photo: Path, damage: str) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    good = upload(cache, preparer, photo)
    [entry] = entries(cache)
    raw = entry.read_bytes()
    entry.write_bytes({
        "short": raw[:len(raw) // 2],
        "flipped": raw[:-100] + bytes([raw[-100] ^ 0xFF]) + raw[-99:],
        "empty": b"",
        "foreign": good,  # a bare JPEG where an entry should be
    }[damage])
    assert upload(cache, preparer, photo) == good
    assert preparer.calls == [photo, photo]
    assert entry.read_bytes() == raw  # written whole again
    assert upload(cache, preparer, photo) == good and len(preparer.calls) == 2


def test_an_entry_that_cannot_be_read_is_a_miss(tmp_path: Path, photo: Path) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    good = upload(cache, preparer, photo)
    [entry] = entries(cache)
    entry.unlink()
    entry.mkdir()  # a folder where the entry should be: reading it fails
    assert upload(cache, preparer, photo) == good
    assert len(preparer.calls) == 2


def test_the_least_recently_used_entries_go_when_the_bound_is_passed(tmp_path: Path) -> None:
    payload = os.urandom(10_000)
    entry_bytes = len(payload) + 32  # the header
    cache = UploadCache(tmp_path / "cache", max_bytes=5 * entry_bytes)
    keys = [entry_key(f"{n:040x}", 1, 512, 90) for n in range(8)]
    for age, key in enumerate(keys[:5]):
        assert cache.put(key, payload)
        os.utime(cache.entry_path(key), (1_000_000 + age, 1_000_000 + age))  # oldest first
    assert cache.size_bytes() == 5 * entry_bytes  # at the bound: nothing removed yet
    assert cache.get(keys[0]) == payload  # used now: no longer the least recently used
    assert cache.put(keys[5], payload)  # past the bound: pruned to 90 % of it
    assert cache.size_bytes() <= cache.max_bytes * upload_cache.PRUNE_TO
    kept = {key for key in keys if cache.entry_path(key).exists()}
    assert kept == {keys[0], keys[3], keys[4], keys[5]}
    for key in keys[6:]:
        cache.put(key, payload)
    assert cache.size_bytes() <= cache.max_bytes
    assert cache.get(keys[7]) == payload
    # An upload larger than the whole cache is not kept.
    assert not cache.put(entry_key("ff" * 20, 1, 512, 90), os.urandom(6 * entry_bytes))


def test_a_prune_removes_temporary_files_left_by_an_interrupted_write(tmp_path: Path) -> None:
    cache = UploadCache(tmp_path / "cache", max_bytes=10**6)
    key = entry_key("ab" * 20, 1, 512, 90)
    cache.put(key, b"jpeg")
    shard = cache.entry_path(key).parent
    stale, fresh = shard / ".tmp-old.upload", shard / ".tmp-new.upload"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"x" * 100)
    os.utime(stale, (1_000_000, 1_000_000))
    cache.prune()
    assert not stale.exists() and fresh.exists()  # a write under way is left alone
    assert cache.get(key) == b"jpeg"


def test_a_cache_folder_that_cannot_be_written_never_fails_a_caption(
        tmp_path: Path, photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")  # mkdir fails
    cache, preparer = UploadCache(blocked), Preparer()
    with caplog.at_level(logging.DEBUG, logger="loracap.core.upload_cache"):
        first = upload(cache, preparer, photo)
        again = upload(cache, preparer, photo)
    assert first == again == imaging.prepare_for_upload(photo, max_side=512,
                                                        quality=UPLOAD_QUALITY)
    assert preparer.calls == [photo, photo]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot be written" in warnings[0].getMessage()
    assert str(blocked) in warnings[0].getMessage()


def test_a_full_disk_never_fails_a_caption_and_leaves_no_temporary_file(
        tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(upload_cache.os, "replace", full)
    assert upload(cache, preparer, photo) == imaging.prepare_for_upload(
        photo, max_side=512, quality=UPLOAD_QUALITY)
    assert [p for p in cache.folder.rglob("*") if p.is_file()] == []


def test_a_read_only_cache_still_serves_its_entries(tmp_path: Path, photo: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    good = upload(cache, preparer, photo)

    def read_only(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(upload_cache.os, "utime", read_only)
    assert upload(UploadCache(tmp_path / "cache"), preparer, photo) == good
    assert preparer.calls == [photo]


def test_a_file_that_changes_while_it_is_prepared_is_not_kept(tmp_path: Path,
                                                              photo: Path) -> None:
    cache = UploadCache(tmp_path / "cache")

    def prepare_then_edit() -> bytes:
        data = imaging.prepare_for_upload(photo, max_side=512)
        make_photo(photo, size=(640, 480), seed=3)  # saved while the old one was prepared
        return data

    cache.prepared(photo, 512, UPLOAD_QUALITY, prepare_then_edit)
    assert entries(cache) == []


def test_a_missing_or_unreadable_file_raises_what_the_preparation_raises(
        tmp_path: Path) -> None:
    cache, preparer = UploadCache(tmp_path / "cache"), Preparer()
    with pytest.raises(InputError, match="does not exist"):
        upload(cache, preparer, tmp_path / "gone.jpg")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # never opened for hashing: reading it would block
    with pytest.raises(InputError, match="not a regular file"):
        upload(cache, preparer, fifo)
    assert entries(cache) == []


def test_prepare_jpeg_goes_through_the_user_cache_unless_turned_off(
        tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORACAP_HOME", str(tmp_path / "home"))
    calls: list[Path] = []
    real = imaging.prepare_for_upload

    def counting(path: Path, max_side: int = 1536, quality: int = 90) -> bytes:
        calls.append(Path(path))
        return real(path, max_side, quality)

    monkeypatch.setattr(imaging, "prepare_for_upload", counting)
    first = prepare_jpeg(photo, 512)
    assert prepare_jpeg(photo, 512) == first and len(calls) == 1
    folder = tmp_path / "home" / "cache" / upload_cache.FOLDER_NAME
    assert len(list(folder.glob("*/*.upload"))) == 1
    monkeypatch.setenv(upload_cache.DISABLE_ENV, "1")
    assert upload_cache.default_cache() is None
    assert prepare_jpeg(photo, 512) == first and len(calls) == 2


def test_the_content_hash_is_of_the_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "a.bin", tmp_path / "b.bin"
    one.write_bytes(b"x" * 3_000_000)
    two.write_bytes(b"x" * 3_000_000)
    assert file_digest(one) == file_digest(two) and len(file_digest(one)) == 40
    two.write_bytes(b"x" * 2_999_999 + b"y")
    assert file_digest(one) != file_digest(two)
