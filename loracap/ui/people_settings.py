"""The People tab of File > Settings…: how a multi-person project names and orders its people and
whether a local detector finds them (issue 13). Shown for a project whose profile is
``multi-person`` or ``multi-person-tags``; what it edits is stored in the project
(``aliases``, ``people_order``, ``detector``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from loracap.core.errors import InputError

if TYPE_CHECKING:
    from loracap.core.project import Project

#: The orders of people offered, as stored and as shown.
ORDERS = (("left", "Left to right"), ("size", "Largest first"))

#: The profiles whose captions have one line (or tags) per person.
MULTI_PERSON_PROFILES = frozenset({"multi-person", "multi-person-tags"})


class PeoplePage(QWidget):
    """Custom aliases (comma-separated, first person first), the order of people and an optional
    local person detector (an ONNX file) of ``project``."""

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        settings = project.settings
        self.aliases_edit = QLineEdit(", ".join(settings.aliases))
        self.aliases_edit.setPlaceholderText("sksA, sksB, then unidentified woman/man/person")
        self.aliases_edit.setAccessibleName("Aliases")
        self.aliases_edit.setToolTip("Names for the first people, left to right (or largest "
                                     "first), e.g. ohwx_anna, ben; the others get the defaults")
        self.order_combo = QComboBox()
        self.order_combo.setAccessibleName("Order of people")
        for value, label in ORDERS:
            self.order_combo.addItem(label, value)
        self.order_combo.setCurrentIndex(
            max(0, [value for value, _ in ORDERS].index(settings.people_order)
                if settings.people_order in dict(ORDERS) else 0))
        self.detector_edit = QLineEdit(settings.detector)
        self.detector_edit.setPlaceholderText("None: the vision model finds the people")
        self.detector_edit.setAccessibleName("Person detector")
        self.detector_edit.setClearButtonEnabled(True)
        self.browse_button = QPushButton("Bro&wse…")
        self.browse_button.clicked.connect(self.browse)
        note = QLabel("Changes apply to the next captions; existing captions keep their "
                      "aliases until captioned again.")
        note.setWordWrap(True)

        form = QFormLayout(self)
        aliases_label = QLabel("&Aliases:")
        aliases_label.setBuddy(self.aliases_edit)
        form.addRow(aliases_label, self.aliases_edit)
        order_label = QLabel("&Order:")
        order_label.setBuddy(self.order_combo)
        form.addRow(order_label, self.order_combo)
        detector_row = QHBoxLayout()
        detector_row.addWidget(self.detector_edit, 1)
        detector_row.addWidget(self.browse_button)
        detector_label = QLabel("&Detector:")
        detector_label.setBuddy(self.detector_edit)
        form.addRow(detector_label, detector_row)
        form.addRow(note)

    def browse(self) -> None:
        """Choose a YOLO person detector exported to ONNX."""
        name, _filter = QFileDialog.getOpenFileName(
            self, "Person Detector", str(Path.home()), "ONNX models (*.onnx);;All files (*)")
        if name:
            self.detector_edit.setText(name)

    def aliases(self) -> list[str]:
        """The aliases typed; raises :class:`InputError` for a list that cannot be used."""
        from loracap.core.people import parse_aliases

        text = self.aliases_edit.text()
        return list(parse_aliases(text)) if text.strip() else []

    def apply(self) -> None:
        """Store the changes in the project; raises :class:`InputError` (nothing stored) for
        aliases that cannot be used or a detector that is not a file."""
        aliases = self.aliases()
        detector = self.detector_edit.text().strip()
        if detector and not Path(detector).expanduser().is_file():
            raise InputError(f"The person detector {detector} is not a file; choose the .onnx "
                             "file of a YOLO model exported to ONNX, or leave it empty.")
        settings = self.project.settings
        changes: dict[str, object] = {}
        if tuple(aliases) != settings.aliases:
            changes["aliases"] = aliases
        order = str(self.order_combo.currentData())
        if order != settings.people_order:
            changes["people_order"] = order
        if detector != settings.detector:
            changes["detector"] = str(Path(detector).expanduser()) if detector else ""
        if changes:
            self.project.update_settings(**changes)
