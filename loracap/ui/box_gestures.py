"""Mouse gestures on the people's boxes over the preview (issue 13, "In the window"): select a
box, drag it, resize it by an edge or a corner, draw a missing one where there is no box.

:class:`BoxGestures` only computes: which box and which part of it is under the pointer, and
the rectangle a drag gives, in the preview's logical pixels. The preview turns the end of a
gesture into a box in pixels of the oriented image (:func:`to_image_box`) and emits it; the
window stores it (:mod:`loracap.ui.people_editing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt

#: How near an edge (logical pixels) the pointer grabs it to resize the box.
EDGE_GRAB = 6.0
#: The smallest drag (logical pixels) that counts as moving or drawing, not a click.
MIN_DRAG = 4.0
#: The smallest box (logical pixels a side) a drag draws; a smaller one is a slip of the mouse
#: and draws nothing.
MIN_DRAWN = 12.0

Edges = frozenset[str]


@dataclass
class _Drag:
    kind: str  # "move", "resize" or "draw"
    index: int  # the person, -1 when drawing
    start: QPointF
    origin: QRectF
    edges: Edges = frozenset()
    current: QRectF | None = None


def _edges_at(rect: QRectF, pos: QPointF) -> Edges:
    """The edges of ``rect`` within :data:`EDGE_GRAB` of ``pos`` (none when far outside)."""
    grab = rect.adjusted(-EDGE_GRAB, -EDGE_GRAB, EDGE_GRAB, EDGE_GRAB)
    if not grab.contains(pos):
        return frozenset()
    edges = set()
    if abs(pos.x() - rect.left()) <= EDGE_GRAB:
        edges.add("left")
    elif abs(pos.x() - rect.right()) <= EDGE_GRAB:
        edges.add("right")
    if abs(pos.y() - rect.top()) <= EDGE_GRAB:
        edges.add("top")
    elif abs(pos.y() - rect.bottom()) <= EDGE_GRAB:
        edges.add("bottom")
    return frozenset(edges)


def cursor_for(edges: Edges, inside: bool) -> Qt.CursorShape:
    """The pointer shape over a box: a resize arrow on an edge or a corner, the move cross
    inside, the crosshair (draw a box) elsewhere."""
    if edges in ({"left", "top"}, {"right", "bottom"}):
        return Qt.CursorShape.SizeFDiagCursor
    if edges in ({"right", "top"}, {"left", "bottom"}):
        return Qt.CursorShape.SizeBDiagCursor
    if edges & {"left", "right"}:
        return Qt.CursorShape.SizeHorCursor
    if edges & {"top", "bottom"}:
        return Qt.CursorShape.SizeVerCursor
    return Qt.CursorShape.SizeAllCursor if inside else Qt.CursorShape.CrossCursor


class BoxGestures:
    """The state of one gesture over ``rects`` (each person's box on screen, caption order)
    within ``shown`` (where the image is drawn)."""

    def __init__(self) -> None:
        self._drag: _Drag | None = None

    @property
    def active(self) -> bool:
        """Whether a press started a gesture that has not ended."""
        return self._drag is not None

    def hit(self, rects: Sequence[QRectF], pos: QPointF, selected: int = -1
            ) -> tuple[int, Edges]:
        """``(person, edges)`` under ``pos``: the selected box's edges first (its corners are
        grabbed even where another box overlaps), then the smallest box whose edge or inside
        is there; ``(-1, ∅)`` over no box."""
        if 0 <= selected < len(rects):
            edges = _edges_at(rects[selected], pos)
            if edges:
                return selected, edges
        candidates = [(rect.width() * rect.height(), index) for index, rect in enumerate(rects)
                      if rect.adjusted(-EDGE_GRAB, -EDGE_GRAB, EDGE_GRAB, EDGE_GRAB)
                      .contains(pos)]
        if not candidates:
            return -1, frozenset()
        index = min(candidates)[1]
        return index, _edges_at(rects[index], pos)

    def press(self, rects: Sequence[QRectF], shown: QRectF, pos: QPointF,
              selected: int = -1) -> int:
        """Start a gesture at ``pos``; returns the person pressed (-1: none, a box may be
        drawn from here when ``pos`` is on the image)."""
        index, edges = self.hit(rects, pos, selected)
        if index >= 0:
            kind = "resize" if edges else "move"
            self._drag = _Drag(kind, index, QPointF(pos), QRectF(rects[index]), edges)
        elif shown.contains(pos):
            self._drag = _Drag("draw", -1, QPointF(pos), QRectF(pos, pos))
        else:
            self._drag = None
        return index

    def move(self, shown: QRectF, pos: QPointF) -> QRectF | None:
        """The rectangle the gesture gives with the pointer at ``pos`` (kept within
        ``shown``), or None before the pointer moved :data:`MIN_DRAG`."""
        drag = self._drag
        if drag is None:
            return None
        delta = pos - drag.start
        if drag.current is None and max(abs(delta.x()), abs(delta.y())) < MIN_DRAG:
            return None
        if drag.kind == "draw":
            rect = QRectF(drag.start, pos).normalized().intersected(shown)
        elif drag.kind == "move":
            rect = QRectF(drag.origin)
            dx = min(max(delta.x(), shown.left() - rect.left()), shown.right() - rect.right())
            dy = min(max(delta.y(), shown.top() - rect.top()), shown.bottom() - rect.bottom())
            rect.translate(dx, dy)
        else:
            rect = QRectF(drag.origin)
            x = min(max(pos.x(), shown.left()), shown.right())
            y = min(max(pos.y(), shown.top()), shown.bottom())
            if "left" in drag.edges:
                rect.setLeft(x)
            if "right" in drag.edges:
                rect.setRight(x)
            if "top" in drag.edges:
                rect.setTop(y)
            if "bottom" in drag.edges:
                rect.setBottom(y)
            rect = rect.normalized()
        drag.current = rect
        return rect

    def release(self) -> tuple[str, int, QRectF] | None:
        """End the gesture: ``(kind, person, rectangle)`` when it moved, resized or drew a
        box, None for a click or a drawn box smaller than :data:`MIN_DRAWN`."""
        drag, self._drag = self._drag, None
        if drag is None or drag.current is None:
            return None
        if drag.kind == "draw" and min(drag.current.width(), drag.current.height()) < MIN_DRAWN:
            return None
        return drag.kind, drag.index, drag.current

    def cancel(self) -> None:
        """Forget the gesture (Escape)."""
        self._drag = None

    def current(self) -> tuple[str, int, QRectF] | None:
        """The gesture under way, to draw: ``(kind, person, rectangle)``."""
        drag = self._drag
        if drag is None or drag.current is None:
            return None
        return drag.kind, drag.index, drag.current


def to_image_box(rect: QRectF, source: QSize, shown: QRectF) -> tuple[int, int, int, int]:
    """``rect`` (logical pixels over ``shown``) as ``(left, top, right, bottom)`` in pixels of
    the oriented image of ``source`` size, rounded; the inverse of
    :func:`loracap.ui.people_overlay.map_marks`."""
    sx = source.width() / shown.width()
    sy = source.height() / shown.height()
    return (round((rect.left() - shown.left()) * sx), round((rect.top() - shown.top()) * sy),
            round((rect.right() - shown.left()) * sx),
            round((rect.bottom() - shown.top()) * sy))
