"""Painting one cell of the image grid: thumbnail, state badge and file name.

Every cell has the same size (:func:`cell_size`), known before any image is decoded, so a
``QListView`` in icon mode lays out thousands of rows at once. The state is shown by a coloured
badge that also carries a character (:data:`~loracap.ui.image_model.STATE_BADGES`), so it does
not rely on colour alone. Selection and focus come from the widget's style and palette, so the
cell follows light and dark themes.
"""

from __future__ import annotations

import logging

from PyQt6.QtCore import QModelIndex, QObject, QRect, QRectF, QSize, QSizeF, Qt
from PyQt6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PyQt6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from loracap.core.qa.records import QACount
from loracap.core.records import ImageRecord, Review
from loracap.ui.image_model import (
    STATE_BADGES,
    STATE_COLORS,
    STATE_LABELS,
    Roles,
    state_text_color,
)
from loracap.ui.thumbnails import DEFAULT_THUMB_SIZE

log = logging.getLogger(__name__)

PADDING = 6
"""Pixels between the cell's edge and its content, and between thumbnail and file name."""


def _label_height(font: QFont | None) -> int:
    metrics = QFontMetrics(font if font is not None else QGuiApplication.font())
    return metrics.height() + 2


def cell_size(thumb_size: int = DEFAULT_THUMB_SIZE, font: QFont | None = None) -> QSize:
    """The size of one grid cell for thumbnails whose long side is ``thumb_size`` pixels.

    Width: ``thumb_size`` plus padding; height: the 4:3 thumbnail area (``thumb_size * 3 / 4``),
    one line of ``font`` (the application font if None) for the file name, and padding.
    Portrait photos are scaled down to fit the 4:3 area.
    """
    width = thumb_size + 2 * PADDING
    height = thumb_size * 3 // 4 + 3 * PADDING + _label_height(font)
    return QSize(width, height)


def thumbnail_rect(cell: QRect, thumb_size: int) -> QRect:
    """The thumbnail area of a cell: ``thumb_size`` × ``thumb_size*3/4``, centred at the top."""
    width, height = thumb_size, thumb_size * 3 // 4
    left = cell.left() + (cell.width() - width) // 2
    return QRect(left, cell.top() + PADDING, width, height)


def fit_rect(area: QRect, size: QSize | QSizeF) -> QRectF:
    """``size`` scaled (up or down) to fit ``area`` keeping its aspect ratio, centred in it."""
    if size.width() <= 0 or size.height() <= 0:
        return QRectF(area)
    scale = min(area.width() / size.width(), area.height() / size.height())
    width, height = size.width() * scale, size.height() * scale
    return QRectF(area.left() + (area.width() - width) / 2,
                  area.top() + (area.height() - height) / 2, width, height)


def _colour_group(opt: QStyleOptionViewItem) -> QPalette.ColorGroup:
    """The palette group for an item: disabled, active or inactive window."""
    if not opt.state & QStyle.StateFlag.State_Enabled:
        return QPalette.ColorGroup.Disabled
    if not opt.state & QStyle.StateFlag.State_Active:
        return QPalette.ColorGroup.Inactive
    return QPalette.ColorGroup.Active


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a cell of an :class:`~loracap.ui.image_model.ImageListModel` (or its proxy).

    ``thumb_size`` must match the provider's size. :meth:`sizeHint` is the same for every
    index: :func:`cell_size` with the application font at construction time.
    """

    def __init__(self, parent: QObject | None = None, *,
                 thumb_size: int = DEFAULT_THUMB_SIZE) -> None:
        super().__init__(parent)
        self._thumb_size = thumb_size
        self._cell = cell_size(thumb_size)
        self._badge_font = QFont(QGuiApplication.font())
        self._badge_font.setBold(True)

    @property
    def thumb_size(self) -> int:
        """Long side of the thumbnails this delegate lays out, in pixels."""
        return self._thumb_size

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex) -> QSize:
        return QSize(self._cell)

    def paint(self, painter: QPainter | None, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        if painter is None or not index.isValid():
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        painter.save()
        try:
            self._paint_background(painter, opt)
            area = thumbnail_rect(opt.rect, self._thumb_size)
            drawn = self._paint_thumbnail(painter, area,
                                          index.data(Qt.ItemDataRole.DecorationRole))
            state = index.data(Roles.STATE)
            if isinstance(state, str) and state in STATE_COLORS:
                self._paint_badge(painter, drawn, state)
            record = index.data(Roles.RECORD)
            if isinstance(record, ImageRecord):
                self._paint_review(painter, drawn, record)
            qa = index.data(Roles.QA)
            if isinstance(qa, QACount) and qa.total:
                self._paint_qa(painter, drawn, qa)
            self._paint_name(painter, opt, area)
            if opt.state & QStyle.StateFlag.State_HasFocus and style is not None:
                focus = QStyleOptionViewItem(opt)
                focus.rect = opt.rect.adjusted(1, 1, -1, -1)
                style.drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, focus, painter,
                                    widget)
        finally:
            painter.restore()

    def _paint_background(self, painter: QPainter, opt: QStyleOptionViewItem) -> None:
        """The whole cell in the palette's highlight when selected, a tint of it on hover.

        Drawn here rather than with ``PE_PanelItemViewItem``: styles highlight only the text
        rectangle they would lay out themselves, which is not where this cell puts its name.
        """
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        hovered = bool(opt.state & QStyle.StateFlag.State_MouseOver)
        if not selected and not hovered:
            return
        colour = QColor(opt.palette.color(_colour_group(opt), QPalette.ColorRole.Highlight))
        if not selected:
            colour.setAlpha(60)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(QRectF(opt.rect).adjusted(0.5, 0.5, -0.5, -0.5), 4.0, 4.0)

    def _paint_thumbnail(self, painter: QPainter, area: QRect, pixmap: object) -> QRectF:
        """Draw the pixmap fitted into ``area``; return where it went (``area`` if none).

        The layout uses the pixmap's device-independent size: a HiDPI thumbnail (device pixel
        ratio 2, twice the pixels) takes the same place as a 1x one, and its extra pixels make
        it sharp on a 2x screen. The source rectangle is the whole pixmap in its own
        (physical) pixels.
        """
        if not isinstance(pixmap, QPixmap) or pixmap.isNull():
            return QRectF(area)
        target = fit_rect(area, pixmap.deviceIndependentSize())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(target, pixmap, QRectF(pixmap.rect()))
        return target

    def _paint_badge(self, painter: QPainter, image: QRectF, state: str) -> None:
        """The state badge in the top-left corner of the drawn image."""
        metrics = QFontMetrics(self._badge_font)
        side = max(metrics.height() + 2, self._thumb_size // 9)
        badge = QRectF(image.left() + 3, image.top() + 3, side, side)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fill = STATE_COLORS[state]
        text_colour = state_text_color(state)
        outline = QColor(text_colour)
        outline.setAlpha(170)
        painter.setPen(QPen(outline, 1.0))
        painter.setBrush(fill)
        painter.drawRoundedRect(badge, side / 4, side / 4)
        painter.setFont(self._badge_font)
        painter.setPen(text_colour)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, STATE_BADGES[state])

    def _paint_review(self, painter: QPainter, image: QRectF, record: ImageRecord) -> None:
        """The review mark (✓ approved, ✗ rejected) and the rating (★n) in the top-right."""
        parts = []
        if record.review is Review.APPROVED:
            parts.append("✓")
        elif record.review is Review.REJECTED:
            parts.append("✗")
        if record.rating:
            parts.append(f"★{record.rating}")
        if not parts:
            return
        fill = (QColor("#1e7b34") if record.review is Review.APPROVED
                else QColor("#b3261e") if record.review is Review.REJECTED else QColor("#444444"))
        self._paint_mark(painter, image, " ".join(parts), fill, top=True)

    def _paint_qa(self, painter: QPainter, image: QRectF, qa: QACount) -> None:
        """The question-answer pairs in the bottom-left corner: ``Q3`` (``✓`` when every one is
        confirmed, ``!`` when one is invalid), green when all are confirmed."""
        text = f"Q{qa.total}" + ("✓" if qa.confirmed >= qa.total else "") \
            + ("!" if qa.invalid else "")
        fill = QColor("#b3261e") if qa.invalid else QColor("#1e7b34") \
            if qa.confirmed >= qa.total else QColor("#3b4a6b")
        self._paint_mark(painter, image, text, fill, top=False)

    def _paint_mark(self, painter: QPainter, image: QRectF, text: str, fill: QColor, *,
                    top: bool) -> None:
        """White ``text`` on a rounded ``fill`` plate: the top-right corner of the drawn image
        (``top``), else the bottom-left."""
        metrics = QFontMetrics(self._badge_font)
        width = metrics.horizontalAdvance(text) + 8
        height = max(metrics.height() + 2, self._thumb_size // 9)
        mark = QRectF(image.right() - 3 - width, image.top() + 3, width, height) if top \
            else QRectF(image.left() + 3, image.bottom() - 3 - height, width, height)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(mark, height / 4, height / 4)
        painter.setFont(self._badge_font)
        painter.setPen(QColor("white"))
        painter.drawText(mark, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_name(self, painter: QPainter, opt: QStyleOptionViewItem, area: QRect) -> None:
        text_rect = QRect(opt.rect.left() + PADDING, area.bottom() + 1 + PADDING,
                          opt.rect.width() - 2 * PADDING,
                          opt.rect.bottom() - area.bottom() - PADDING)
        role = (QPalette.ColorRole.HighlightedText
                if opt.state & QStyle.StateFlag.State_Selected else QPalette.ColorRole.Text)
        painter.setFont(opt.font)
        painter.setPen(opt.palette.color(_colour_group(opt), role))
        name = opt.fontMetrics.elidedText(opt.text, Qt.TextElideMode.ElideMiddle,
                                          text_rect.width())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                         name)

def state_badge_tooltip(state: str) -> str:
    """The words for a badge's character, e.g. ``"G: Generated caption"`` (for legends)."""
    return f"{STATE_BADGES[state]}: {STATE_LABELS[state]}"


__all__ = ["PADDING", "ThumbnailDelegate", "cell_size", "fit_rect", "state_badge_tooltip",
           "thumbnail_rect"]
