"""probe_image and prepare_for_upload on real files written with Pillow."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, features

from loracap.core import imaging
from loracap.core.errors import InputError, UndecodableImageError
from loracap.core.imaging import (
    EXPECTED_FORMATS,
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    UNSUPPORTED_EXTENSIONS,
    ImageInfo,
    pixel_problem,
    prepare_for_upload,
    probe_image,
)

ORIENTATION = 0x0112


def noisy(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """An image whose data does not compress away, so cutting the file loses pixels."""
    return Image.effect_noise(size, 80).convert(mode)


def save(im: Image.Image, path: Path, fmt: str | None = None, **params: object) -> Path:
    im.save(path, fmt, **params)
    return path


def exif_with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = value
    return exif


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid-looking 1-bit greyscale PNG whose IHDR claims ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def run_with_deadline(func: Callable[[], object], seconds: float = 5.0) -> object:
    """Run ``func`` in a thread; fail the test instead of hanging if it blocks."""
    result: list[object] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func())
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the call blocked"
    if errors:
        raise errors[0]
    return result[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- constants


def test_extension_tables_are_consistent() -> None:
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    assert set(EXPECTED_FORMATS) == IMAGE_EXTENSIONS
    assert not IMAGE_EXTENSIONS & UNSUPPORTED_EXTENSIONS
    assert {".heic", ".gif", ".tiff", ".dng"} <= UNSUPPORTED_EXTENSIONS
    assert MAX_PIXELS == 89_478_485


# ---------------------------------------------------------------------------- probe: good files


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.jpg", "JPEG"), ("b.JPEG", "JPEG"), ("c.png", "PNG"), ("d.bmp", "BMP"), ("e.webp", "WEBP")],
)
def test_probe_good_images(tmp_path: Path, name: str, fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    path = save(noisy((64, 48)), tmp_path / name, fmt)
    info = probe_image(path)
    assert info == ImageInfo(
        valid=True,
        reason="",
        format=fmt,
        width=64,
        height=48,
        file_size=path.stat().st_size,
        mtime=path.stat().st_mtime,
    )


def test_probe_accepts_mpo_inside_jpg(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    try:
        noisy((40, 30)).save(path, "MPO", save_all=True, append_images=[noisy((40, 30))])
    except (KeyError, ValueError, OSError):
        pytest.skip("this Pillow cannot write MPO")
    with Image.open(path) as im:
        assert im.format == "MPO"
    info = probe_image(path)
    assert (info.valid, info.format, info.width, info.height) == (True, "MPO", 40, 30)


def test_probe_accepts_cmyk_jpeg(tmp_path: Path) -> None:
    path = save(noisy((64, 48), "CMYK"), tmp_path / "print.jpg")
    assert probe_image(path).valid


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))]
)
def test_probe_reports_size_after_exif_orientation(
    tmp_path: Path, orientation: int, size: tuple[int, int]
) -> None:
    path = save(noisy((40, 20)), tmp_path / "o.jpg", exif=exif_with_orientation(orientation))
    info = probe_image(path)
    assert info.valid
    assert (info.width, info.height) == size


def test_probe_reads_png_exif_orientation(tmp_path: Path) -> None:
    path = save(noisy((40, 20)), tmp_path / "o.png", exif=exif_with_orientation(6))
    info = probe_image(path)
    assert (info.valid, info.width, info.height) == (True, 20, 40)


# ---------------------------------------------------------------------------- probe: bad files


def test_probe_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    info = probe_image(path)
    assert (info.valid, info.reason, info.file_size) == (False, "empty file (0 bytes)", 0)


def test_probe_truncated_jpeg(tmp_path: Path) -> None:
    path = save(noisy((400, 300)), tmp_path / "cut.jpg", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    info = probe_image(path)
    assert not info.valid
    assert info.reason == "the JPEG has no end-of-image marker: the file is cut off"
    assert info.format == "JPEG"
    assert (info.width, info.height) == (400, 300)


def test_probe_truncated_png(tmp_path: Path) -> None:
    path = save(noisy((200, 150)), tmp_path / "cut.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    info = probe_image(path)
    assert not info.valid
    assert info.reason == (
        "the PNG's IDAT chunk at byte 33 runs past the end of the file: the file is cut off")


def test_probe_png_with_bad_crc(tmp_path: Path) -> None:
    path = save(noisy((200, 150)), tmp_path / "bad.png")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    info = probe_image(path)
    assert not info.valid
    assert info.reason == (
        "the PNG's IDAT chunk at byte 33 has a wrong checksum (CRC): the file is corrupt")


def test_probe_truncated_webp(tmp_path: Path) -> None:
    if not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    path = save(noisy((200, 150)), tmp_path / "cut.webp", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not probe_image(path).valid


def test_probe_random_bytes_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "junk.jpg"
    path.write_bytes(os.urandom(4096))
    info = probe_image(path)
    assert not info.valid
    assert info.reason == "not an image file Pillow can read (corrupt or another kind of file)"
    assert info.file_size == 4096


def test_probe_png_data_named_jpg(tmp_path: Path) -> None:
    path = save(noisy((30, 20)), tmp_path / "wrong.jpg", "PNG")
    info = probe_image(path)
    assert not info.valid
    assert info.reason == "the file is PNG data but named .jpg; rename it to .png"
    assert info.format == "PNG"


def test_probe_gif_data_named_png(tmp_path: Path) -> None:
    path = save(noisy((30, 20)), tmp_path / "anim.png", "GIF")
    info = probe_image(path)
    assert info.reason == "the file is GIF data but named .png; convert it to JPEG or PNG"


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (10_000, 9_000)])
def test_probe_decompression_bomb(
    tmp_path: Path, width: int, height: int
) -> None:
    # 20000x20000 is above twice Pillow's limit (an error); 10000x9000 between 1x and 2x (a warning)
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(width, height))
    assert path.stat().st_size < 200
    info = probe_image(path)
    megapixels = f"{width * height / 1e6:.1f}"
    assert not info.valid
    assert info.reason == (
        f"{width}×{height} pixels ({megapixels} megapixels) is larger than the "
        "89-megapixel limit (decompression-bomb guard)"
    )
    assert (info.format, info.width, info.height) == ("PNG", width, height)


def test_probe_reads_max_pixels_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(noisy((100, 100)), tmp_path / "a.png")
    monkeypatch.setattr(imaging, "MAX_PIXELS", 5_000)
    info = probe_image(path)
    assert not info.valid
    assert info.reason.startswith("100×100 pixels (0.0 megapixels) is larger than")


def test_probe_fifo_does_not_hang(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "x.jpg"
    os.mkfifo(path)
    info = run_with_deadline(lambda: probe_image(path))
    assert isinstance(info, ImageInfo)
    assert (info.valid, info.reason) == (False, "not a regular file")


def test_probe_broken_symlink(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.symlink_to(tmp_path / "missing.jpg")
    info = probe_image(path)
    assert not info.valid
    assert info.reason == "broken symbolic link: its target does not exist"


def test_probe_missing_file(tmp_path: Path) -> None:
    info = probe_image(tmp_path / "gone.jpg")
    assert (info.valid, info.file_size, info.mtime) == (False, 0, 0.0)
    assert info.reason == "cannot read the file: it does not exist"


def test_probe_unreadable_file(tmp_path: Path) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        pytest.skip("root can read any file")
    path = save(noisy((10, 10)), tmp_path / "secret.jpg")
    path.chmod(0)
    try:
        info = probe_image(path)
    finally:
        path.chmod(0o644)
    assert not info.valid
    assert info.reason == "cannot read the file: Permission denied"


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("IMG_1.HEIC", "HEIC photos are not supported: export them as JPEG"),
        ("clip.gif", "animated/GIF images are not used by LoRA trainers: convert to PNG"),
        ("scan.tiff", "convert them to PNG or JPEG"),
        ("raw.DNG", "camera RAW files"),
    ],
)
def test_probe_unsupported_formats_give_advice(tmp_path: Path, name: str, advice: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + os.urandom(100))
    info = probe_image(path)
    assert not info.valid
    assert advice in info.reason


def test_probe_heic_mentions_iphone_setting(tmp_path: Path) -> None:
    path = tmp_path / "a.heic"
    path.write_bytes(b"data")
    assert "Settings > Camera > Formats > Most Compatible" in probe_image(path).reason


# ---------------------------------------------------------------------------- prepare_for_upload


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG"
    im.load()
    return im


def near(color: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


def test_prepare_large_png_with_alpha(tmp_path: Path) -> None:
    im = Image.new("RGBA", (4000, 3000), (0, 0, 0, 0))
    ImageDraw.Draw(im).rectangle((2000, 0, 3999, 2999), fill=(255, 0, 0, 255))
    path = save(im, tmp_path / "big.png", compress_level=1)
    before = sha256(path)
    out = decode(prepare_for_upload(path))
    assert out.mode == "RGB"
    assert out.size == (1536, 1152)
    assert near(out.getpixel((100, 500)), (255, 255, 255))  # transparent -> white, not black
    assert near(out.getpixel((1400, 500)), (255, 0, 0))
    assert sha256(path) == before


def test_prepare_applies_exif_orientation(tmp_path: Path) -> None:
    # Stored landscape with a green top-left corner; orientation 6 = rotate 90° clockwise.
    im = Image.new("RGB", (4000, 3000), (0, 0, 255))
    ImageDraw.Draw(im).rectangle((0, 0, 999, 999), fill=(0, 255, 0))
    path = save(im, tmp_path / "phone.jpg", exif=exif_with_orientation(6), quality=95)
    before = sha256(path)
    out = decode(prepare_for_upload(path))
    assert out.size == (1152, 1536)
    assert near(out.getpixel((1100, 50)), (0, 255, 0), tolerance=30)  # now top-right
    assert near(out.getpixel((50, 50)), (0, 0, 255), tolerance=30)
    assert out.getexif().get(ORIENTATION) is None  # not rotated twice by the reader
    assert sha256(path) == before


def test_prepare_does_not_upscale(tmp_path: Path) -> None:
    path = save(noisy((300, 200)), tmp_path / "small.png")
    assert decode(prepare_for_upload(path)).size == (300, 200)


def test_prepare_respects_max_side(tmp_path: Path) -> None:
    path = save(noisy((1000, 250)), tmp_path / "wide.jpg")
    assert decode(prepare_for_upload(path, max_side=512, quality=80)).size == (512, 128)


@pytest.mark.parametrize(
    ("make", "name", "expected"),
    [
        (lambda: Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "cmyk.jpg", (255, 0, 0)),
        (lambda: Image.new("LA", (64, 64), (0, 0)), "la.png", (255, 255, 255)),
        (lambda: Image.new("L", (64, 64), 0), "grey.bmp", (0, 0, 0)),
        (lambda: Image.new("I;16", (64, 64), 65535), "deep.png", (255, 255, 255)),
        (lambda: Image.new("I;16", (64, 64), 32768), "mid.png", (128, 128, 128)),
    ],
)
def test_prepare_converts_modes_to_rgb(
    tmp_path: Path, make: Callable[[], Image.Image], name: str, expected: tuple[int, int, int]
) -> None:
    path = save(make(), tmp_path / name)
    out = decode(prepare_for_upload(path))
    assert out.mode == "RGB"
    assert near(out.getpixel((32, 32)), expected)


def test_prepare_palette_transparency_becomes_white(tmp_path: Path) -> None:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([0, 0, 0, 255, 0, 0])
    im.info["transparency"] = 0
    path = save(im, tmp_path / "p.png", transparency=0)
    assert near(decode(prepare_for_upload(path)).getpixel((5, 5)), (255, 255, 255))


def test_prepare_truncated_raises_input_error(tmp_path: Path) -> None:
    path = save(noisy((400, 300)), tmp_path / "cut.jpg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r'Cannot (use|read) the image ".*cut\.jpg"'):
        prepare_for_upload(path)


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_prepare_bad_files_raise_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.jpg"):
        prepare_for_upload(path)


def test_prepare_missing_file_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        prepare_for_upload(tmp_path / "gone.jpg")


def test_prepare_fifo_raises_without_hanging(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "x.jpg"
    os.mkfifo(path)
    with pytest.raises(InputError, match="not a regular file"):
        run_with_deadline(lambda: prepare_for_upload(path))


def test_prepare_bomb_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(20_000, 20_000))
    with pytest.raises(InputError, match="89-megapixel limit"):
        prepare_for_upload(path)


class _FailingRead(io.FileIO):
    """A file whose reads past its first ``limit`` bytes fail with EIO, as a failing disk's."""

    limit = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0 or self.tell() + size > self.limit:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        if self.tell() + len(buffer) > self.limit:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().readinto(buffer)


def test_a_read_error_part_way_is_not_called_damage(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fails while the pixels are read says nothing of the image: the decode
    raises the read error (an export stops with it) instead of naming the image's data as
    corrupt, and an upload is refused as unreadable, not undecodable (which marks the image
    invalid)."""
    path = tmp_path / "photo.jpg"
    Image.effect_noise((640, 480), 40).convert("RGB").save(path, quality=90)
    assert pixel_problem(path) == ""
    _FailingRead.limit = 2048  # the header reads, the image data fails
    monkeypatch.setattr(imaging, "open", lambda p, mode="r": _FailingRead(p, "r"), raising=False)
    with pytest.raises(OSError) as raised:
        pixel_problem(path)
    assert raised.value.errno == errno.EIO
    with pytest.raises(InputError) as refused:
        prepare_for_upload(path)
    assert not isinstance(refused.value, UndecodableImageError)
    assert "Input/output error" in str(refused.value)
