"""What the window's dialogs share: message boxes ("seams") and small helpers.

The dialogs live in their own modules: :mod:`loracap.ui.new_project_dialog`,
:mod:`loracap.ui.export_dialog` and :mod:`loracap.ui.settings_dialog`. Every slow step runs in a
background job (:mod:`loracap.jobs.background`), so no dialog ever freezes the window. Errors
from the core are shown as their message (a sentence a user can act on) in an inline label or a
message box, never as a traceback.

Message boxes go through the module-level functions :func:`ask_replace`, :func:`show_message`,
:func:`show_export_done` and :func:`open_folder`, looked up here at call time, so tests (and a
future non-modal UI) can replace them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, QUrl
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (
    QLabel,
    QMessageBox,
    QWidget,
)

from loracap.core.errors import LoraCapError
from loracap.core.keys import (
    KEYCHAIN_SOURCE,
    find_api_key,
)

if TYPE_CHECKING:
    from loracap.core.exports import ExportResult

log = logging.getLogger(__name__)

#: Style of a message label that tells an error.
ERROR_STYLE = "color: #c62828;"
#: Rows shown at most in the lists of invalid or uncaptioned files.
MAX_LISTED = 2000


# ---------------------------------------------------------------------------------- seams


def ask_replace(parent: QWidget | None, path: Path) -> bool:
    """Ask whether to replace the existing file ``path``; True for Replace, False for Cancel."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Replace File?")
    box.setText(f"“{path.name}” already exists in {path.parent}.")
    box.setInformativeText("Replace it with the new export? The old file will be lost.")
    replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    return box.clickedButton() is replace


def show_message(parent: QWidget | None, title: str, text: str, *, error: bool = True) -> None:
    """Show ``text`` (a complete sentence) in a modal message box."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if error else QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(text)
    box.exec()


def show_stop(parent: QWidget | None, text: str, advice: str, *,
              offer_settings: bool) -> bool:
    """Tell that a captioning batch stopped (``text``) and what to do (``advice``); with
    ``offer_settings`` an "Open Settings…" button is offered. True when it was chosen."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Captioning Stopped")
    box.setText(text)
    box.setInformativeText(advice)
    settings = (box.addButton("Open Settings…", QMessageBox.ButtonRole.ActionRole)
                if offer_settings else None)
    box.addButton(QMessageBox.StandardButton.Ok)
    box.exec()
    return settings is not None and box.clickedButton() is settings


def open_folder(folder: Path) -> bool:
    """Open ``folder`` in the system's file manager; False when that failed."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def show_export_done(parent: QWidget | None, result: ExportResult) -> None:
    """Tell the user where the export went, with an "Open Folder" button."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle("Export Finished")
    box.setText(f"Exported {result.images} image(s) to {result.path}.")
    box.setDetailedText("\n".join(
        [f"{c.path} → {c.new_name}: {c.reason}" for c in result.renames + result.conversions]
        + [f"{c.path} left out: {c.reason}" for c in result.untrainable]
        + [f"{left.path} left out, it did not decode: {left.reason}"
           for left in result.undecodable]))
    box.setInformativeText(export_summary(result))
    open_button = box.addButton("Open Folder", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Ok)
    box.exec()
    if box.clickedButton() is open_button:
        open_folder(result.path.parent)


def export_summary(result: ExportResult) -> str:
    """One or two plain sentences about what an export wrote (captions, renames, ...)."""
    parts = [f"{result.captions} caption(s) written."]
    if result.uncaptioned:
        parts.append(f"{len(result.uncaptioned)} image(s) have no caption.")
    if result.renames:
        parts.append(f"{len(result.renames)} file(s) were renamed.")
    if result.conversions:
        parts.append(f"{len(result.conversions)} image(s) were converted for the trainer.")
    if result.untrainable:
        parts.append(f"{len(result.untrainable)} image(s) too small for the trainer were left "
                     "out.")
    if result.undecodable:
        count, shown = len(result.undecodable), 5
        names = ", ".join(left.path for left in result.undecodable[:shown])
        more = f" and {count - shown} more" if count > shown else ""
        several = count != 1
        marked = (f" {'They are' if several else 'It is'} now marked invalid."
                  if all(left.marked_invalid for left in result.undecodable) else "")
        parts.append(f"{count} image{'s' if several else ''} did not decode and "
                     f"{'were' if several else 'was'} left out: {names}{more}.{marked}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------- helpers


def plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def set_message(label: QLabel, text: str, *, error: bool = False) -> None:
    """Show ``text`` in ``label`` (hidden when empty), styled as an error when ``error``."""
    label.setText(text)
    label.setStyleSheet(ERROR_STYLE if error else "")
    label.setVisible(bool(text))


def message_label(name: str) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setAccessibleName(name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setVisible(False)
    return label


def start_size(dialog: QWidget, width: int, height: int = 0) -> None:
    """Give ``dialog`` its first size: at least ``width`` × ``height`` and at least what its
    contents need. Used instead of ``setMinimumWidth`` on the dialog, which would stop its
    layout from enforcing the contents' minimum size (wrapped labels then get cut off)."""
    hint = dialog.sizeHint().expandedTo(dialog.minimumSizeHint())
    dialog.resize(max(width, hint.width()), max(height, hint.height()))


def current_key_source(backend: str = "gemini") -> str | None:
    """Where ``backend``'s API key in use comes from (``"OS keychain"``, ``"GEMINI_API_KEY"``,
    ...), or None when there is none (or the keychain cannot be read)."""
    try:
        return find_api_key(backend).source
    except LoraCapError:
        return None


def describe_key_source(source: str | None) -> str:
    """A sentence about the key in use, for the API key and settings dialogs."""
    if source is None:
        return "No API key is set yet."
    if source == KEYCHAIN_SOURCE:
        return "A key from the OS keychain is in use."
    return f"A key from the {source} environment variable is in use."
