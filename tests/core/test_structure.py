"""The scan's structure checks on real files written with Pillow, whole and broken.

Every whole file must pass (a false alarm would drop a user's good photo); every broken one
must fail with the reason a user reads in the window, and the scan must read only a little of a
JPEG or WebP. Damage inside the compressed data, which the structure cannot show, is found by
the decode of :func:`~loracap.core.imaging.pixel_problem` (here) and of the exports
(``test_export_undecodable.py``).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageCms, PngImagePlugin, features

from loracap.core.imaging import pixel_problem, probe_image
from loracap.core.scan import scan_folder
from loracap.core.structure import (
    NO_EOI,
    UNKNOWN,
    WHOLE,
    WINDOW,
    Structure,
    check_structure,
)

needs_webp = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")


def photo(size: tuple[int, int] = (320, 240), mode: str = "RGB", seed: int = 1) -> Image.Image:
    """A photo-like image (gradient and noise) that compresses like a real one; in a mode
    with alpha, transparent from left to right."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.effect_noise(size, 30).convert("RGB")
    image = Image.blend(image, noise, 0.3).rotate(seed * 7).convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.linear_gradient("L").rotate(90).resize(size))
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def verdict(data: bytes, fmt: str) -> Structure:
    return check_structure(io.BytesIO(data), fmt, len(data))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class CountingFile(io.BytesIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def exif_block() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "LoRACap", 6
    exif.get_ifd(0x8769)[0x927C] = bytes(range(256)) * 80  # a 20 KB maker note
    return exif


# ---------------------------------------------------------------------------- JPEG


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """``(marker, position, length)`` of the segments from SOI to SOS."""
    pos, found = 2, []
    while True:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        found.append((marker, pos, length))
        if marker == 0xDA:
            return found
        pos += 2 + length


def segment(data: bytes, marker: int) -> tuple[int, int]:
    """``(position, length)`` of the first segment with ``marker``."""
    return next((pos, length) for mark, pos, length in jpeg_segments(data) if mark == marker)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


WHOLE_JPEGS: dict[str, Callable[[], bytes]] = {
    "baseline": lambda: encode(photo(), "JPEG", quality=90),
    "progressive": lambda: encode(photo(), "JPEG", quality=90, progressive=True),
    "optimized Huffman tables": lambda: encode(photo(), "JPEG", optimize=True),
    "EXIF, ICC profile and comment (APP1, APP2, COM)": lambda: encode(
        photo(), "JPEG", exif=exif_block(), icc_profile=srgb_profile(), comment=b"a hall"),
    "restart markers (DRI, RST0-7)": lambda: encode(photo(), "JPEG", restart_marker_blocks=4),
    "greyscale": lambda: encode(photo(mode="L"), "JPEG"),
    "CMYK (Adobe APP14)": lambda: encode(photo(mode="CMYK"), "JPEG"),
    "4:4:4 at quality 100": lambda: encode(photo(), "JPEG", quality=100, subsampling=0),
    "zero padding after EOI": lambda: encode(photo(), "JPEG") + bytes(3000),
    "100 KB of zero padding": lambda: encode(photo(), "JPEG") + bytes(100_000),
}


@pytest.mark.parametrize("kind", list(WHOLE_JPEGS))
def test_whole_jpegs_pass(tmp_path: Path, kind: str) -> None:
    data = WHOLE_JPEGS[kind]()
    assert verdict(data, "JPEG") == WHOLE
    info = probe_image(write(tmp_path, "a.jpg", data))
    assert (info.valid, info.reason) == (True, "")
    assert pixel_problem(tmp_path / "a.jpg") == ""


def test_fill_bytes_before_a_marker_are_allowed() -> None:
    data = encode(photo(), "JPEG")
    pos, _length = segment(data, 0xDB)
    padded = data[:pos] + b"\xff\xff\xff" + data[pos:]  # T.81 B.1.1.2
    assert verdict(padded, "JPEG") == WHOLE


def test_mpo_from_a_phone_passes(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    photo().save(path, "MPO", save_all=True, append_images=[photo(seed=2)])
    assert verdict(path.read_bytes(), "MPO") == WHOLE
    assert probe_image(path).valid


def test_a_jpeg_check_reads_only_its_header_and_tail() -> None:
    data = encode(photo((2000, 1500)), "JPEG", quality=95, exif=exif_block())
    assert len(data) > 1_000_000
    counting = CountingFile(data)
    assert check_structure(counting, "JPEG", len(data)) == WHOLE
    assert counting.read_bytes <= 3 * WINDOW
    assert len(data) > 10 * counting.read_bytes


def test_a_truncated_jpeg_is_invalid_at_scan(tmp_path: Path) -> None:
    data = encode(photo((400, 300)), "JPEG", quality=90)
    (tmp_path / "ds").mkdir()
    write(tmp_path / "ds", "cut.jpg", data[: len(data) // 2])
    assert verdict(data[: len(data) // 2], "JPEG") == Structure(None, NO_EOI)
    (item,) = list(scan_folder(tmp_path / "ds"))
    assert not item.info.valid
    assert item.info.reason == "the JPEG has no end-of-image marker: the file is cut off"
    assert (item.info.format, item.info.width, item.info.height) == ("JPEG", 400, 300)


def test_a_jpeg_whose_end_was_never_written_is_invalid(tmp_path: Path) -> None:
    """An interrupted copy can leave the file's full length with zeros where data was due."""
    data = encode(photo((400, 300)), "JPEG")
    cut = len(data) * 2 // 3
    info = probe_image(write(tmp_path, "zeros.jpg", data[:cut] + bytes(len(data) - cut)))
    assert (info.valid, info.reason) == (False, NO_EOI)


def test_data_after_the_image_is_decoded_not_refused(tmp_path: Path) -> None:
    """Phones append a motion-photo video or a maker trailer after EOI: the structure cannot
    tell that from a cut-off file, so the pixels are decoded; they are good."""
    data = encode(photo(), "JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    assert verdict(data, "JPEG") == Structure(None, NO_EOI)
    assert probe_image(write(tmp_path, "motion.jpg", data)).valid


def damaged_jpegs() -> dict[str, tuple[bytes, str]]:
    data = encode(photo(), "JPEG")
    app0, _ = segment(data, 0xE0)
    sof, sof_length = segment(data, 0xC0)
    sos, _ = segment(data, 0xDA)
    dqt, _ = segment(data, 0xDB)

    def patched(pos: int, new: bytes) -> bytes:
        return data[:pos] + new + data[pos + len(new):]

    no_sof = data[:sof] + data[sof + 2 + sof_length:]
    return {
        "junk where a marker is due": (
            patched(dqt, b"\x00"),
            f"the JPEG has no marker at byte {dqt}, where one is due: the file is corrupt"),
        "a segment length of 1": (
            patched(app0 + 2, b"\x00\x01"),
            f"the JPEG's APP0 segment at byte {app0} has an impossible length (1): the file is "
            "corrupt"),
        "a segment running past the end": (
            data[:sos + 6],
            f"the JPEG's SOS segment at byte {sos} runs past the end of the file: the file is "
            "cut off"),
        "cut off inside the header": (
            data[:dqt + 1], "the JPEG ends before its image data: the file is cut off"),
        "a damaged frame header": (
            patched(sof + 9, b"\x07"),  # Nf = 7 components in a 17-byte SOF0
            f"the JPEG's frame header at byte {sof} is damaged: the file is corrupt"),
        "image data before the frame header": (
            no_sof, "the JPEG's image data comes before its frame header: the file is corrupt"),
        "EOI before the image data": (
            patched(dqt, b"\xff\xd9"),
            f"the JPEG ends (end-of-image marker at byte {dqt}) before its image data: the file "
            "is corrupt"),
        "a second SOI": (
            patched(dqt, b"\xff\xd8"),
            f"the JPEG has a misplaced marker 0xD8 at byte {dqt}: the file is corrupt"),
        "a damaged scan header": (
            patched(sos + 4, b"\x09"),
            f"the JPEG's scan header at byte {sos} is damaged: the file is corrupt"),
    }


def test_an_arithmetic_coded_jpeg_is_left_to_the_decoder() -> None:
    data = encode(photo(), "JPEG")
    sof, _ = segment(data, 0xC0)
    arithmetic = data[:sof + 1] + b"\xc9" + data[sof + 2:]  # SOF9
    assert verdict(arithmetic, "JPEG") == UNKNOWN


def garbage_in_the_middle(data: bytes, seed: int = 15) -> bytes:
    """``data`` with a stretch of its entropy-coded data overwritten by random bytes: SOI..SOS
    and EOI intact."""
    import random

    _sos, length = segment(data, 0xDA)
    start = _sos + 2 + length
    middle = start + (len(data) - 2 - start) // 4
    junk = random.Random(seed).randbytes((len(data) - 2 - start) // 2)
    return data[:middle] + junk + data[middle + len(junk):]


def test_garbage_inside_a_jpeg_passes_the_scan_and_fails_the_decode(tmp_path: Path) -> None:
    bad = garbage_in_the_middle(encode(photo((640, 480)), "JPEG", quality=90))
    path = write(tmp_path, "garbage.jpg", bad)
    with Image.open(path) as im, pytest.raises(OSError):
        im.load()  # Pillow cannot decode it: what a trainer would meet
    assert verdict(bad, "JPEG") == WHOLE
    assert probe_image(path).valid
    assert pixel_problem(path) == (
        "truncated or corrupt image data (broken data stream when reading image file)")


# ---------------------------------------------------------------------------- PNG


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """``(type, position, length)`` of every chunk."""
    pos, found = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        found.append((kind, pos, length))
        pos += 12 + length
    return found


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def texts() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a hall, sks")
    info.add_text("Comment", "compressed " * 50, zip=True)
    info.add_itxt("Description", "une salle voûtée", lang="fr", tkey="Beschreibung")
    return info


def animated_png() -> bytes:
    buffer = io.BytesIO()
    photo().save(buffer, "PNG", save_all=True, append_images=[photo(seed=2), photo(seed=3)])
    return buffer.getvalue()


WHOLE_PNGS: dict[str, Callable[[], bytes]] = {
    "RGB": lambda: encode(photo(), "PNG"),
    "RGBA": lambda: encode(photo(mode="RGBA"), "PNG"),
    "palette with transparency": lambda: encode(photo(mode="P"), "PNG", transparency=0),
    "16-bit greyscale": lambda: encode(photo(mode="I;16"), "PNG"),
    "text chunks (tEXt, zTXt, iTXt)": lambda: encode(photo(), "PNG", pnginfo=texts()),
    "EXIF chunk": lambda: encode(photo(), "PNG", exif=exif_block()),
    "many IDAT chunks": lambda: encode(photo((1200, 900)), "PNG", compress_level=0),
    "animated (APNG)": animated_png,
    "bytes after IEND": lambda: encode(photo(), "PNG") + b"trailing bytes",
}


@pytest.mark.parametrize("kind", list(WHOLE_PNGS))
def test_whole_pngs_pass(tmp_path: Path, kind: str) -> None:
    data = WHOLE_PNGS[kind]()
    assert verdict(data, "PNG") == WHOLE
    assert probe_image(write(tmp_path, "a.png", data)).valid
    assert pixel_problem(tmp_path / "a.png") == ""


def test_many_idat_chunks_are_many() -> None:
    data = WHOLE_PNGS["many IDAT chunks"]()
    assert sum(kind == b"IDAT" for kind, _pos, _length in png_chunks(data)) > 10


def test_a_png_with_a_bad_crc_is_invalid_at_scan(tmp_path: Path) -> None:
    data = bytearray(encode(photo((200, 150)), "PNG"))
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "ds").mkdir()
    write(tmp_path / "ds", "bad.png", bytes(data))
    (item,) = list(scan_folder(tmp_path / "ds"))
    assert not item.info.valid
    assert item.info.reason == (
        "the PNG's IDAT chunk at byte 33 has a wrong checksum (CRC): the file is corrupt")


def damaged_pngs() -> dict[str, tuple[bytes, str]]:
    data = encode(photo(), "PNG", pnginfo=texts())
    chunks = png_chunks(data)
    text_pos = next(pos for kind, pos, _ in chunks if kind == b"tEXt")
    iend_pos = next(pos for kind, pos, _ in chunks if kind == b"IEND")
    idats = [(pos, length) for kind, pos, length in chunks if kind == b"IDAT"]
    ihdr = data[8:8 + 25]
    flipped = bytearray(data)
    flipped[text_pos + 10] ^= 0x20
    no_idat = data[:idats[0][0]] + data[idats[-1][0] + 12 + idats[-1][1]:]
    text_end = text_pos + 12 + next(length for kind, _, length in chunks if kind == b"tEXt")
    header_second = data[:8] + data[33:text_end] + ihdr + data[text_end:]
    bad_type = data[:text_pos + 4] + b"tE1t" + data[text_pos + 8:]
    return {
        "a bad CRC in a text chunk": (
            bytes(flipped), f"the PNG's tEXt chunk at byte {text_pos} has a wrong checksum "
                            "(CRC): the file is corrupt"),
        "cut off before IEND": (
            data[:iend_pos], "the PNG has no end chunk (IEND): the file is cut off"),
        "cut off in the image data": (
            data[:idats[0][0] + 100], f"the PNG's IDAT chunk at byte {idats[0][0]} runs past the "
                                      "end of the file: the file is cut off"),
        "no image data": (no_idat, "the PNG holds no image data (IDAT chunk): the file is "
                                   "corrupt"),
        "IHDR not first": (header_second, "the PNG does not start with its header chunk (IHDR): "
                                          "the file is corrupt"),
        "a chunk type that is not letters": (
            bad_type, f"the PNG has no valid chunk at byte {text_pos}: the file is corrupt"),
        "an impossible length": (
            data[:text_pos] + b"\x80\x00\x00\x00" + data[text_pos + 4:],
            f"the PNG's tEXt chunk at byte {text_pos} has an impossible length: the file is "
            "corrupt"),
    }


def test_damaged_deflate_data_with_good_crcs_fails_the_decode(tmp_path: Path) -> None:
    """A PNG written by a broken program: the CRCs match, the compressed data does not
    inflate. The structure cannot see it; the decode where pixels are needed does."""
    data = encode(photo(), "PNG")
    kind, pos, length = next(c for c in png_chunks(data) if c[0] == b"IDAT")
    idat = bytearray(data[pos + 8:pos + 8 + length])
    idat[10:40] = bytes(range(30))
    bad = data[:pos] + chunk(b"IDAT", bytes(idat)) + data[pos + 12 + length:]
    path = write(tmp_path, "inflate.png", bad)
    assert verdict(bad, "PNG") == WHOLE
    assert pixel_problem(path).startswith("truncated or corrupt image data (")


# ---------------------------------------------------------------------------- WebP


def webp_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    pos, found = 12, []
    while pos < len(data):
        kind, size = struct.unpack("<4sI", data[pos:pos + 8])
        found.append((kind, pos, size))
        pos += 8 + size + (size & 1)
    return found


def animated_webp(lossless: bool) -> bytes:
    buffer = io.BytesIO()
    photo().save(buffer, "WEBP", save_all=True, append_images=[photo(seed=2), photo(seed=3)],
                 lossless=lossless, duration=100)
    return buffer.getvalue()


WHOLE_WEBPS: dict[str, Callable[[], bytes]] = {
    "lossy (VP8)": lambda: encode(photo(), "WEBP", quality=80),
    "lossless (VP8L)": lambda: encode(photo(), "WEBP", lossless=True),
    "lossy with alpha (VP8X, ALPH)": lambda: encode(photo(mode="RGBA"), "WEBP", quality=80),
    "with EXIF and ICC profile": lambda: encode(photo(), "WEBP", exif=exif_block(),
                                                icc_profile=srgb_profile()),
    "animated, lossy (ANMF)": lambda: animated_webp(False),
    "animated, lossless (ANMF)": lambda: animated_webp(True),
}


@needs_webp
@pytest.mark.parametrize("kind", list(WHOLE_WEBPS))
def test_whole_webps_pass(tmp_path: Path, kind: str) -> None:
    data = WHOLE_WEBPS[kind]()
    assert verdict(data, "WEBP") == WHOLE
    assert probe_image(write(tmp_path, "a.webp", data)).valid


@needs_webp
def test_the_kinds_of_webp_are_what_they_say() -> None:
    kinds = {name: [c[0] for c in webp_chunks(make())] for name, make in WHOLE_WEBPS.items()}
    assert kinds["lossy (VP8)"] == [b"VP8 "]
    assert kinds["lossless (VP8L)"] == [b"VP8L"]
    assert kinds["lossy with alpha (VP8X, ALPH)"] == [b"VP8X", b"ALPH", b"VP8 "]
    assert {b"EXIF", b"ICCP"} <= set(kinds["with EXIF and ICC profile"])
    assert kinds["animated, lossy (ANMF)"].count(b"ANMF") == 3


@needs_webp
def test_a_webp_with_a_wrong_riff_size_is_invalid_at_scan(tmp_path: Path) -> None:
    data = bytearray(encode(photo(), "WEBP"))
    claimed = len(data) - 8 + 1000
    data[4:8] = claimed.to_bytes(4, "little")
    (tmp_path / "ds").mkdir()
    write(tmp_path / "ds", "a.webp", bytes(data))
    (item,) = list(scan_folder(tmp_path / "ds"))
    assert not item.info.valid
    assert item.info.reason == (
        f"the WebP file is {len(data)} bytes but its RIFF header says {len(data) + 1000}: the "
        "file is cut off")


def damaged_webps() -> dict[str, tuple[bytes, str]]:
    lossy = encode(photo(), "WEBP", quality=80)
    lossless = encode(photo(), "WEBP", lossless=True)
    extended = encode(photo(mode="RGBA"), "WEBP", exif=exif_block())
    animated = animated_webp(False)

    def riff(body: bytes) -> bytes:
        return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body

    _kind, anmf, anmf_size = next(c for c in webp_chunks(animated) if c[0] == b"ANMF")
    frame_chunk = anmf + 8 + 16
    bad_frame = bytearray(animated)
    bad_frame[frame_chunk:frame_chunk + 4] = b"XXXX"  # the frame's image chunk, renamed
    vp8x = next(c for c in webp_chunks(extended) if c[0] == b"VP8X")
    exif = next(c for c in webp_chunks(extended) if c[0] == b"EXIF")
    only_meta = riff(extended[vp8x[1]:vp8x[1] + 8 + vp8x[2]]
                     + extended[exif[1]:exif[1] + 8 + exif[2] + (exif[2] & 1)])
    shorter = bytearray(lossy)
    shorter[4:8] = (len(lossy) - 8 - 20).to_bytes(4, "little")
    return {
        "a RIFF size smaller than the file": (
            bytes(shorter), f"the WebP file is {len(lossy)} bytes but its RIFF header says "
                            f"{len(lossy) - 20}: the file is corrupt"),
        "cut off": (lossy[:-100], f"the WebP file is {len(lossy) - 100} bytes but its RIFF "
                                  f"header says {len(lossy)}: the file is cut off"),
        "a chunk running past the end": (
            riff(lossy[12:16] + (len(lossy)).to_bytes(4, "little") + lossy[20:]),
            "the WebP's VP8 chunk at byte 12 runs past the end of its container: the file is "
            "corrupt"),
        "a damaged VP8 start code": (
            lossy[:23] + b"\x00" + lossy[24:],
            "the WebP's image header at byte 12 is damaged: the file is corrupt"),
        "a damaged VP8L signature": (
            lossless[:20] + b"\x00" + lossless[21:],
            "the WebP's lossless image header at byte 12 is damaged: the file is corrupt"),
        "no image data": (only_meta, "the WebP holds no image data (VP8, VP8L or ANMF chunk): "
                                     "the file is corrupt"),
        "an animation frame without its image": (
            bytes(bad_frame), f"the WebP's animation frame at byte {anmf} holds no image: the "
                              "file is corrupt"),
        "a first chunk that is not an image": (
            riff(b"EXIF" + (4).to_bytes(4, "little") + b"abcd" + lossy[12:]),
            "the WebP does not start with an image chunk (VP8, VP8L or VP8X): the file is "
            "corrupt"),
    }


@needs_webp
def test_a_webp_check_reads_only_chunk_headers() -> None:
    data = encode(photo((1600, 1200)), "WEBP", quality=95, exif=exif_block())
    counting = CountingFile(data)
    assert check_structure(counting, "WEBP", len(data)) == WHOLE
    assert counting.read_bytes <= 3 * WINDOW
    assert len(data) > 10 * counting.read_bytes


# ---------------------------------------------------------------------------- damage, named

DAMAGED: dict[str, tuple[str, Callable[[], dict[str, tuple[bytes, str]]]]] = {
    "JPEG": (".jpg", damaged_jpegs),
    "PNG": (".png", damaged_pngs),
    "WEBP": (".webp", damaged_webps),
}
CASES = [(fmt, kind) for fmt, (_suffix, make) in DAMAGED.items()
         if fmt != "WEBP" or features.check("webp") for kind in make()]


@pytest.mark.parametrize(("fmt", "kind"), CASES)
def test_damaged_structure_is_named_by_the_scan(tmp_path: Path, fmt: str, kind: str) -> None:
    suffix, make = DAMAGED[fmt]
    data, reason = make()[kind]
    assert verdict(data, fmt) == Structure(False, reason)
    info = probe_image(write(tmp_path, f"bad{suffix}", data))
    assert (info.valid, info.reason) == (False, reason)


# ---------------------------------------------------------------------------- other formats


def test_bmp_is_left_to_the_decoder(tmp_path: Path) -> None:
    data = encode(photo(), "BMP")
    assert verdict(data, "BMP") == UNKNOWN
    assert probe_image(write(tmp_path, "a.bmp", data)).valid
    cut = probe_image(write(tmp_path, "cut.bmp", data[: len(data) // 2]))
    assert not cut.valid
    assert cut.reason.startswith("truncated or corrupt image data (image file is truncated")
