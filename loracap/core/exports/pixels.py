"""What in an image's pixels a trainer would misread, and the re-encoding that fixes it.

Trainers load images with Pillow and call ``convert("RGB")`` (ai-toolkit's
``toolkit/data_loader.py``, kohya sd-scripts' ``load_image``). That clips 16-bit and 32-bit
pixels (``I;16``, ``I``, ``F``) to near white, and drops an alpha channel, so a transparent area
trains on whatever colour lies under it -- while the captioner saw the image flattened onto
white (:func:`loracap.core.imaging.prepare_for_upload`). Such images are re-encoded as 8-bit
PNG, flattened onto white. Every other image is copied byte for byte.

Pixels that do not decode -- damage inside the compressed data, which the scan's structure
checks cannot see (:mod:`loracap.core.structure`) -- raise
:class:`~loracap.core.errors.UndecodableImageError` (the one a batch's preparation raises too,
an :class:`~loracap.core.errors.InputError`: the file is the problem, not the export), so the
export leaves the image out instead of stopping or writing it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loracap.core.errors import ExportError, UndecodableImageError
from loracap.core.exports.base import Conversion

if TYPE_CHECKING:
    from PIL import Image

#: EXIF orientation tag (0x0112); 1 is upright.
ORIENTATION_TAG = 0x0112

#: JPEG quality used when a JPEG must be re-encoded (its orientation turned into pixels):
#: visually lossless, without chroma subsampling.
JPEG_QUALITY = 95


def _read_failure(path: Path, exc: BaseException,
                  what: str = "read") -> ExportError | UndecodableImageError:
    """The error for a failure to read ``path``: an :class:`ExportError` when the system
    could not read the file (gone, no permission), :class:`UndecodableImageError` when Pillow
    failed on its data."""
    from loracap.core.imaging import corrupt_reason

    if isinstance(exc, OSError) and exc.errno is not None:
        return ExportError(f"Cannot {what} {path}: {exc.strerror or exc}")
    return UndecodableImageError(path, corrupt_reason(exc))


@dataclass(frozen=True)
class PixelTraits:
    """What an image's header and alpha say: ``mode`` (Pillow's), ``high_bit_depth`` (more
    than 8 bits per channel or floats), ``transparent`` (some pixel is not fully opaque),
    ``orientation`` (EXIF, 1 = upright) and ``format`` (Pillow's name, e.g. ``"JPEG"``)."""

    mode: str
    high_bit_depth: bool
    transparent: bool
    orientation: int
    format: str


def probe_pixels(path: Path) -> PixelTraits:
    """Read ``path``'s header (and its alpha channel, when it has one) with Pillow.

    Raises :class:`ExportError` when the file cannot be read any more, and
    :class:`UndecodableImageError` when its header or alpha channel does not decode.
    """
    from PIL import Image  # on first use: Pillow stays off the window's startup path

    from loracap.core.imaging import WIDE_GRAY_MODES

    try:
        with Image.open(path) as im:
            orientation = int(im.getexif().get(ORIENTATION_TAG, 1) or 1)
            return PixelTraits(mode=im.mode, high_bit_depth=im.mode in WIDE_GRAY_MODES,
                               transparent=_transparent(im), orientation=orientation,
                               format=im.format or "")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise _read_failure(path, exc) from exc


def _transparent(im: Image.Image) -> bool:
    """True when some pixel is not fully opaque: an alpha channel that is 255 everywhere (or a
    transparent palette entry no pixel uses) changes nothing and does not count."""
    from loracap.core.imaging import has_transparency

    if not has_transparency(im):
        return False
    low, _high = im.convert("RGBA").getchannel("A").getextrema()  # one band: (min, max)
    return isinstance(low, (int, float)) and low < 255


def conversions_for(traits: PixelTraits, *, format_ok: bool,
                    bake_orientation: bool) -> tuple[Conversion, ...]:
    """The conversions an image with ``traits`` needs for a format: ``format_ok`` is False when
    the trainer does not read the file's format; ``bake_orientation`` when the trainer ignores
    the EXIF orientation tag. An image re-encoded for another reason has its orientation
    turned into pixels as well (the new file carries no EXIF)."""
    found: list[Conversion] = []
    if not format_ok:
        found.append(Conversion.FORMAT)
    if traits.high_bit_depth:
        found.append(Conversion.HIGH_BIT_DEPTH)
    if traits.transparent:
        found.append(Conversion.TRANSPARENCY)
    # A re-encoded image loses its EXIF tag, so its orientation goes into the pixels too.
    if (bake_orientation or found) and traits.orientation != 1:
        found.append(Conversion.ORIENTATION)
    return tuple(found)


def converted_suffix(source_suffix: str, conversions: tuple[Conversion, ...]) -> str:
    """The extension of a converted image: PNG unless only the orientation is baked (then the
    image keeps its format)."""
    if set(conversions) - {Conversion.ORIENTATION}:
        return ".png"
    return source_suffix


def encode_converted(source: Path, conversions: tuple[Conversion, ...], suffix: str) -> bytes:
    """The bytes of ``source`` after ``conversions``, encoded for ``suffix``.

    Deep or transparent pixels become what the captioner saw
    (:func:`loracap.core.imaging.to_rgb_on_white`); an image whose only conversion is its
    orientation keeps its mode. PNG and WebP are written lossless, BMP as is, a JPEG at
    :data:`JPEG_QUALITY` without chroma subsampling. Raises :class:`UndecodableImageError`
    when the source's pixels do not decode, :class:`ExportError` when it cannot be read or
    encoded.
    """
    from PIL import Image, ImageOps

    from loracap.core.imaging import to_rgb_on_white

    failures = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
    try:
        im = Image.open(source)
    except failures as exc:
        raise _read_failure(source, exc, "convert") from exc
    with im:
        try:
            im.load()
        except failures as exc:
            raise _read_failure(source, exc, "convert") from exc
        image: Image.Image = im
        try:
            if Conversion.ORIENTATION in conversions:
                image = ImageOps.exif_transpose(image)
            if Conversion.HIGH_BIT_DEPTH in conversions or Conversion.TRANSPARENCY in conversions:
                image = to_rgb_on_white(image)
            buffer = io.BytesIO()
            lower = suffix.lower()
            if lower in (".jpg", ".jpeg"):
                image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY,
                                          subsampling=0)
            elif lower == ".webp":
                image.save(buffer, format="WEBP", lossless=True)
            elif lower == ".bmp":
                image.save(buffer, format="BMP")
            else:
                image.save(buffer, format="PNG")
            return buffer.getvalue()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ExportError(f"Cannot convert {source}: {exc}") from exc
