"""The images sent for one person and for the scene of a multi-person caption.

Issue 13: "the crop is the box plus 20 px of context at 1000-px scale (clamped to the image),
with everything outside the box dimmed to 30 % so the model looks at the right person";
"the scene is the whole image with the people dimmed". Images are RGB and already
EXIF-oriented (:func:`loracap.core.imaging.load_rgb_on_white` gives such an image), so the
boxes of :func:`loracap.core.people.detection.box_from_gemini` apply to them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from loracap.core.people.detection import PersonBox

#: Context around a person's box, per mille of the image's long side: 20 px at 1000-px scale.
CONTEXT_PER_MILLE = 20
#: Brightness kept where an image is dimmed: RGB values are multiplied by it.
DIM = 0.30


def context_pixels(width: int, height: int, per_mille: float = CONTEXT_PER_MILLE) -> int:
    """The context margin in pixels for an image of ``width`` x ``height``: ``per_mille``
    thousandths of the long side, rounded half up -- "20 px at 1000-px scale" read as 20 px
    for an image whose long side is 1000 px, scaled with the image (40 px at 2000 px, 10 px
    at 500 px). Raises ``ValueError`` for a negative ``per_mille``."""
    if per_mille < 0:
        raise ValueError(f"The context must not be negative, not {per_mille}.")
    return math.floor(per_mille * max(width, height) / 1000 + 0.5)


def crop_rect(box: PersonBox, width: int, height: int,
              per_mille: float = CONTEXT_PER_MILLE) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the crop for ``box`` in an image of ``width`` x
    ``height`` pixels: the box grown by :func:`context_pixels` on each side, clamped to the
    image (so a box at an edge gets no context on that side). Right and bottom exclusive.
    Raises ``ValueError`` when the box does not lie within the image."""
    _check_inside(box, width, height)
    margin = context_pixels(width, height, per_mille)
    return (max(box.left - margin, 0), max(box.top - margin, 0),
            min(box.right + margin, width), min(box.bottom + margin, height))


def _check_inside(box: PersonBox, width: int, height: int) -> None:
    if box.right > width or box.bottom > height:
        raise ValueError(f"The box {box.as_tuple()} does not lie within the {width} x {height} "
                         "image; find the people again.")


def _check_image(image: Image.Image, dim: float) -> None:
    if image.mode != "RGB":
        raise ValueError(f"Expected an RGB image, got mode {image.mode}.")
    if not 0 <= dim <= 1:
        raise ValueError(f"The dimming must be between 0 and 1, not {dim}.")


def _dimmed(image: Image.Image, dim: float) -> Image.Image:
    """``image`` with each RGB value multiplied by ``dim``, rounded half up."""
    table = [math.floor(value * dim + 0.5) for value in range(256)]
    return image.point(table * 3)


def person_crop(image: Image.Image, box: PersonBox, *,
                context_per_mille: float = CONTEXT_PER_MILLE, dim: float = DIM) -> Image.Image:
    """A new image: the part of ``image`` given by :func:`crop_rect` (the box and its context
    margin), with the margin dimmed to ``dim`` of its brightness (each RGB value multiplied by
    0.30 and rounded half up) and the box itself untouched. Other people inside the box stay
    as they are. ``image`` is RGB and EXIF-oriented; it is not changed.

    Raises ``ValueError`` for a non-RGB image, a ``dim`` outside 0-1 or a box outside the image.
    """
    _check_image(image, dim)
    rect = crop_rect(box, image.width, image.height, context_per_mille)
    crop = image.crop(rect)
    inner = (box.left - rect[0], box.top - rect[1], box.right - rect[0], box.bottom - rect[1])
    crop.paste(_dimmed(crop, dim), mask=_mask(crop.size, [inner], inside=False))
    return crop


def scene_image(image: Image.Image, boxes: Sequence[PersonBox], dim: float = DIM) -> Image.Image:
    """A new image: ``image`` with every person's box dimmed to ``dim`` of its brightness
    (overlapping boxes are dimmed once), the rest untouched -- what the scene request is sent.
    ``image`` is RGB and EXIF-oriented; it is not changed. No boxes: a copy.

    Raises ``ValueError`` for a non-RGB image, a ``dim`` outside 0-1 or a box outside the image.
    """
    _check_image(image, dim)
    for box in boxes:
        _check_inside(box, image.width, image.height)
    scene = image.copy()
    if boxes:
        rects = [box.as_tuple() for box in boxes]
        scene.paste(_dimmed(image, dim), mask=_mask(image.size, rects, inside=True))
    return scene


def _mask(size: tuple[int, int], rects: Sequence[tuple[int, int, int, int]], *,
          inside: bool) -> Image.Image:
    """An ``L`` mask of ``size``: 255 inside ``rects`` (or outside them, ``inside=False``)."""
    mask = Image.new("L", size, 0 if inside else 255)
    draw = ImageDraw.Draw(mask)
    for left, top, right, bottom in rects:
        # ImageDraw's rectangle includes its last pixel; the rects exclude it.
        draw.rectangle((left, top, right - 1, bottom - 1), fill=255 if inside else 0)
    return mask
