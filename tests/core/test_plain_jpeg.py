"""The scan reads a plain JPEG's header in one walk of its segments, without Pillow.

Every answer of that quick way must be the answer Pillow's way gives: the same ``ImageInfo``
for the same file, and the size a person sees (Pillow's ``exif_transpose``). Files the quick
way cannot read exactly as Pillow does -- MPO, XMP orientation, odd EXIF, damage -- must be
handed to Pillow, which is proven by checking which way answered.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from loracap.core import imaging
from loracap.core.imaging import MAX_PIXELS, ImageInfo, probe_image
from loracap.core.structure import read_jpeg

SIZE = (64, 48)
ORIENTATION = 0x0112


def photo(size: tuple[int, int] = SIZE, mode: str = "RGB") -> Image.Image:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.blend(image, Image.effect_noise(size, 30).convert("RGB"), 0.3)
    return image.convert(mode)


def encode(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **params)
    return buffer.getvalue()


def tiff_exif(order: str, entries: list[tuple[int, int, int, bytes]], ifd: int = 8) -> bytes:
    """An APP1 EXIF payload with one IFD of ``(tag, type, count, value field)`` entries."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", ifd)
    body = struct.pack(order + "H", len(entries)) + b"".join(
        struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
        for tag, kind, count, value in entries) + struct.pack(order + "I", 0)
    return b"Exif\x00\x00" + head + bytes(ifd - 8) + body


def short(order: str, value: int) -> bytes:
    return struct.pack(order + "H", value)


def with_segments(data: bytes, *segments: tuple[int, bytes]) -> bytes:
    """``data`` with APPn segments ``(marker, payload)`` inserted after SOI."""
    inserted = b"".join(bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload
                        for marker, payload in segments)
    return data[:2] + inserted + data[2:]


def frame_header(data: bytes) -> int:
    """Position of the SOF0/SOF2 segment."""
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC2):
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return pos


def quick(path: Path) -> tuple[int, int] | None:
    """What the quick way answers for ``path`` (None: it hands the file to Pillow)."""
    with open(path, "rb") as fp:
        return imaging._probe_plain_jpeg(fp, path.stat().st_size)


def pillows_way(path: Path, monkeypatch: pytest.MonkeyPatch) -> ImageInfo:
    with monkeypatch.context() as patch:
        patch.setattr(imaging, "_probe_plain_jpeg", lambda fp, size: None)
        return probe_image(path)


def seen_size(path: Path) -> tuple[int, int]:
    """The size a person sees: Pillow decodes and applies the orientation."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


PLAIN: dict[str, Callable[[], bytes]] = {
    "no EXIF": lambda: encode(photo()),
    "progressive": lambda: encode(photo(), progressive=True),
    "greyscale": lambda: encode(photo(mode="L")),
    "CMYK": lambda: encode(photo(mode="CMYK")),
    **{f"orientation {n}, little-endian": (lambda n=n: encode(  # type: ignore[misc]
        photo(), exif=tiff_exif("<", [(ORIENTATION, 3, 1, short("<", n))])))
       for n in range(1, 9)},
    **{f"orientation {n}, big-endian": (lambda n=n: encode(  # type: ignore[misc]
        photo(), exif=tiff_exif(">", [(ORIENTATION, 3, 1, short(">", n))])))
       for n in range(1, 9)},
    "orientation as a LONG": lambda: encode(
        photo(), exif=tiff_exif(">", [(ORIENTATION, 4, 1, struct.pack(">I", 6))])),
    "orientation 0 (out of range)": lambda: encode(
        photo(), exif=tiff_exif("<", [(ORIENTATION, 3, 1, short("<", 0))])),
    "orientation 9 (out of range)": lambda: encode(
        photo(), exif=tiff_exif("<", [(ORIENTATION, 3, 1, short("<", 9))])),
    "EXIF without orientation": lambda: encode(
        photo(), exif=tiff_exif("<", [(0x010F, 2, 4, b"Cam\x00")])),
    "IFD after a gap": lambda: encode(
        photo(), exif=tiff_exif("<", [(0x010F, 2, 4, b"Cam\x00"),
                                      (ORIENTATION, 3, 1, short("<", 8))], ifd=40)),
    "a camera's EXIF from Pillow": lambda: encode(photo(), exif=camera_exif()),
    "XMP beside an EXIF orientation": lambda: with_segments(
        encode(photo(), exif=tiff_exif("<", [(ORIENTATION, 3, 1, short("<", 6))])),
        (0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x tiff:Orientation=\"1\"/>")),
}


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[ORIENTATION] = "LoRACap", "Bench", 6
    exif.get_ifd(0x8769)[0x927C] = bytes(range(256)) * 80  # a 20 KB maker note
    return exif


HANDED_TO_PILLOW: dict[str, Callable[[], bytes]] = {
    "orientation in XMP only": lambda: with_segments(
        encode(photo()), (0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x tiff:Orientation=\"6\"/>")),
    "two EXIF segments": lambda: with_segments(
        encode(photo()), (0xE1, tiff_exif("<", [(ORIENTATION, 3, 1, short("<", 6))])),
        (0xE1, tiff_exif("<", [(0x010F, 2, 4, b"Cam\x00")]))),
    "orientation with two values": lambda: encode(
        photo(), exif=tiff_exif("<", [(ORIENTATION, 3, 2, short("<", 6) + short("<", 6))])),
    "orientation as text": lambda: encode(
        photo(), exif=tiff_exif("<", [(ORIENTATION, 2, 2, b"6\x00")])),
    "IFD outside its segment": lambda: encode(
        photo(), exif=b"Exif\x00\x00II*\x00" + struct.pack("<I", 5000) + bytes(8)),
    "not a TIFF header": lambda: encode(photo(), exif=b"Exif\x00\x00XX*\x00" + bytes(20)),
    "a multi-picture file": lambda: mpo(),
    "cut off": lambda: encode(photo())[:-200],
    "data after the image": lambda: encode(photo()) + b"\x00\x00\x00\x18ftypmp42" + bytes(99),
    "a quantization table cut short": lambda: short_table(),
    "too large for the pixel limit": lambda: resized(10_000, 9_000),
    "zero height": lambda: resized(64, 0),
}


def mpo() -> bytes:
    buffer = io.BytesIO()
    photo().save(buffer, "MPO", save_all=True, append_images=[photo(mode="L").convert("RGB")])
    return buffer.getvalue()


def short_table() -> bytes:
    """A DQT segment whose one 8-bit table is marked 16-bit (``Pq`` = 1): it no longer fits."""
    data = encode(photo())
    pos = data.index(b"\xff\xdb")
    return data[:pos + 4] + bytes((data[pos + 4] | 0x10,)) + data[pos + 5:]


def resized(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width`` × ``height``."""
    data = encode(photo())
    pos = frame_header(data)
    return data[:pos + 5] + struct.pack(">HH", height, width) + data[pos + 9:]


@pytest.mark.parametrize("kind", list(PLAIN))
def test_a_plain_jpeg_is_read_without_pillow_as_pillow_reads_it(
        tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(PLAIN[kind]())
    assert quick(path) is not None  # the quick way answered
    info = probe_image(path)
    assert info == pillows_way(path, monkeypatch)
    assert info.valid and info.format == "JPEG"
    assert (info.width, info.height) == seen_size(path)


@pytest.mark.filterwarnings("ignore:(Metadata Warning|Corrupt EXIF data):UserWarning")
@pytest.mark.parametrize("kind", list(HANDED_TO_PILLOW))
def test_an_unusual_jpeg_is_handed_to_pillow(
        tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(HANDED_TO_PILLOW[kind]())
    assert quick(path) is None
    assert probe_image(path) == pillows_way(path, monkeypatch)


@pytest.mark.filterwarnings("ignore:(Metadata Warning|Corrupt EXIF data):UserWarning")
def test_what_pillow_then_says(tmp_path: Path) -> None:
    """The files handed over get Pillow's verdicts: read right, or refused with a reason."""
    answers = {}
    for kind in HANDED_TO_PILLOW:
        path = tmp_path / f"{len(answers)}.jpg"
        path.write_bytes(HANDED_TO_PILLOW[kind]())
        answers[kind] = probe_image(path)
    assert (answers["orientation in XMP only"].width, answers["orientation in XMP only"].height
            ) == (SIZE[1], SIZE[0])
    assert answers["a multi-picture file"].format == "MPO"
    assert answers["data after the image"].valid
    for refused in ("cut off", "a quantization table cut short", "too large for the pixel limit"):
        assert not answers[refused].valid, refused
    assert answers["too large for the pixel limit"].reason.startswith("10000×9000 pixels")
    assert f"{MAX_PIXELS / 1e6:.0f}-megapixel" in answers["too large for the pixel limit"].reason


def test_a_jpeg_named_png_is_still_told_to_be_renamed(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode(photo()))
    info = probe_image(path)
    assert (info.valid, info.reason) == (
        False, "the file is JPEG data but named .png; rename it to .jpg")


def test_the_walk_notes_the_header() -> None:
    data = with_segments(encode(photo((80, 30)), progressive=True,
                                exif=tiff_exif(">", [(ORIENTATION, 3, 1, short(">", 5))])),
                         (0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x/>"))
    structure, facts = read_jpeg(io.BytesIO(data), len(data))
    assert structure.whole
    assert (facts.frame, facts.precision, facts.components) == (0xC2, 8, 3)
    assert (facts.width, facts.height, facts.orientation) == (80, 30, 5)
    assert facts.xmp and len(facts.exif) == 1 and not facts.multi_picture and facts.tables_whole
