"""scan_folder on real folder trees with real images, sidecars, links and junk."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.errors import CancelledError, InputError
from loracap.core.scan import EXPORT_MARKER, ScannedFile, read_sidecar, scan_folder


def make_image(path: Path, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (200, 100, 50)).save(path, fmt)
    return path


def rel_paths(root: Path) -> list[str]:
    return [item.rel_path for item in scan_folder(root)]


def by_rel_path(root: Path) -> dict[str, ScannedFile]:
    return {item.rel_path: item for item in scan_folder(root)}


def needs_symlinks(tmp_path: Path) -> None:
    try:
        (tmp_path / "probe-link").symlink_to(tmp_path)
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symbolic links here")
    (tmp_path / "probe-link").unlink()


# ---------------------------------------------------------------------------- walking


def test_nested_folders_case_and_stable_order(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_image(root / "B.jpg")
    make_image(root / "a.png")
    make_image(root / "sub" / "c.JPG", "JPEG")
    make_image(root / "Sub2" / "deeper" / "d.JPEG", "JPEG")
    make_image(root / "Sub2" / "e.WebP", "WEBP")
    make_image(root / "z.bmp")
    (root / "notes.txt").write_text("not an image")
    (root / "readme.md").write_text("# hi")

    expected = ["a.png", "B.jpg", "sub/c.JPG", "Sub2/deeper/d.JPEG", "Sub2/e.WebP", "z.bmp"]
    assert rel_paths(root) == expected
    assert rel_paths(root) == expected  # same order every time

    items = by_rel_path(root)
    assert all(item.info.valid for item in items.values())
    assert items["sub/c.JPG"].path == root / "sub" / "c.JPG"
    assert items["sub/c.JPG"].path.is_absolute()


def test_relative_root_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(tmp_path / "set" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    (item,) = list(scan_folder(Path("set")))
    assert item.path == tmp_path / "set" / "a.jpg"
    assert item.rel_path == "a.jpg"


def test_ignores_hidden_macos_and_project_files(tmp_path: Path) -> None:
    make_image(tmp_path / "keep.jpg")
    make_image(tmp_path / ".hidden.jpg")
    make_image(tmp_path / "._keep.jpg")
    (tmp_path / "._other.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    make_image(tmp_path / ".cache" / "thumb.jpg")
    make_image(tmp_path / "__MACOSX" / "keep.jpg")
    make_image(tmp_path / "inner" / "__MACOSX" / "x.png")
    (tmp_path / "dataset.loraproj").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "dataset.loraproj.bak").write_bytes(b"SQLite format 3\x00")
    assert rel_paths(tmp_path) == ["keep.jpg"]


def test_skips_export_folders_but_not_an_export_root(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "export" / "a.jpg")
    (tmp_path / "export" / EXPORT_MARKER).write_text("")
    make_image(tmp_path / "export" / "nested" / "b.jpg")
    assert EXPORT_MARKER == ".loracap-export"
    assert rel_paths(tmp_path) == ["a.jpg"]
    assert rel_paths(tmp_path / "export") == ["a.jpg", "nested/b.jpg"]


def test_lists_unsupported_and_broken_files_as_invalid(tmp_path: Path) -> None:
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "empty.jpg").write_bytes(b"")
    make_image(tmp_path / "anim.gif", "GIF")
    items = by_rel_path(tmp_path)
    assert set(items) == {"anim.gif", "empty.jpg", "IMG_0001.HEIC"}
    heic = items["IMG_0001.HEIC"].info
    assert not heic.valid
    assert "HEIC photos are not supported: export them as JPEG" in heic.reason
    assert items["anim.gif"].info.reason.startswith("animated/GIF images are not used")
    assert items["empty.jpg"].info.reason == "empty file (0 bytes)"


def test_fifo_is_listed_invalid_without_hanging(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "x.jpg")
    os.mkfifo(tmp_path / "y.txt")
    make_image(tmp_path / "y.jpg")
    result: list[dict[str, ScannedFile]] = []
    thread = threading.Thread(target=lambda: result.append(by_rel_path(tmp_path)), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "scan blocked on a FIFO"
    items = result[0]
    assert items["x.jpg"].info.reason == "not a regular file"
    assert items["y.jpg"].info.valid
    assert items["y.jpg"].sidecar_error == 'the caption file "y.txt" is not a regular file'


# ---------------------------------------------------------------------------- links


def test_symlink_to_outside_folder_and_file_not_followed(tmp_path: Path) -> None:
    needs_symlinks(tmp_path)
    root = tmp_path / "root"
    make_image(root / "a.jpg")
    make_image(tmp_path / "outside" / "secret.jpg")
    (root / "link_dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "link_file.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    assert rel_paths(root) == ["a.jpg"]


def test_symlinks_inside_root_followed_once(tmp_path: Path) -> None:
    needs_symlinks(tmp_path)
    make_image(tmp_path / "photos" / "p.jpg")
    (tmp_path / "alias").symlink_to(tmp_path / "photos", target_is_directory=True)
    (tmp_path / "zz_copy.jpg").symlink_to(tmp_path / "photos" / "p.jpg")
    make_image(tmp_path / "real" / "r.png")
    (tmp_path / "a_link.png").symlink_to(tmp_path / "real" / "r.png")
    make_image(tmp_path / "hidden_target" / ".h" / "only_via_link.jpg")
    (tmp_path / "zz_reach").symlink_to(tmp_path / "hidden_target" / ".h", target_is_directory=True)
    # Real paths win over links even when a link sorts first; nothing is listed twice; links
    # come after the real tree, in the order they were met.
    assert rel_paths(tmp_path) == ["photos/p.jpg", "real/r.png", "zz_reach/only_via_link.jpg"]


def test_symlink_loops_end(tmp_path: Path) -> None:
    needs_symlinks(tmp_path)
    make_image(tmp_path / "a" / "x.jpg")
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    found: list[list[str]] = []

    def scan() -> None:  # at most 20 items, so a loop fails the test instead of hanging it
        found.append([item.rel_path for item in itertools.islice(scan_folder(tmp_path), 20)])

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "scan did not end"
    assert found == [["a/x.jpg"]]


def test_broken_symlink_inside_root_is_listed_invalid(tmp_path: Path) -> None:
    needs_symlinks(tmp_path)
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (item,) = list(scan_folder(tmp_path))
    assert item.rel_path == "gone.jpg"
    assert item.info.reason == "broken symbolic link: its target does not exist"


# ---------------------------------------------------------------------------- sidecars


def test_sidecar_captions(tmp_path: Path) -> None:
    make_image(tmp_path / "utf8.jpg")
    (tmp_path / "utf8.txt").write_text("  photo of sks, a café\n\n", encoding="utf-8")
    make_image(tmp_path / "bom.png")
    (tmp_path / "bom.txt").write_bytes("\ufeffa hall with a BOM".encode())
    make_image(tmp_path / "latin.jpg")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    make_image(tmp_path / "wide.jpg")
    (tmp_path / "wide.txt").write_text("a hall", encoding="utf-16")
    make_image(tmp_path / "blank.jpg")
    (tmp_path / "blank.txt").write_text(" \n\t")
    make_image(tmp_path / "none.jpg")
    make_image(tmp_path / "Upper.jpg")
    (tmp_path / "Upper.TXT").write_text("found despite the case")

    items = by_rel_path(tmp_path)
    got = {rel: (item.sidecar_caption, item.sidecar_error) for rel, item in items.items()}
    assert got == {
        "blank.jpg": (None, ""),
        "bom.png": ("a hall with a BOM", ""),
        "latin.jpg": (
            None,
            'the caption file "latin.txt" is not UTF-8 text (byte 0xE9 at position 3); '
            "save it as UTF-8",
        ),
        "none.jpg": (None, ""),
        "Upper.jpg": ("found despite the case", ""),
        "utf8.jpg": ("photo of sks, a café", ""),
        "wide.jpg": (None, 'the caption file "wide.txt" is UTF-16 text; save it as UTF-8'),
    }


def test_sidecar_shared_stem_in_subfolder(tmp_path: Path) -> None:
    make_image(tmp_path / "sub" / "a.jpg")
    make_image(tmp_path / "sub" / "a.png")
    (tmp_path / "sub" / "a.txt").write_text("shared")
    (tmp_path / "a.txt").write_text("wrong folder")
    assert [(i.rel_path, i.sidecar_caption) for i in scan_folder(tmp_path)] == [
        ("sub/a.jpg", "shared"),
        ("sub/a.png", "shared"),
    ]


def test_read_sidecar_too_large(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_bytes(b"x" * (1024 * 1024 + 1))
    caption, error = read_sidecar(image)
    assert caption is None
    assert "larger than 1 MB" in error


# ---------------------------------------------------------------------------- errors, progress, cancel


def test_missing_root_raises_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        scan_folder(tmp_path / "nope")


def test_file_root_raises(tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.jpg")
    with pytest.raises(InputError, match="is not a folder"):
        scan_folder(image)


def test_unreadable_folder_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "locked" / "b.jpg")
    make_image(tmp_path / "z.jpg")
    real_scandir = os.scandir
    locked = str(tmp_path / "locked")

    def scandir(path: str | os.PathLike[str]) -> object:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert rel_paths(tmp_path) == ["a.jpg", "z.jpg"]


def test_unreadable_folder_for_real(tmp_path: Path) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        pytest.skip("root can read any folder")
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "locked" / "b.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        assert rel_paths(tmp_path) == ["a.jpg"]
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_progress_called_per_file(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "s" / "b.png")
    calls: list[tuple[int, str]] = []
    items = list(scan_folder(tmp_path, progress=lambda n, rel: calls.append((n, rel))))
    assert len(items) == 2
    assert calls == [(1, "a.jpg"), (2, "s/b.png")]


def test_cancel_stops_the_scan(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        make_image(tmp_path / name)
    cancel = threading.Event()
    seen: list[str] = []

    def progress(count: int, rel_path: str) -> None:
        if count == 2:
            cancel.set()

    with pytest.raises(CancelledError):
        for item in scan_folder(tmp_path, cancel=cancel, progress=progress):
            seen.append(item.rel_path)
    assert seen == ["a.jpg", "b.jpg"]


def test_cancel_before_start(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    cancel = threading.Event()
    cancel.set()
    iterator = scan_folder(tmp_path, cancel=cancel)
    with pytest.raises(CancelledError):
        next(iterator)
