"""Cheap checks that a photo file is whole, from its container structure alone.

A scan must tell a truncated or damaged photo from a good one without decoding its pixels
(:func:`loracap.core.imaging.probe_image` calls :func:`check_structure` after Pillow has read
the header). Each check reads as little of the file as its format allows:

* **JPEG** (ITU-T T.81 Annex B, "Compressed data formats"): the marker segments from SOI to
  the first SOS are walked -- every segment's length must stay inside the file, a frame header
  (SOF, B.2.2: ``Lf = 8 + 3 × Nf``) must come before the scan header (SOS, B.2.3:
  ``Ls = 6 + 2 × Ns``) -- and the file must end with the EOI marker (``FF D9``). Zero bytes
  after EOI are allowed: some cameras and card writers pad files to a block size. Only these
  few kilobytes are read; the entropy-coded data between SOS and EOI is not. A file that does
  not end with EOI is either cut off or carries data after its image (phones append a
  motion-photo video or a maker trailer after EOI); the check cannot tell which from the
  tail alone, so it answers "unknown" and the caller decodes, as before (see
  :class:`Structure`). So does a frame type other than 8-bit Huffman baseline, extended or
  progressive (SOF0-SOF2), which libjpeg may not decode at all.
* **PNG** (PNG specification, 3rd edition / RFC 2083, section 5 "Datastream structure"): the
  8-byte signature, then every chunk: length at most 2^31 - 1 and inside the file, a type of
  four ASCII letters, its CRC-32 over type and data (``zlib.crc32``, the CRC the specification
  defines), IHDR first, at least one IDAT, IEND last. The IDAT data is read to check its CRCs
  but not inflated: a PNG is read once, at the speed of the disk -- the same bytes Pillow's
  ``verify()``, the scan's former PNG check, read -- and a bit flip anywhere in the file is
  caught, which no cheaper check could do. Bytes after IEND are ignored, as decoders do.
* **WebP** (Google's "WebP Container Specification", a RIFF container): ``RIFF``, its size,
  ``WEBP``; the size must match the file's (``file size = RIFF size + 8``); every chunk's size
  must stay inside the RIFF data; the first chunk is ``VP8 ``, ``VP8L`` or ``VP8X``; there is
  image data -- a ``VP8 `` key frame header (start code ``9D 01 2A``, RFC 6386 section 9.1)
  whose first partition fits its chunk, a ``VP8L`` header (signature byte ``0x2F``), or ``ANMF``
  frames holding one of these. Only chunk headers are read.
* Every other format (BMP) is "unknown": the caller decodes it.

The JPEG walk also notes what a scan needs from the header (:func:`read_jpeg`): the frame
header's size and coding, the EXIF orientation from the first IFD of the APP1 ``Exif``
segment (Exif 2.32 and TIFF 6.0: tag 0x0112), and the APP2 ``MPF`` segment of multi-picture
files -- so the scan of a plain JPEG needs no other reader.

Nothing here decodes pixels, imports Pillow, or writes to a file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import IO

#: Bytes read at a time when walking headers: a memory page. Larger reads cost more copying
#: than the rare extra read they save (measured on 10,000 JPEGs with camera-sized EXIF).
WINDOW = 4096

#: Bytes read from a JPEG's end to find its EOI marker; when they are all zero padding, up to
#: :data:`JPEG_MAX_PADDING` bytes are read.
JPEG_TAIL = 4096
JPEG_MAX_PADDING = 1 << 20

#: Bytes read at a time when a PNG chunk's CRC is computed over its data.
CRC_BLOCK = 1 << 20


@dataclass(frozen=True)
class Structure:
    """The verdict of :func:`check_structure`.

    ``whole`` is True when the container is intact, False when it is not -- ``reason`` then
    says why, as a lowercase sentence fragment such as ``"the PNG's IDAT chunk at byte 41 has a
    wrong checksum (CRC): the file is corrupt"`` -- and None when the structure alone cannot
    tell: the caller must decode the pixels. ``reason`` is then what a failed decode means, if
    the structure suggests it (``"the JPEG has no end-of-image marker: the file is cut
    off"``), else ``""``.
    """

    whole: bool | None
    reason: str = ""


WHOLE = Structure(True)
UNKNOWN = Structure(None)


def check_structure(fp: IO[bytes], fmt: str, file_size: int) -> Structure:
    """Check the container of the image in ``fp`` (a seekable binary file of ``file_size``
    bytes) whose data Pillow identified as ``fmt`` (``"JPEG"``, ``"MPO"``, ``"PNG"``,
    ``"WEBP"``, ...); see the module description for what each format's check reads.

    ``fp``'s position is left anywhere. Raises :class:`OSError` when the file cannot be read.
    """
    reader = _Reader(fp, file_size)
    if fmt in ("JPEG", "MPO"):
        return _check_jpeg(reader)
    if fmt == "PNG":
        return _check_png(reader)
    if fmt == "WEBP":
        return _check_webp(reader)
    return UNKNOWN


def sniff(head: bytes) -> str | None:
    """The format whose signature starts ``head`` (a file's first 12 bytes or more):
    ``"JPEG"`` (``FF D8 FF``), ``"PNG"`` (the 8-byte PNG signature) or ``"WEBP"`` (``RIFF``,
    size, ``WEBP``); None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(_PNG_SIGNATURE):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


class _Reader:
    """Reads a file at given offsets through a cached window, for few system calls."""

    def __init__(self, fp: IO[bytes], size: int) -> None:
        self.fp = fp
        self.size = size
        self._start = 0
        self._window = b""

    def at(self, pos: int, count: int) -> bytes:
        """Up to ``count`` bytes at ``pos`` (fewer at the end of the file)."""
        offset = pos - self._start
        if 0 <= offset and offset + count <= len(self._window):
            return self._window[offset:offset + count]
        self.fp.seek(pos)
        self._start, self._window = pos, self.fp.read(max(count, WINDOW))
        return self._window[:count]

    def crc32(self, pos: int, count: int) -> int:
        """The CRC-32 (``zlib.crc32``) of ``count`` bytes at ``pos``; large runs are read in
        :data:`CRC_BLOCK` pieces and not kept."""
        offset = pos - self._start
        if 0 <= offset and offset + count <= len(self._window):
            return zlib.crc32(self._window[offset:offset + count])
        self.fp.seek(pos)
        crc = 0
        while count > 0:
            block = self.fp.read(min(count, CRC_BLOCK))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            count -= len(block)
        return crc


# ---------------------------------------------------------------------------- JPEG

_SOI, _EOI, _SOS, _TEM = 0xD8, 0xD9, 0xDA, 0x01
#: Frame headers (T.81 Table B.1): SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: The frame types every libjpeg build decodes (8-bit Huffman: baseline, extended, progressive).
_SOF_DECODED = frozenset({0xC0, 0xC1, 0xC2})
#: Second bytes after ``FF`` that start no marker segment: stuffing (00), TEM (01), RSTn,
#: SOI, EOI, and a fill byte (FF).
_NOT_A_SEGMENT = frozenset({0x00, _TEM, *range(0xD0, 0xDA), 0xFF})
_MARKER_NAMES = {0xC4: "DHT", 0xCC: "DAC", 0xDB: "DQT", 0xDD: "DRI", 0xDA: "SOS", 0xFE: "COM"}

_CUT_OFF_BEFORE_SCAN = "the JPEG ends before its image data: the file is cut off"
NO_EOI = "the JPEG has no end-of-image marker: the file is cut off"


_APP1, _APP2, _DQT = 0xE1, 0xE2, 0xDB
_NOTED_MARKERS = frozenset({_APP1, _APP2, _DQT})
_EXIF_SIGNATURE = b"Exif\x00\x00"  # Exif 2.32, 4.7.2: the APP1 identifier
_XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"  # XMP part 3, 1.1.3: the APP1 namespace
_MPF_SIGNATURE = b"MPF\x00"  # CIPA DC-007 (Multi-Picture Format), 5.2: the APP2 identifier
_TIFF_ORDER = {b"II*\x00": "<", b"MM\x00*": ">"}  # TIFF 6.0, section 2: the image file header
_ORIENTATION_TAG = 0x0112  # TIFF 6.0 section 8 / Exif 2.32 4.6.4: Orientation, SHORT, 1 value
_SHORT, _LONG = 3, 4  # TIFF 6.0 section 2: field types


@dataclass
class JpegFacts:
    """What the walk of a JPEG's marker segments (:func:`read_jpeg`) learned on the way.

    ``frame`` is the frame header's marker (``0xC0`` baseline, ``0xC1`` extended, ``0xC2``
    progressive, ...; 0 when none was reached), with its sample ``precision`` in bits, its
    number of ``components`` (1 grey, 3 YCbCr or RGB, 4 CMYK) and the ``width`` and ``height``
    in pixels as stored (T.81 B.2.2: ``P``, ``Nf``, ``X`` and ``Y``). ``exif`` holds the
    ``(position, length)`` in bytes of the data of every APP1 segment starting with ``Exif\0\0``;
    ``xmp`` tells whether an APP1 segment holds XMP, ``multi_picture`` whether an APP2 segment
    holds a CIPA Multi-Picture Format index (Pillow then reads the file as MPO), and
    ``tables_whole`` whether every DQT segment is made of whole quantization tables (T.81
    B.2.4.1: ``Pq``/``Tq``, then 64 one-byte or two-byte values) -- Pillow refuses the file
    otherwise. ``orientation`` is the EXIF orientation (1-8; 1 when there is no EXIF or the
    tag is out of range) or None when the segments alone cannot say it the way Pillow does:
    several EXIF segments, an unusual tag type, an IFD outside its segment, or no EXIF
    orientation beside XMP (Pillow then looks in the XMP).
    """

    frame: int = 0
    precision: int = 0
    components: int = 0
    width: int = 0
    height: int = 0
    exif: list[tuple[int, int]] = field(default_factory=list)
    xmp: bool = False
    multi_picture: bool = False
    tables_whole: bool = True
    orientation: int | None = None

    def note(self, reader: _Reader, marker: int, pos: int, length: int) -> None:
        """Note what the APP1, APP2 or DQT segment at ``pos`` (``length`` from its length
        field, which counts itself) holds."""
        start, size = pos + 4, length - 2
        if marker == _DQT:
            self.tables_whole = self.tables_whole and _whole_tables(reader, start, size)
            return
        head = reader.at(start, min(size, len(_XMP_SIGNATURE)))
        if marker == _APP1 and head.startswith(_EXIF_SIGNATURE):
            self.exif.append((start, size))
        elif marker == _APP1 and head.startswith(_XMP_SIGNATURE):
            self.xmp = True
        elif marker == _APP2 and head.startswith(_MPF_SIGNATURE):
            self.multi_picture = True

    def read_orientation(self, reader: _Reader) -> int | None:
        """The EXIF orientation (see the class), read from the first IFD of the one EXIF
        segment."""
        if len(self.exif) > 1:
            return None
        if not self.exif:
            return None if self.xmp else 1
        try:
            return self._orientation_in(reader, *self.exif[0])
        except struct.error:  # fewer bytes than the segment promised
            return None

    def _orientation_in(self, reader: _Reader, start: int, size: int) -> int | None:
        """:meth:`read_orientation` of the EXIF data of ``size`` bytes at ``start``."""
        tiff, tiff_size = start + len(_EXIF_SIGNATURE), size - len(_EXIF_SIGNATURE)
        head = reader.at(tiff, 8)
        order = _TIFF_ORDER.get(head[:4])
        if order is None or len(head) < 8 or tiff_size < 8:
            return None
        (ifd,) = struct.unpack(order + "I", head[4:8])
        if ifd + 2 > tiff_size:
            return None
        (count,) = struct.unpack(order + "H", reader.at(tiff + ifd, 2))
        if ifd + 2 + 12 * count > tiff_size:
            return None
        found = [entry for entry in struct.iter_unpack(order + "HHI4s",
                                                       reader.at(tiff + ifd + 2, 12 * count))
                 if entry[0] == _ORIENTATION_TAG]
        if not found:
            return None if self.xmp else 1
        if len(found) > 1:
            return None
        _tag, kind, values, field_bytes = found[0]
        if values != 1 or kind not in (_SHORT, _LONG):
            return None
        (value,) = struct.unpack_from(order + ("H" if kind == _SHORT else "I"), field_bytes)
        return value if 1 <= value <= 8 else 1


def _whole_tables(reader: _Reader, start: int, size: int) -> bool:
    """True if the DQT data of ``size`` bytes at ``start`` is whole tables (T.81 B.2.4.1; a
    ``Pq`` other than 0 counts as two-byte values, as Pillow reads it)."""
    offset = 0
    while offset < size:
        kind = reader.at(start + offset, 1)
        table = 1 + (64 if kind and kind[0] >> 4 == 0 else 128)
        if size - offset < table:
            return False
        offset += table
    return True


def read_jpeg(fp: IO[bytes], file_size: int) -> tuple[Structure, JpegFacts]:
    """Check the JPEG in ``fp`` (a seekable binary file of ``file_size`` bytes) as
    :func:`check_structure` does, and return what its header says with the verdict: the
    frame, the EXIF orientation, whether it is a multi-picture file (:class:`JpegFacts`).

    One walk of the segments before the image data and one read of the file's end, the same
    bytes the structure check reads. ``fp``'s position is left anywhere. Raises
    :class:`OSError` when the file cannot be read.
    """
    reader = _Reader(fp, file_size)
    facts = JpegFacts()
    structure = _check_jpeg(reader, facts)
    facts.orientation = facts.read_orientation(reader) if facts.frame else None
    return structure, facts


def _marker_name(marker: int) -> str:
    if marker in _SOF_MARKERS:
        return f"SOF{marker - 0xC0}"
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    return _MARKER_NAMES.get(marker, f"0x{marker:02X}")


def _jpeg_corrupt(what: str) -> Structure:
    return Structure(False, f"{what}: the file is corrupt")


def _check_jpeg(reader: _Reader, facts: JpegFacts | None = None) -> Structure:
    """T.81 Annex B: SOI, marker segments up to the first SOS, EOI at the end; what the walk
    passes is noted in ``facts`` when given."""
    if reader.at(0, 2) != b"\xff\xd8":
        return _jpeg_corrupt("the JPEG does not start with a start-of-image marker")
    pos, frame, precision = 2, 0, 0
    while True:
        head = reader.at(pos, 10)  # marker, length, and the start of a frame or scan header
        if len(head) < 4 or head[0] != 0xFF or head[1] in _NOT_A_SEGMENT:
            odd = _odd_marker(head, pos)
            if isinstance(odd, Structure):
                return odd
            pos = odd
            continue
        marker, length = head[1], head[2] << 8 | head[3]
        end = pos + 2 + length
        if length < 2:
            return _jpeg_corrupt(f"the JPEG's {_marker_name(marker)} segment at byte {pos} has "
                                 f"an impossible length ({length})")
        if end > reader.size:
            return Structure(False, f"the JPEG's {_marker_name(marker)} segment at byte {pos} "
                                    "runs past the end of the file: the file is cut off")
        if marker in _SOF_MARKERS:
            if frame:
                return _jpeg_corrupt(f"the JPEG has a second frame header at byte {pos}")
            components = head[9] if len(head) == 10 else 0  # Nf (B.2.2)
            if components < 1 or length != 8 + 3 * components:
                return _jpeg_corrupt(f"the JPEG's frame header at byte {pos} is damaged")
            frame, precision = marker, head[4]
            if facts is not None:
                facts.frame, facts.precision, facts.components = marker, precision, components
                facts.height, facts.width = head[5] << 8 | head[6], head[7] << 8 | head[8]
        elif marker == _SOS:
            if not frame:
                return _jpeg_corrupt("the JPEG's image data comes before its frame header")
            components = head[4] if len(head) > 4 else 0  # Ns (B.2.3)
            if not 1 <= components <= 4 or length != 6 + 2 * components:
                return _jpeg_corrupt(f"the JPEG's scan header at byte {pos} is damaged")
            break
        elif facts is not None and marker in _NOTED_MARKERS:
            facts.note(reader, marker, pos, length)
        pos = end
    if frame not in _SOF_DECODED or precision != 8:
        return UNKNOWN  # arithmetic, lossless, 12-bit ...: the decoder says whether it can
    return _jpeg_tail(reader, end)


def _odd_marker(head: bytes, pos: int) -> Structure | int:
    """What ``head`` at ``pos`` is when it is no marker segment: the position of the next
    marker after a fill byte or a TEM marker, or the verdict on the file."""
    if len(head) < 2:
        return Structure(False, _CUT_OFF_BEFORE_SCAN)
    if head[0] != 0xFF:
        return _jpeg_corrupt(f"the JPEG has no marker at byte {pos}, where one is due")
    marker = head[1]
    if marker == 0xFF:  # a fill byte before a marker (B.1.1.2)
        return pos + 1
    if marker == _TEM:  # stands alone, without a length
        return pos + 2
    if marker == _EOI:
        return _jpeg_corrupt(f"the JPEG ends (end-of-image marker at byte {pos}) before its "
                             "image data")
    if marker in _NOT_A_SEGMENT:
        return _jpeg_corrupt(f"the JPEG has a misplaced marker 0x{marker:02X} at byte {pos}")
    return Structure(False, _CUT_OFF_BEFORE_SCAN)  # a marker without its length


def _jpeg_tail(reader: _Reader, scan_start: int) -> Structure:
    """WHOLE when the file ends with EOI (up to :data:`JPEG_MAX_PADDING` zero bytes after it
    allowed), else UNKNOWN with :data:`NO_EOI` as what a failed decode means."""
    end, size = reader.size, JPEG_TAIL
    while True:
        start = max(scan_start, end - size)
        tail = reader.at(start, end - start).rstrip(b"\x00")
        if tail or start == scan_start or reader.size - start >= JPEG_MAX_PADDING:
            break
        end, size = start, size * 4  # all zero padding so far: look further back
    if tail.endswith(b"\xff\xd9"):
        return WHOLE
    return Structure(None, NO_EOI)


# ---------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_CHUNK = 2**31 - 1  # PNG spec 5.3: a chunk's length is at most 2^31 - 1


def _png_corrupt(what: str) -> Structure:
    return Structure(False, f"{what}: the file is corrupt")


def _check_png(reader: _Reader) -> Structure:
    """PNG spec section 5: signature, chunks with their CRCs, IHDR first, IDAT, IEND last."""
    if reader.at(0, 8) != _PNG_SIGNATURE:
        return _png_corrupt("the PNG signature is damaged")
    pos, seen_data = 8, False
    while True:
        head = reader.at(pos, 8)
        if len(head) < 8:
            return Structure(False, "the PNG has no end chunk (IEND): the file is cut off")
        length, kind = struct.unpack(">I4s", head)
        if not (kind.isalpha() and kind.isascii()):
            return _png_corrupt(f"the PNG has no valid chunk at byte {pos}")
        name = kind.decode("ascii")
        if pos == 8 and kind != b"IHDR":
            return _png_corrupt("the PNG does not start with its header chunk (IHDR)")
        if length > _MAX_CHUNK:
            return _png_corrupt(f"the PNG's {name} chunk at byte {pos} has an impossible length")
        end = pos + 12 + length
        if end > reader.size:
            return Structure(False, f"the PNG's {name} chunk at byte {pos} runs past the end "
                                    "of the file: the file is cut off")
        stored = reader.at(end - 4, 4)
        if reader.crc32(pos + 4, 4 + length) != int.from_bytes(stored, "big"):
            return _png_corrupt(f"the PNG's {name} chunk at byte {pos} has a wrong checksum "
                                "(CRC)")
        seen_data = seen_data or kind == b"IDAT"
        if kind == b"IEND":
            break
        pos = end
    if not seen_data:
        return _png_corrupt("the PNG holds no image data (IDAT chunk)")
    return WHOLE


# ---------------------------------------------------------------------------- WebP

_VP8_START_CODE = b"\x9d\x01\x2a"
_VP8L_SIGNATURE = 0x2F
_ANMF_HEADER = 16  # frame X, Y, width, height, duration, flags (container spec, ANMF)


def _webp_corrupt(what: str) -> Structure:
    return Structure(False, f"{what}: the file is corrupt")


def _webp_chunks(reader: _Reader, start: int, end: int
                 ) -> tuple[list[tuple[bytes, int, int]], Structure]:
    """The chunks ``(fourcc, position, size)`` from ``start`` to ``end``; WHOLE, or why they do
    not fit. A chunk of odd size is followed by a pad byte (RIFF); the last one's may be
    missing, as libwebp accepts."""
    chunks: list[tuple[bytes, int, int]] = []
    pos = start
    while pos < end:
        head = reader.at(pos, 8)
        if len(head) < 8 or pos + 8 > end:
            return chunks, _webp_corrupt(f"the WebP has a partial chunk at byte {pos}")
        fourcc, size = struct.unpack("<4sI", head)
        data_end = pos + 8 + size
        if data_end > end:
            name = fourcc.decode("latin-1").strip()
            return chunks, _webp_corrupt(f"the WebP's {name} chunk at byte {pos} runs past the "
                                         "end of its container")
        chunks.append((fourcc, pos, size))
        pos = min(data_end + (size & 1), end)
    return chunks, WHOLE


def _check_bitstream(reader: _Reader, fourcc: bytes, pos: int, size: int) -> Structure:
    """The header of a ``VP8 `` or ``VP8L`` chunk at ``pos``: WHOLE, or why it is damaged."""
    data = reader.at(pos + 8, 10)
    if fourcc == b"VP8L":
        if len(data) < 5 or size < 5 or data[0] != _VP8L_SIGNATURE or data[4] >> 5:
            return _webp_corrupt(f"the WebP's lossless image header at byte {pos} is damaged")
        return WHOLE
    if size < 10 or len(data) < 10 or data[3:6] != _VP8_START_CODE or data[0] & 1:
        return _webp_corrupt(f"the WebP's image header at byte {pos} is damaged")
    first_partition = int.from_bytes(data[0:3], "little") >> 5
    if first_partition > size - 10:
        return _webp_corrupt(f"the WebP's image data at byte {pos} is shorter than its header "
                             "says")
    return WHOLE


def _check_webp(reader: _Reader) -> Structure:
    """Google's WebP container specification: RIFF size, chunk sizes, image data present."""
    head = reader.at(0, 12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return _webp_corrupt("the WebP's RIFF header is damaged")
    riff_end = 8 + int.from_bytes(head[4:8], "little")
    if riff_end != reader.size:
        if riff_end > reader.size:
            return Structure(False, f"the WebP file is {reader.size} bytes but its RIFF header "
                                    f"says {riff_end}: the file is cut off")
        return _webp_corrupt(f"the WebP file is {reader.size} bytes but its RIFF header says "
                             f"{riff_end}")
    chunks, verdict = _webp_chunks(reader, 12, riff_end)
    if not verdict.whole:
        return verdict
    if not chunks or chunks[0][0] not in (b"VP8 ", b"VP8L", b"VP8X"):
        return _webp_corrupt("the WebP does not start with an image chunk (VP8, VP8L or VP8X)")
    images = 0
    for fourcc, pos, size in chunks:
        if fourcc in (b"VP8 ", b"VP8L"):
            verdict = _check_bitstream(reader, fourcc, pos, size)
        elif fourcc == b"ANMF":
            verdict = _check_frame(reader, pos, size)
        else:
            continue
        if not verdict.whole:
            return verdict
        images += 1
    if not images:
        return _webp_corrupt("the WebP holds no image data (VP8, VP8L or ANMF chunk)")
    return WHOLE


def _check_frame(reader: _Reader, pos: int, size: int) -> Structure:
    """An animation frame (``ANMF``): its 16-byte header, then chunks holding one image."""
    if size < _ANMF_HEADER + 8:
        return _webp_corrupt(f"the WebP's animation frame at byte {pos} is too short")
    start = pos + 8 + _ANMF_HEADER
    chunks, verdict = _webp_chunks(reader, start, pos + 8 + size)
    if not verdict.whole:
        return verdict
    bitstreams = [chunk for chunk in chunks if chunk[0] in (b"VP8 ", b"VP8L")]
    if not bitstreams:
        return _webp_corrupt(f"the WebP's animation frame at byte {pos} holds no image")
    return _check_bitstream(reader, *bitstreams[0])
