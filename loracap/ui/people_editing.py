"""Editing the people of a multi-person image in the window (issue 13, "In the window").

The preview reports what the mouse did (:mod:`loracap.ui.preview`: a box selected, moved,
resized or drawn, Delete, the context menu); :class:`PeopleEditing` turns each into an edit of
the image's :class:`~loracap.core.people.layout.PeopleLayout` stored with
:meth:`~loracap.core.project.Project.edit_people` -- the caption rebuilt with the new aliases,
one undo step, a version in the caption history -- and runs "Describe This Person Again" in
the background (:class:`~loracap.ui.one_request.OneRequest`). Its actions fill the
People menu and the preview's context menu.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QPoint
from PyQt6.QtGui import QAction, QActionGroup, QKeySequence
from PyQt6.QtWidgets import QMenu

from loracap.core.errors import LoraCapError
from loracap.ui.one_request import OneRequest
from loracap.ui.people_overlay import is_multi_person

if TYPE_CHECKING:
    from loracap.core.people.layout import PeopleLayout
    from loracap.ui.main_window import MainWindow

log = logging.getLogger(__name__)

#: What the People menu says about drawing a missing box (there is no command for it).
DRAW_HINT = "Drag on the image where there is no box to draw a missing person"


class PeopleEditing(QObject):
    """The window's people edits: actions, the People menu and the context menu."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._request = OneRequest(window, ended=self.update_actions)
        label = window.preview.image_label
        label.person_selected.connect(lambda _index: self.update_actions())
        label.box_changed.connect(self.move_box)
        label.box_drawn.connect(self.draw_box)
        label.delete_requested.connect(lambda index: self.delete_person(index))
        label.menu_requested.connect(self._context_menu)

        def action(text: str, slot: Callable[[], object], keys: str = "",
                   tip: str = "") -> QAction:
            return window.add_action(text, slot, [QKeySequence(keys)] if keys else None, tip)

        self.describe_action = action(
            "&Describe This Person Again", self.describe_again, "Ctrl+Shift+D",
            "Ask the model for a new description of the selected person only")
        self.delete_action = action(
            "D&elete This Person's Box", lambda: self.delete_person(self.selected()), "",
            "Remove the selected person and their line from the caption (Delete)")
        self.first_action = action(
            "Make This Person the &First", lambda: self.move_person(0),
            "", "Give the selected person the first alias; the others move down")
        self.earlier_action = action("Move &Earlier", lambda: self.move_person(-1, by=True),
                                     "Ctrl+[", "Give the selected person the alias before")
        self.later_action = action("Move &Later", lambda: self.move_person(1, by=True),
                                   "Ctrl+]", "Give the selected person the alias after")
        self.gender_menu = QMenu("&Gender (for Default Aliases)", window)
        self._gender_group = QActionGroup(self)
        self.gender_actions: dict[str, QAction] = {}
        for gender, text in (("woman", "&Woman"), ("man", "&Man"), ("unknown", "&Unknown")):
            item = QAction(text, self.gender_menu, checkable=True)
            item.triggered.connect(lambda _c=False, g=gender: self.set_gender(g))
            self._gender_group.addAction(item)
            self.gender_menu.addAction(item)
            self.gender_actions[gender] = item
        self.draw_hint_action = QAction(DRAW_HINT, window)
        self.draw_hint_action.setEnabled(False)
        self.menu = QMenu("&People", window)
        self.menu.aboutToShow.connect(self.update_actions)
        self._fill(self.menu)

    # ------------------------------------------------------------------ state

    def _fill(self, menu: QMenu) -> None:
        menu.addAction(self.window.show_people_action)
        menu.addSeparator()
        menu.addAction(self.describe_action)
        menu.addAction(self.delete_action)
        menu.addSeparator()
        menu.addAction(self.first_action)
        menu.addAction(self.earlier_action)
        menu.addAction(self.later_action)
        menu.addMenu(self.gender_menu)
        menu.addSeparator()
        menu.addAction(self.draw_hint_action)

    def selected(self) -> int:
        """The selected person (caption order), or -1."""
        return self.window.preview.image_label.selected

    @property
    def busy(self) -> bool:
        """Whether a person is being described."""
        return self._request.busy

    def _editable(self) -> bool:
        window = self.window
        project = window.project
        return (project is not None and not project.read_only
                and is_multi_person(project.settings.profile)
                and window.preview.image_label.editable())

    def update_actions(self) -> None:
        """Enable what applies to the current image and selected person; name the alias."""
        editable = self._editable()
        index = self.selected() if editable else -1
        marks = self.window.preview.image_label.marks or ()
        alias = marks[index].alias if 0 <= index < len(marks) else ""
        chosen = index >= 0
        runner = self.window.runner
        idle = not self.busy and not (runner is not None and runner.is_running)
        self.describe_action.setEnabled(chosen and idle)
        self.describe_action.setText(f"&Describe {alias} Again" if alias
                                     else "&Describe This Person Again")
        self.delete_action.setEnabled(chosen)
        self.delete_action.setText(f"D&elete {alias}'s Box" if alias
                                   else "D&elete This Person's Box")
        self.first_action.setEnabled(chosen and index > 0)
        self.earlier_action.setEnabled(chosen and index > 0)
        self.later_action.setEnabled(chosen and index < len(marks) - 1)
        self.gender_menu.setEnabled(chosen)
        self.draw_hint_action.setVisible(editable)
        if chosen:
            layout = self._layout()
            if layout is not None and index < len(layout.people):
                self.gender_actions[layout.people[index].gender].setChecked(True)

    # ------------------------------------------------------------------ edits

    def _layout(self) -> PeopleLayout | None:
        window = self.window
        record = window.current_record()
        if window.project is None or record is None:
            return None
        try:
            return window.project.people_layout(record.id)
        except LoraCapError as exc:
            window.show_error(str(exc))
            return None

    def _edit(self, change: Callable[[PeopleLayout], PeopleLayout], label: str,
              select: int | None = None) -> bool:
        """Apply ``change`` to the current image's people as one undo step ``label``; the
        caption and the preview follow. ``select`` is the person to select afterwards."""
        window = self.window
        if not self._editable():
            return False
        window.editor.flush()  # the caption being typed is the caption the edit starts from
        record = window.current_record()
        layout = self._layout()
        if record is None or layout is None or window.project is None:
            return False
        project = window.project
        try:
            changed = project.edit_people(record.id, change(layout), label)
        except LoraCapError as exc:
            window.statusBar().showMessage(str(exc), 8000)
            window.preview.image_label.update()
            return False
        window.refresh_image(record.id)
        if select is not None:
            window.preview.image_label.select(select)
        if changed:
            window.statusBar().showMessage(f"{label}. (Undo: Ctrl+Z)", 6000)
        self.update_actions()
        return changed

    def _alias(self, index: int) -> str:
        marks = self.window.preview.image_label.marks or ()
        return marks[index].alias if 0 <= index < len(marks) else f"person {index + 1}"

    def _size(self) -> tuple[int, int]:
        source = self.window.preview.image_label.source_size
        return source.width(), source.height()

    def move_box(self, index: int, box: tuple[int, int, int, int]) -> None:
        """The preview's drag or resize of person ``index`` to ``box`` (image pixels)."""
        self._edit(lambda layout: layout.with_box(index, box, self._size()),
                   f"Move {self._alias(index)}'s box", select=index)

    def draw_box(self, box: tuple[int, int, int, int]) -> None:
        """A box drawn where there was none: a new person, last, not described yet."""
        count = len(self.window.preview.image_label.marks or ())
        if self._edit(lambda layout: layout.with_person(box, self._size()),
                      "Draw a person's box", select=count):
            self.window.statusBar().showMessage(
                f"Box drawn for {self._alias(count)}; Ctrl+Shift+D describes them.", 10000)

    def delete_person(self, index: int) -> None:
        """Remove person ``index`` and their caption line."""
        if index >= 0:
            self._edit(lambda layout: layout.without(index), f"Delete {self._alias(index)}")

    def move_person(self, to: int, *, by: bool = False) -> None:
        """Move the selected person to position ``to`` (or ``to`` places, ``by=True``)."""
        index = self.selected()
        if index < 0:
            return
        target = index + to if by else to
        if target == index or target < 0:
            return
        alias = self._alias(index)
        self._edit(lambda layout: layout.moved(index, target),
                   f"Move {alias} to {self._alias(target)}", select=target)

    def set_gender(self, gender: str) -> None:
        """The selected person's gender, which chooses a default alias."""
        index = self.selected()
        if index >= 0:
            self._edit(lambda layout: layout.with_gender(index, gender),
                       f"Set {self._alias(index)}'s gender", select=index)

    # ------------------------------------------------------------------ describe again

    def describe_again(self) -> None:
        """Ask the model for a new description of the selected person (in the background)."""
        window = self.window
        index = self.selected()
        record = window.current_record()
        if index < 0 or record is None or window.project is None:
            window.statusBar().showMessage("Click a person's box in the preview first.", 6000)
            return
        if self.busy or (window.runner is not None and window.runner.is_running):
            window.statusBar().showMessage("Wait for the captioning under way to end.", 6000)
            return
        window.editor.flush()
        config = window.batch_config_or_ask()
        if config is None:
            return
        from loracap.core.captioning_people import describe_person_again

        alias = self._alias(index)
        project, image_id, max_side = window.project, record.id, window.settings.max_side
        self._request.start(
            config, lambda captioner: describe_person_again(
                project, image_id, index, captioner, max_side=max_side),
            what=f"describing {alias} again", activity=f"Describing {alias} again…",
            image_id=image_id, done=f"{alias} described again. (Undo: Ctrl+Z)",
            failed=f"{alias} could not be described again")
        self.update_actions()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Wait for a description under way (the window is closing; tests)."""
        return self._request.wait(timeout_ms)

    # ------------------------------------------------------------------ context menu

    def _context_menu(self, index: int, position: QPoint) -> None:
        self.update_actions()
        menu = QMenu(self.window)
        if index < 0:
            menu.addAction(self.draw_hint_action)
            menu.addAction(self.window.show_people_action)
        else:
            self._fill(menu)
        menu.exec(position)
