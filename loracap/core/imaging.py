"""Reading photos: which files are images, whether they are usable, and upload copies.

Format rules and their sources:

* ai-toolkit trains on ``.jpg .jpeg .png .webp`` only (its image-extension list); kohya
  sd-scripts also reads ``.bmp`` (its ``IMAGE_EXTENSIONS``). These are ``IMAGE_EXTENSIONS``.
* kohya sd-scripts does not apply EXIF orientation when it loads an image, while ai-toolkit
  does; ``ImageInfo`` therefore reports the size *after* orientation (what a person sees), and
  exports rotate the pixels for kohya.
* ``MAX_PIXELS`` is Pillow's default ``Image.MAX_IMAGE_PIXELS`` (89,478,485 pixels, about a
  quarter of a gigabyte of RGB data), its decompression-bomb guard: Pillow warns above it and
  refuses above twice it. LoRACap treats every image above it as invalid.
* Phones store extra frames (depth maps, previews) in MPO files named ``.jpg``; Pillow reports
  them as format ``MPO``, which trainers read as the JPEG it starts with.
* A scan reads headers and checks each file's structure (:mod:`loracap.core.structure`: ITU-T
  T.81 for JPEG, the PNG specification, Google's WebP container specification) instead of
  decoding every pixel; the pixels are decoded where they are needed -- uploads
  (:func:`prepare_for_upload`) and exports (:func:`pixel_problem`) -- and a failure there
  names the damage as the scan would have.

Nothing here modifies a user's file.
"""

from __future__ import annotations

import io
import logging
import math
import os
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import (
    BmpImagePlugin,
    ExifTags,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from loracap.core.errors import InputError, UndecodableImageError
from loracap.core.structure import check_structure, read_jpeg, sniff

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
"""Lowercase extensions scanned as images (ai-toolkit's four plus kohya's ``.bmp``)."""

_UNSUPPORTED_ADVICE: dict[str, str] = {
    ".heic": (
        "HEIC photos are not supported: export them as JPEG "
        "(on iPhone: Settings > Camera > Formats > Most Compatible)"
    ),
    ".heif": (
        "HEIF photos are not supported: export them as JPEG "
        "(on iPhone: Settings > Camera > Formats > Most Compatible)"
    ),
    ".avif": "AVIF images are not read by LoRA trainers: convert them to JPEG or PNG",
    ".tif": "TIFF images are not read by LoRA trainers: convert them to PNG or JPEG",
    ".tiff": "TIFF images are not read by LoRA trainers: convert them to PNG or JPEG",
    ".gif": "animated/GIF images are not used by LoRA trainers: convert to PNG",
    ".jxl": "JPEG XL images are not read by LoRA trainers: convert them to JPEG or PNG",
}
_RAW_ADVICE = "camera RAW files are not read by LoRA trainers: export them as JPEG"
for _ext in (".raw", ".cr2", ".nef", ".arw", ".dng"):
    _UNSUPPORTED_ADVICE[_ext] = _RAW_ADVICE

UNSUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_UNSUPPORTED_ADVICE)
"""Lowercase extensions of photos the scan lists as invalid, with advice on what to do."""

EXPECTED_FORMATS: dict[str, frozenset[str]] = {
    ".jpg": frozenset({"JPEG", "MPO"}),
    ".jpeg": frozenset({"JPEG", "MPO"}),
    ".png": frozenset({"PNG"}),
    ".webp": frozenset({"WEBP"}),
    ".bmp": frozenset({"BMP"}),
}
"""Extension -> Pillow format names accepted for it (phones write MPO data inside ``.jpg``)."""

MAX_PIXELS = 89_478_485
"""Largest accepted width × height: Pillow's default ``Image.MAX_IMAGE_PIXELS``."""

# Pillow warns (once per image, on stderr) between MAX_IMAGE_PIXELS and twice that; LoRACap
# checks MAX_PIXELS itself and reports such images as invalid, so the warning is only noise.
# Set once here: warnings.catch_warnings() per call is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_EXTENSION_FOR_FORMAT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
}
# Header-only readers used to learn the size of an image Pillow refused as a decompression bomb.
_HEADER_READERS: tuple[type[ImageFile.ImageFile], ...] = (
    PngImagePlugin.PngImageFile,
    JpegImagePlugin.JpegImageFile,
    WebPImagePlugin.WebPImageFile,
    BmpImagePlugin.BmpImageFile,
)
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_JPEG_EXTENSIONS = frozenset(ext for ext, fmts in EXPECTED_FORMATS.items() if "JPEG" in fmts)
_PLAIN_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2})  # T.81 SOF0-SOF2: 8-bit Huffman coding
_NOT_AN_IMAGE = "not an image file Pillow can read (corrupt or another kind of file)"
_MAX_DETAIL_CHARS = 120


@dataclass(frozen=True)
class ImageInfo:
    """What ``probe_image`` learned about one file.

    ``width``/``height`` are in pixels as displayed, i.e. after EXIF orientation (swapped for
    orientations 5-8); None when unknown. ``format`` is Pillow's format name (``"JPEG"``,
    ``"MPO"``, ``"PNG"``, ``"WEBP"``, ``"BMP"``, ...) or None. ``reason`` says why the file is
    invalid and what to do, ``""`` when ``valid``. ``file_size`` is in bytes and ``mtime`` in
    seconds since the epoch (both 0 when the file cannot be stat'ed).
    """

    valid: bool
    reason: str
    format: str | None
    width: int | None
    height: int | None
    file_size: int
    mtime: float


class _Invalid(Exception):
    """Internal: the file is not usable; ``reason`` and what was learned so far."""

    def __init__(
        self, reason: str, fmt: str | None = None, size: tuple[int, int] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fmt = fmt
        self.size = size


class _Unreadable(_Invalid):
    """Internal: the file could not be read -- an ``OSError`` with an errno (``error``): gone,
    not permitted, an I/O error part way -- which says nothing of its data."""

    def __init__(self, error: OSError, fmt: str | None = None,
                 size: tuple[int, int] | None = None) -> None:
        super().__init__(f"cannot read the file: {error.strerror or error}", fmt, size)
        self.error = error


def probe_image(path: Path) -> ImageInfo:
    """Check that ``path`` is a usable training image and read its format and size.

    Never raises for a bad file and never blocks on one: the file is stat'ed first and
    anything that is not a regular file (a FIFO, a device, a folder) is rejected without being
    opened. Then the header is read, the format compared with the extension, the size with
    ``MAX_PIXELS``, and the file checked for truncation and damage without decoding its pixels
    (:func:`loracap.core.structure.check_structure`: a JPEG's marker segments and its
    end-of-image marker, a PNG's chunk CRCs, a WebP's RIFF and chunk sizes). Where the
    structure cannot tell -- a BMP, a JPEG with data after its image or an unusual coding --
    the pixels are decoded as before: JPEG by a 1/8-scale draft decode, others by a full
    ``load()``, relying on ``ImageFile.LOAD_TRUNCATED_IMAGES`` keeping its default, False.
    Damage inside the compressed data that leaves the structure intact is found where the
    pixels are decoded anyway (:func:`pixel_problem`, :func:`prepare_for_upload`).

    Returns an ``ImageInfo``; when invalid, ``reason`` is a lowercase sentence fragment such as
    ``"empty file (0 bytes)"`` or ``"the file is PNG data but named .jpg; rename it to .png"``.
    Images above :data:`MAX_PIXELS` are refused by this module's own check (Pillow's
    decompression-bomb warning is silenced once at import, so worker threads never change the
    process-wide warning filters); Pillow's own error above twice its limit is caught too.
    """
    path = path if isinstance(path, Path) else Path(path)  # a scan's many: parsed once
    try:
        st = _regular_file_stat(path)
    except _Invalid as invalid:
        size, mtime = _lstat_size_mtime(path)
        return ImageInfo(False, invalid.reason, None, None, None, size, mtime)
    try:
        fmt, width, height = _probe_regular_file(path, st.st_size)
    except _Invalid as invalid:
        w, h = invalid.size if invalid.size else (None, None)
        return ImageInfo(False, invalid.reason, invalid.fmt, w, h, st.st_size, st.st_mtime)
    return ImageInfo(True, "", fmt, width, height, st.st_size, st.st_mtime)


def _regular_file_stat(path: Path) -> os.stat_result:
    """Return ``os.stat(path)`` of a regular, non-empty file, else raise ``_Invalid``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise _Invalid("broken symbolic link: its target does not exist") from None
        raise _Invalid("cannot read the file: it does not exist") from None
    except OSError as exc:
        raise _Unreadable(exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise _Invalid("not a regular file")
    if st.st_size == 0:
        raise _Invalid("empty file (0 bytes)")
    return st


def _lstat_size_mtime(path: Path) -> tuple[int, float]:
    """Return ``(size, mtime)`` of ``path`` (of the link itself if broken); zeros if unknown.

    The size is 0 for anything that is not a regular file.
    """
    try:
        st = os.stat(path)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:
            return 0, 0.0
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return size, st.st_mtime


def _probe_regular_file(path: Path, file_size: int) -> tuple[str, int, int]:
    """Return ``(format, width, height)`` of a usable image, else raise ``_Invalid``."""
    ext = path.suffix.lower()
    if ext in UNSUPPORTED_EXTENSIONS:
        raise _Invalid(_UNSUPPORTED_ADVICE[ext])
    if ext not in EXPECTED_FORMATS:
        names = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise _Invalid(f'"{path.suffix}" files are not read by LoRA trainers; use {names}')
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed below, Pillow reads it lazily
    except OSError as exc:
        raise _Unreadable(exc) from None
    with fp:
        if ext in _JPEG_EXTENSIONS:
            try:
                plain = _probe_plain_jpeg(fp, file_size)
            except OSError as exc:
                raise _Unreadable(exc) from None
            if plain is not None:
                logger.debug("probed %s: JPEG %dx%d, %d bytes", path, *plain, file_size)
                return ("JPEG", *plain)
            fp.seek(0)
        with _open_checked(fp, file_size) as im:
            fmt = im.format or "unknown"
            _check_format(path, fmt)
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise _Invalid(_too_large_reason(width, height), fmt, (width, height))
            if _orientation(im) in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            _check_whole(fp, im, fmt, (width, height), file_size)
    logger.debug("probed %s: %s %dx%d, %d bytes", path, fmt, width, height, file_size)
    return fmt, width, height


def _probe_plain_jpeg(fp: IO[bytes], file_size: int) -> tuple[int, int] | None:
    """``(width, height)`` after EXIF orientation of a plain, whole JPEG, read by one walk of
    its segments (:func:`loracap.core.structure.read_jpeg`) without Pillow; None for any other
    file, which Pillow then reads as before.

    Plain means what Pillow's JPEG reader accepts as format ``"JPEG"`` with nothing to decode
    for the verdict: an 8-bit baseline, extended or progressive frame of 1, 3 or 4 components
    and a non-zero size within :data:`MAX_PIXELS`, whole quantization tables, a whole structure
    ending with EOI, no Multi-Picture index (Pillow would say MPO), and an EXIF orientation
    read as Pillow reads it. Everything else -- damage, an unusual coding, data after the
    image, XMP orientation -- goes the slower way, so both ways give the same ``ImageInfo``.
    A scan of camera JPEGs spends most of its time in Pillow's Python header parsing; this
    reads the same few kilobytes in one pass.
    """
    structure, facts = read_jpeg(fp, file_size)
    if not (structure.whole and facts.frame in _PLAIN_JPEG_FRAMES and facts.precision == 8
            and facts.components in (1, 3, 4) and facts.tables_whole
            and not facts.multi_picture and facts.orientation is not None):
        return None
    width, height = facts.width, facts.height
    if not 0 < width * height <= MAX_PIXELS:
        return None
    if facts.orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def _open_image(fp: IO[bytes]) -> ImageFile.ImageFile:
    """Open the image in ``fp`` (header only), turning Pillow's refusals into ``_Invalid``."""
    try:
        return Image.open(fp)
    except UnidentifiedImageError:
        raise _Invalid(_NOT_AN_IMAGE) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        fmt, size = _read_header_size(fp)
        if size is None:
            raise _Invalid(_too_large_reason(None, None), fmt) from None
        raise _Invalid(_too_large_reason(*size), fmt, size) from None
    except OSError as exc:
        if exc.errno is not None:
            raise _Unreadable(exc) from None
        raise _Invalid(corrupt_reason(exc)) from None
    except Exception as exc:  # Pillow raises assorted errors on malformed headers
        raise _Invalid(corrupt_reason(exc)) from None


def _open_checked(fp: IO[bytes], file_size: int) -> ImageFile.ImageFile:
    """:func:`_open_image`; when Pillow refuses a JPEG, PNG or WebP (by its signature) whose
    structure is damaged, the reason says which part (``"the JPEG's frame header at byte 158
    is damaged: the file is corrupt"``) instead of Pillow's message."""
    try:
        return _open_image(fp)
    except _Invalid as invalid:
        if invalid.fmt is not None:  # too large: not damage
            raise
        try:
            fp.seek(0)
            fmt = sniff(fp.read(12))
            structure = check_structure(fp, fmt, file_size) if fmt else None
        except OSError:
            raise invalid from None
        if structure is not None and structure.whole is False:
            raise _Invalid(structure.reason, fmt) from None
        raise


def _read_header_size(fp: IO[bytes]) -> tuple[str | None, tuple[int, int] | None]:
    """Return the format and size from the header of an image too large for ``Image.open``.

    The plugin classes are constructed directly because ``Image.open`` is what applies the
    decompression-bomb check; only the header is read.
    """
    for reader in _HEADER_READERS:
        try:
            fp.seek(0)
            with reader(fp) as im:
                return im.format, im.size
        except Exception:  # not this format; try the next one
            continue
    return None, None


def _too_large_reason(width: int | None, height: int | None) -> str:
    """Explain that an image exceeds ``MAX_PIXELS``, with its size when known."""
    limit = f"the {MAX_PIXELS / 1e6:.0f}-megapixel limit (decompression-bomb guard)"
    if width is None or height is None:
        return f"the image is larger than {limit}"
    megapixels = width * height / 1e6
    return f"{width}×{height} pixels ({megapixels:.1f} megapixels) is larger than {limit}"


def _check_format(path: Path, fmt: str) -> None:
    """Raise ``_Invalid`` if the data's format does not match the file's extension."""
    if fmt in EXPECTED_FORMATS[path.suffix.lower()]:
        return
    right_ext = _EXTENSION_FOR_FORMAT.get(fmt)
    if right_ext is None:
        fix = "convert it to JPEG or PNG"
    else:
        fix = f"rename it to {right_ext}"
    raise _Invalid(f"the file is {fmt} data but named {path.suffix}; {fix}", fmt)


def _orientation(im: Image.Image) -> int:
    """Return the EXIF orientation tag (1-8) of ``im``, 1 if absent or unreadable.

    For PNG only an ``eXIf`` chunk before the image data is read: Pillow's ``getexif`` would
    decode the whole image to look for one after it.
    """
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as exc:  # malformed EXIF does not make the pixels unusable
        logger.debug("unreadable EXIF ignored: %s", exc)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_whole(fp: IO[bytes], im: ImageFile.ImageFile, fmt: str, size: tuple[int, int],
                 file_size: int) -> None:
    """Raise ``_Invalid`` if the file is cut off or damaged: its structure is checked, and the
    pixels are decoded only where the structure cannot tell."""
    try:
        structure = check_structure(fp, fmt, file_size)
    except OSError as exc:
        raise _Unreadable(exc, fmt, size) from None
    if structure.whole is None:
        _decode_data(im, fmt, size, structure.reason)
    elif not structure.whole:
        raise _Invalid(structure.reason, fmt, size)


def _decode_data(im: ImageFile.ImageFile, fmt: str, size: tuple[int, int],
                 meaning: str = "") -> None:
    """Decode the pixels of ``im``; raise ``_Invalid`` if they do not decode, with ``meaning``
    as the reason when given (what the structure suggests), else Pillow's message.

    JPEG and MPO are decoded at 1/8 scale (``draft``): libjpeg still entropy-decodes every
    coefficient of every block, only the inverse DCT is scaled, so damaged data fails as in a
    full-size decode at a fraction of the cost. Other formats are decoded fully.
    """
    try:
        if fmt in ("JPEG", "MPO"):
            width, height = im.size
            im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        im.load()
    except OSError as exc:
        if exc.errno is not None:
            raise _Unreadable(exc, fmt, size) from None
        raise _Invalid(meaning or corrupt_reason(exc), fmt, size) from None
    except Exception as exc:  # Pillow decoders raise SyntaxError, ValueError, EOFError, ...
        raise _Invalid(meaning or corrupt_reason(exc), fmt, size) from None


def pixel_problem(path: Path) -> str:
    """Decode the pixels of the image at ``path`` (:func:`_decode_data`) and return ``""``
    when they decode, else why not: a lowercase sentence fragment as
    :attr:`ImageInfo.reason` (``"truncated or corrupt image data (broken data stream when
    reading image file)"``, ``"not a regular file"``).

    What the scan's structure checks cannot see -- damaged compressed data inside an intact
    container -- is found here; exports call it for every image they copy. Raises
    :class:`OSError` when the file cannot be read (gone, no permission, an I/O error part
    way): that is no fault of its data, and the image is not to be marked invalid for it.
    """
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        return "not a regular file"
    with open(path, "rb") as fp:
        try:
            with _open_image(fp) as im:
                fmt = im.format or "unknown"
                width, height = im.size
                if width * height > MAX_PIXELS:
                    return _too_large_reason(width, height)
                _decode_data(im, fmt, (width, height))
        except _Unreadable as unreadable:
            raise unreadable.error from None
        except _Invalid as invalid:
            return invalid.reason
    return ""


def corrupt_reason(exc: BaseException) -> str:
    """Return ``"truncated or corrupt image data (<first line of Pillow's message>)"``, the
    reason an image whose data Pillow fails on is invalid (at most 120 characters of it)."""
    detail = (str(exc).splitlines() or [""])[0].strip() or type(exc).__name__
    if len(detail) > _MAX_DETAIL_CHARS:
        detail = detail[: _MAX_DETAIL_CHARS - 1] + "…"
    return f"truncated or corrupt image data ({detail})"


def prepare_for_upload(path: Path, max_side: int = 1536, quality: int = 90) -> bytes:
    """Return JPEG bytes of the image at ``path``, ready to send to a vision model.

    The copy has EXIF orientation applied, alpha flattened onto white, RGB colours (from any
    mode: P, LA, CMYK, I;16, ...), a long side of at most ``max_side`` pixels (LANCZOS; never
    upscaled) and JPEG ``quality`` (1-95), without EXIF. Large JPEGs are decoded in draft mode
    (a 1/2-1/8 scale decode by libjpeg) when that still leaves at least ``max_side`` pixels.
    The original file is only read.

    Raises:
        InputError: the file is missing, not a regular file, unreadable, not an image, larger
            than ``MAX_PIXELS``, or its data is truncated or corrupt.
        ValueError: ``max_side`` < 1 or ``quality`` outside 1-95.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be between 1 and 95, got {quality}")
    rgb = _decode(Path(path), lambda im: _upload_pixels(im, max_side))
    return jpeg_for_upload(rgb, max_side, quality)


def jpeg_for_upload(image: Image.Image, max_side: int = 1536, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB ``image`` (already oriented and flattened, e.g. a crop of
    :func:`load_rgb_on_white`) with its long side at most ``max_side`` px (LANCZOS; never
    upscaled) and JPEG ``quality``, as :func:`prepare_for_upload` sends a file."""
    buffer = io.BytesIO()
    _shrink(image.convert("RGB"), max_side).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def load_rgb_on_white(path: Path) -> Image.Image:
    """Return the image at ``path`` decoded at full size: EXIF orientation applied and RGB on
    white (:func:`to_rgb_on_white`), nothing resized. For a model with its own preprocessing
    (the WD14 tagger pads and resizes the full image itself).

    Raises:
        InputError: as :func:`prepare_for_upload` does.
    """
    return _decode(Path(path), _full_pixels)


def _decode(path: Path, pixels: Callable[[ImageFile.ImageFile], Image.Image]) -> Image.Image:
    """``pixels(image)`` of the image file at ``path``; every failure an :class:`InputError`,
    an :class:`UndecodableImageError` when the file is there but its data is not usable."""
    try:
        _regular_file_stat(path)
        fp = open(path, "rb")  # noqa: SIM115 - closed below
    except _Invalid as invalid:
        raise InputError(f'Cannot use the image "{path}": {invalid.reason}.') from None
    except OSError as exc:
        raise InputError(f'Cannot read the image "{path}": {exc.strerror or exc}.') from exc
    try:
        with fp, _open_image(fp) as im:
            return pixels(im)
    except _Unreadable as unreadable:
        error = unreadable.error
        raise InputError(f'Cannot read the image "{path}": {error.strerror or error}.') from error
    except _Invalid as invalid:
        raise UndecodableImageError(path, invalid.reason) from None
    except OSError as exc:
        if exc.errno is not None:
            raise InputError(f'Cannot read the image "{path}": {exc.strerror or exc}.') from exc
        raise UndecodableImageError(path, corrupt_reason(exc)) from exc
    except Exception as exc:  # Pillow decoders raise assorted errors on corrupt data
        raise UndecodableImageError(path, corrupt_reason(exc)) from exc


def _full_pixels(im: ImageFile.ImageFile) -> Image.Image:
    """Return ``im`` decoded at full size, oriented and flattened to RGB on white."""
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise _Invalid(_too_large_reason(width, height))
    im.load()
    return to_rgb_on_white(_apply_orientation(im))


def _upload_pixels(im: ImageFile.ImageFile, max_side: int) -> Image.Image:
    """Return ``im`` decoded, oriented, flattened to RGB and scaled to ``max_side`` at most."""
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise _Invalid(_too_large_reason(width, height))
    scale = max_side / max(width, height)
    if im.format in ("JPEG", "MPO") and scale < 1:
        im.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
    im.load()
    oriented = _apply_orientation(im)
    rgb = to_rgb_on_white(oriented)
    return _shrink(rgb, max_side)


def _apply_orientation(im: Image.Image) -> Image.Image:
    """Return ``im`` rotated/flipped as its EXIF orientation says (``ImageOps.exif_transpose``)."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # malformed EXIF: keep the pixels as stored
        logger.debug("EXIF orientation not applied: %s", exc)
        return im


#: Pillow's one-channel modes with more than 8 bits per sample: 16-bit greyscale PNG and TIFF
#: (``I;16``, or ``I`` in older Pillow), 32-bit integer and float TIFF. Pillow's
#: ``convert("L")`` (and so a trainer's ``convert("RGB")``) clips their samples at 255 instead
#: of scaling them: a 16-bit image turns almost white. 16-bit colour PNGs need nothing special:
#: Pillow reads them as 8-bit ``RGB``/``RGBA``, keeping the high byte of each sample.
WIDE_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

#: Pillow modes with an alpha channel.
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def to_8_bit(im: Image.Image) -> Image.Image:
    """Scale a :data:`WIDE_GRAY_MODES` image to 8-bit greyscale (mode ``L``), rounding; other
    images are returned unchanged.

    16-bit samples ``0..65535`` map to ``0..255`` by ``v / 257`` (65535 = 255 x 257; what an
    image editor's 8-bit export gives, so the result equals such a copy pixel for pixel). Mode
    ``I`` within ``0..65535`` is 16-bit data too; float samples within ``0..1`` (the float
    convention) are multiplied by 255; any other range is stretched from its minimum to its
    maximum.
    """
    if im.mode not in WIDE_GRAY_MODES:
        return im
    lo, hi = 0.0, 65535.0
    if not im.mode.startswith("I;16"):
        low, high = im.getextrema()  # one band: (min, max)
        assert isinstance(low, (int, float)) and isinstance(high, (int, float))
        if im.mode == "F" and 0 <= low and high <= 1:
            lo, hi = 0.0, 1.0
        elif not (im.mode == "I" and 0 <= low and high <= 65535):
            lo, hi = float(low), float(high)
    scale = 255 / (hi - lo) if hi > lo else 0.0
    # Mode F -> L truncates (and clips), so 0.5 is added to round.
    return im.convert("F").point(lambda v: v * scale - lo * scale + 0.5).convert("L")


def has_transparency(im: Image.Image) -> bool:
    """True when ``im`` has an alpha channel or a transparent palette entry / colour key."""
    return im.mode in ALPHA_MODES or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info)


def to_rgb_on_white(im: Image.Image) -> Image.Image:
    """Return an RGB copy of ``im`` as the captioner sees it: samples deeper than 8 bits scaled
    to 8 (:func:`to_8_bit`), transparency flattened onto white. Exports convert the images a
    trainer would misread with this same function, so caption and pixels agree."""
    im = to_8_bit(im)
    if has_transparency(im):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _shrink(im: Image.Image, max_side: int) -> Image.Image:
    """Return ``im`` scaled down (LANCZOS) so its long side is at most ``max_side``."""
    width, height = im.size
    if max(width, height) <= max_side:
        return im
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
