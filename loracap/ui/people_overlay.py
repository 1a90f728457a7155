"""The people of a multi-person caption drawn over the preview (issue 13, "In the window"):
each person's box from the image's latest detection, with the alias its caption line uses.

:func:`people_marks` reads them from the project once, when the current image changes;
:func:`map_marks` and :func:`paint_people` then only scale and draw (no disk access per paint).
Boxes are ``(left, top, right, bottom)`` in pixels of the EXIF-oriented image, as the core
stores them (:class:`loracap.core.records.PersonPart`); the preview shows that oriented image
scaled to fit, so one scale and offset maps both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from loracap.core.errors import LoraCapError
from loracap.core.prompts import Profile
from loracap.core.records import ImageRecord, ProjectSettings

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: The profiles whose captions have one line per person.
MULTI_PERSON_PROFILES = (Profile.MULTI_PERSON.value, Profile.MULTI_PERSON_TAGS.value)

#: What the preview says over an image whose detection found nobody.
NO_PERSON_NOTE = "No person found"

#: Box and label colours, one per person in caption order (repeating): bright colours that
#: black text and a black outline stand out against, on light and dark photos alike.
PALETTE = ("#ffc400", "#00e5ff", "#ff5cdb", "#76ff03", "#ff9100", "#b388ff")

#: The side of a selected box's corner handles, in logical pixels.
HANDLE = 8.0


@dataclass(frozen=True)
class PersonMark:
    """One person to draw: ``box`` ``(left, top, right, bottom)`` in pixels of the oriented
    image (right and bottom exclusive), the ``alias`` of the person's caption line, and whether
    the person is ``described`` (has a line; a box a person drew is not until described)."""

    box: tuple[int, int, int, int]
    alias: str
    described: bool = True


def is_multi_person(profile: str) -> bool:
    """Whether a project of ``profile`` writes multi-person captions."""
    return profile in MULTI_PERSON_PROFILES


def people_marks(project: Project, settings: ProjectSettings, record: ImageRecord
                 ) -> tuple[PersonMark, ...] | None:
    """The people of ``record`` in caption order with their aliases, as the caption names
    them (:meth:`loracap.core.project.Project.people_layout`: the order a person chose, else
    the project's, with its custom aliases).

    None when the project is not multi-person or the image was never detected; ``()`` when the
    detection found nobody. Reads the project only when the image has people or was edited
    (one read); a project that cannot be read gives None (logged): the overlay is a help, not
    the caption.
    """
    if not is_multi_person(settings.profile) or record.people is None:
        return None
    try:
        layout = project.people_layout(record.id)
    except LoraCapError as exc:
        log.warning("The people of image %d cannot be read: %s", record.id, exc)
        return None
    if layout is None:
        return None
    return tuple(PersonMark(person.box, alias, person.described)
                 for person, alias in zip(layout.people, layout.aliases(), strict=True))


def map_marks(marks: Sequence[PersonMark], source: QSize, shown: QRectF
              ) -> list[tuple[QRectF, str]]:
    """``(rectangle, alias)`` of each mark on screen: ``source`` is the oriented image's size
    in pixels, ``shown`` where it is drawn (widget coordinates, logical pixels). Empty when
    either is empty."""
    if source.isEmpty() or shown.isEmpty():
        return []
    sx = shown.width() / source.width()
    sy = shown.height() / source.height()
    return [(QRectF(shown.left() + left * sx, shown.top() + top * sy,
                    (right - left) * sx, (bottom - top) * sy), mark.alias)
            for mark in marks for left, top, right, bottom in (mark.box,)]


def paint_people(painter: QPainter, people: Sequence[tuple[QRectF, str]], shown: QRectF,
                 font: QFont, *, selected: int = -1, undescribed: Sequence[int] = ()) -> None:
    """Draw each person's box (a coloured line with a black outline) and a small alias label
    above its top left corner (inside the box when there is no room above), kept within
    ``shown``, the displayed image. The ``selected`` person's box is thicker with a handle at
    each corner; the people in ``undescribed`` (no caption line yet) are dashed."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    label_font = QFont(font)
    label_font.setBold(True)
    metrics = QFontMetricsF(label_font)
    painter.setFont(label_font)
    outline = QColor(0, 0, 0, 210)
    for number, (rect, alias) in enumerate(people):
        colour = QColor(PALETTE[number % len(PALETTE)])
        box = rect.intersected(shown).adjusted(1, 1, -1, -1)
        chosen = number == selected
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(outline, 6 if chosen else 4))
        painter.drawRect(box)
        line = QPen(colour, 4 if chosen else 2)
        if number in undescribed:
            line.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(line)
        painter.drawRect(box)
        if chosen:
            painter.setPen(QPen(outline, 1))
            painter.setBrush(colour)
            for corner in (box.topLeft(), box.topRight(), box.bottomLeft(), box.bottomRight()):
                painter.drawRect(QRectF(corner.x() - HANDLE / 2, corner.y() - HANDLE / 2,
                                        HANDLE, HANDLE))
        text = alias if number not in undescribed else f"{alias} (not described)"
        pad = 3.0
        width = metrics.horizontalAdvance(text) + 2 * pad
        height = metrics.height() + pad
        top = box.top() - height if box.top() - height >= shown.top() else box.top()
        left = max(shown.left(), min(box.left(), shown.right() - width))
        label = QRectF(left, top, width, height)
        painter.setPen(QPen(outline, 1))
        painter.setBrush(colour)
        painter.drawRoundedRect(label, 3, 3)
        painter.setPen(QColor("black"))
        painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


def paint_rubber_band(painter: QPainter, rect: QRectF) -> None:
    """The box a person is drawing: a white dashed line over a black one."""
    painter.save()
    painter.setBrush(QColor(255, 255, 255, 40))
    painter.setPen(QPen(QColor(0, 0, 0, 200), 3))
    painter.drawRect(rect)
    dashed = QPen(QColor("white"), 1.5)
    dashed.setStyle(Qt.PenStyle.DashLine)
    painter.setPen(dashed)
    painter.drawRect(rect)
    painter.restore()


def paint_note(painter: QPainter, text: str, shown: QRectF, font: QFont) -> None:
    """A small note (``text``, white on a dark plate) in the top left corner of ``shown``."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    pad = 4.0
    corner = QPointF(shown.left() + 6, shown.top() + 6)
    plate = QRectF(corner.x(), corner.y(), metrics.horizontalAdvance(text) + 2 * pad,
                   metrics.height() + pad)
    painter.setPen(QPen(QColor(255, 255, 255, 90), 1))
    painter.setBrush(QColor(0, 0, 0, 180))
    painter.drawRoundedRect(plate, 4, 4)
    painter.setPen(QColor("white"))
    painter.drawText(plate, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()
