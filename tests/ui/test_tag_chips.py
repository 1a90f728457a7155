"""The tag chips widget, driven with real widgets: chips, ×, reorder, input, recent tags, completer.

Real drag and drop cannot be driven offscreen, so reordering goes through ``move_tag`` (what a
drop calls) and through synthetic drag-enter and drop events handed to the widget.
"""

from __future__ import annotations

from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt
from PyQt6.QtGui import QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import QApplication, QToolButton
from pytestqt.qtbot import QtBot

from loracap.ui.tag_chips import MAX_RECENT, TAG_INDEX_MIME, FlowLayout, TagChipsWidget

LEFT = Qt.MouseButton.LeftButton
BODY = "a red lamp, oak table, soft light"


def make_widget(qtbot: QtBot, body: str | None = BODY, **kwargs: str) -> TagChipsWidget:
    widget = TagChipsWidget()
    qtbot.addWidget(widget)
    widget.resize(400, 200)
    widget.show()
    widget.set_caption(body, **kwargs)
    return widget


def record(widget: TagChipsWidget) -> tuple[list[str], list[list[str]]]:
    bodies: list[str] = []
    recents: list[list[str]] = []
    widget.body_changed.connect(bodies.append)
    widget.recent_changed.connect(recents.append)
    return bodies, recents


def remove_button(widget: TagChipsWidget, tag: str) -> QToolButton:
    buttons = [b for b in widget.findChildren(QToolButton, "removeTag")
               if b.toolTip() == f"Remove {tag}" and not b.isHidden()]
    assert len(buttons) == 1
    return buttons[0]


def recent_buttons(widget: TagChipsWidget) -> list[QToolButton]:
    return [b for b in widget.findChildren(QToolButton, "recentTag") if not b.isHidden()]


def drag_mime(index: int) -> QMimeData:
    mime = QMimeData()
    mime.setData(TAG_INDEX_MIME, str(index).encode("ascii"))
    return mime


# -- Chips ---------------------------------------------------------------------------------


def test_chips_show_the_tags_in_caption_order_duplicates_included(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "b, a , (red:1.2),, c, a")
    assert widget.chip_texts() == ["b", "a", "(red:1.2)", "c", "a"]


def test_a_sentence_caption_is_one_chip(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "A red lamp stands on an oak table.")
    assert widget.chip_texts() == ["A red lamp stands on an oak table."]


def test_a_long_tag_is_elided_on_the_chip_with_the_full_text_in_its_tooltip(qtbot: QtBot) -> None:
    long_tag = "a very long tag that goes on and on past forty characters"
    widget = make_widget(qtbot, f"lamp, {long_tag}")
    chip = remove_button(widget, long_tag).parentWidget()
    assert chip is not None
    assert chip.toolTip() == long_tag
    label_text = chip.label.text()  # type: ignore[attr-defined]
    assert label_text.endswith("…") and len(label_text) == 40
    assert long_tag.startswith(label_text[:-1])


def test_chips_wrap_onto_several_rows_in_a_narrow_widget(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, ", ".join(f"tag number {n}" for n in range(12)))
    widget.resize(200, 600)
    QApplication.processEvents()
    layout = widget.chip_area.layout()
    assert isinstance(layout, FlowLayout)
    tops = {widget._chips[n].geometry().top() for n in range(12)}
    assert len(tops) > 1
    assert layout.heightForWidth(200) > layout.heightForWidth(2000)


def test_clicking_a_chips_remove_button_removes_exactly_that_tag(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    bodies, _ = record(widget)
    qtbot.mouseClick(remove_button(widget, "oak table"), LEFT)
    assert bodies == ["a red lamp, soft light"]
    assert widget.chip_texts() == ["a red lamp", "soft light"]


def test_remove_keeps_the_other_characters_of_the_caption(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "a red lamp ,oak table,  soft light")
    bodies, _ = record(widget)
    qtbot.mouseClick(remove_button(widget, "soft light"), LEFT)
    assert bodies == ["a red lamp ,oak table"]


# -- Reordering ----------------------------------------------------------------------------


def test_move_tag_reorders_and_emits_the_joined_tags(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "a,b ,  c")
    bodies, _ = record(widget)
    widget.move_tag(0, 2)
    assert bodies == ["b, c, a"]
    assert widget.chip_texts() == ["b", "c", "a"]
    widget.move_tag(2, 0)
    assert bodies == ["b, c, a", "a, b, c"]


def test_move_tag_to_the_same_position_or_out_of_range_emits_nothing(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    bodies, _ = record(widget)
    widget.move_tag(1, 1)
    widget.move_tag(5, 0)
    widget.move_tag(-1, 0)
    assert bodies == []
    assert widget.chip_texts() == ["a red lamp", "oak table", "soft light"]


def test_drag_enter_accepts_only_the_chip_mime_type(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    mime = drag_mime(0)  # kept alive: the event does not own its data
    ours = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.MoveAction, mime, LEFT,
                           Qt.KeyboardModifier.NoModifier)
    widget.dragEnterEvent(ours)
    assert ours.isAccepted()

    text = QMimeData()
    text.setText("oak table")
    other = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.MoveAction, text, LEFT,
                            Qt.KeyboardModifier.NoModifier)
    widget.dragEnterEvent(other)
    assert not other.isAccepted()


def test_dropping_a_chip_on_another_moves_it_there(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    QApplication.processEvents()
    bodies, _ = record(widget)
    target = widget._chips[2]
    pos = QPointF(widget.chip_area.mapTo(widget, target.geometry().center()))
    mime = drag_mime(0)
    drop = QDropEvent(pos, Qt.DropAction.MoveAction, mime, LEFT,
                      Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(drop)
    assert drop.isAccepted()
    assert bodies == ["oak table, soft light, a red lamp"]


# -- Adding --------------------------------------------------------------------------------


def test_add_tags_from_text_adds_missing_tags_once_and_updates_recent(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    bodies, recents = record(widget)
    widget.input.setText("red, oak table ,, brass")
    widget.add_tags_from_text(widget.input.text())
    assert bodies == [BODY + ", red, brass"]
    assert widget.chip_texts()[-2:] == ["red", "brass"]
    assert widget.recent_tags() == ["brass", "red"]
    assert recents == [["brass", "red"]]
    assert widget.input.text() == ""


def test_add_tags_from_text_with_only_present_tags_emits_nothing(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    bodies, recents = record(widget)
    widget.add_tags_from_text("oak table, soft light")
    assert bodies == [] and recents == []


def test_enter_in_the_input_adds_the_typed_tag(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "")
    bodies, _ = record(widget)
    qtbot.keyClicks(widget.input, "lamp")
    qtbot.keyClick(widget.input, Qt.Key.Key_Return)
    assert bodies == ["lamp"]
    assert widget.chip_texts() == ["lamp"]


def test_backspace_in_the_empty_input_removes_the_last_tag(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    bodies, _ = record(widget)
    widget.input.setText("x")
    qtbot.keyClick(widget.input, Qt.Key.Key_Backspace)  # deletes the "x" only
    assert bodies == [] and widget.input.text() == ""
    qtbot.keyClick(widget.input, Qt.Key.Key_Backspace)
    assert bodies == ["a red lamp, oak table"]
    assert widget.chip_texts() == ["a red lamp", "oak table"]


def test_a_custom_separator_splits_adds_moves_and_removes(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "red lamp; oak table, varnished", separator="; ")
    bodies, _ = record(widget)
    assert widget.chip_texts() == ["red lamp", "oak table, varnished"]
    widget.add_tags_from_text("brass; dusk")
    assert bodies[-1] == "red lamp; oak table, varnished; brass; dusk"
    widget.move_tag(3, 0)
    assert bodies[-1] == "dusk; red lamp; oak table, varnished; brass"
    qtbot.mouseClick(remove_button(widget, "red lamp"), LEFT)
    assert bodies[-1] == "dusk; oak table, varnished; brass"


# -- Recent tags ---------------------------------------------------------------------------


def test_recent_buttons_are_checked_when_their_tag_is_in_the_caption(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    widget.set_recent_tags(["brass", "oak table"])
    buttons = recent_buttons(widget)
    assert [b.text() for b in buttons] == ["brass", "oak table"]
    assert [b.isChecked() for b in buttons] == [False, True]
    widget.set_caption("brass")
    assert [b.isChecked() for b in recent_buttons(widget)] == [True, False]


def test_clicking_a_recent_button_toggles_its_tag(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    widget.set_recent_tags(["oak table", "brass"])
    bodies, recents = record(widget)

    qtbot.mouseClick(recent_buttons(widget)[1], LEFT)  # brass: absent -> added, to the front
    assert bodies == [BODY + ", brass"]
    assert widget.recent_tags() == ["brass", "oak table"]
    assert recents == [["brass", "oak table"]]
    assert [b.isChecked() for b in recent_buttons(widget)] == [True, True]

    qtbot.mouseClick(recent_buttons(widget)[1], LEFT)  # oak table: present -> removed
    assert bodies[-1] == "a red lamp, soft light, brass"
    assert widget.recent_tags() == ["brass", "oak table"]
    assert [b.isChecked() for b in recent_buttons(widget)] == [True, False]


def test_recent_list_is_deduplicated_and_capped(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "")
    _, recents = record(widget)
    widget.set_recent_tags(["a", "b", "a", " b ", ""] + [f"t{n}" for n in range(20)])
    assert widget.recent_tags()[:3] == ["a", "b", "t0"]
    assert len(widget.recent_tags()) == MAX_RECENT
    assert len(recent_buttons(widget)) == MAX_RECENT
    assert recents == []  # set_recent_tags does not emit

    widget.add_tags_from_text("t5, new")
    recent = widget.recent_tags()
    assert recent[:3] == ["new", "t5", "a"]
    assert len(recent) == MAX_RECENT and len(set(recent)) == MAX_RECENT
    assert recents == [recent]


def test_the_recent_row_is_hidden_while_the_list_is_empty(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    assert widget.recent_row.isHidden()
    widget.set_recent_tags(["lamp"])
    assert not widget.recent_row.isHidden()


# -- Showing captions ----------------------------------------------------------------------


def test_set_caption_never_emits_body_changed(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    bodies, recents = record(widget)
    widget.set_caption("x, y")
    widget.set_caption("x, y")
    widget.set_caption(None)
    widget.set_caption(BODY, separator="; ")
    assert bodies == [] and recents == []
    assert widget.chip_texts() == [BODY]


def test_set_caption_none_clears_chips_and_disables_input_and_recent(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    widget.set_recent_tags(["lamp"])
    bodies, _ = record(widget)
    widget.set_caption(None)
    assert widget.chip_texts() == []
    assert not widget.input.isEnabled()
    assert not any(b.isEnabled() for b in recent_buttons(widget))
    widget.add_tags_from_text("lamp")
    widget.move_tag(0, 1)
    assert bodies == []
    widget.set_caption("")
    assert widget.input.isEnabled()
    assert all(b.isEnabled() for b in recent_buttons(widget))


def test_input_has_its_placeholder_and_accessible_name(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    assert widget.input.placeholderText() == "Add tag…"
    assert widget.input.accessibleName() == "Add tag"


# -- Completion ----------------------------------------------------------------------------


def completions(widget: TagChipsWidget, prefix: str) -> list[str]:
    completer = widget.input.completer()
    assert completer is not None
    completer.setCompletionPrefix(prefix)
    model = completer.completionModel()
    assert model is not None
    return [model.index(row, 0).data() for row in range(model.rowCount())]


def test_completer_offers_contains_matches_project_tags_first(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    widget.set_vocabulary(["wooden table", "lamp"], ["oak table", "lamp"])
    assert completions(widget, "table") == ["wooden table", "oak table"]
    assert completions(widget, "LAMP") == ["lamp"]
    completer = widget.input.completer()
    assert completer is not None
    assert completer.filterMode() == Qt.MatchFlag.MatchContains
    assert completer.caseSensitivity() == Qt.CaseSensitivity.CaseInsensitive
    assert completer.completionMode() == completer.CompletionMode.PopupCompletion


def test_completer_completes_the_tag_after_the_last_separator(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    widget.set_vocabulary(["oak table"])
    completer = widget.completer
    assert completer.splitPath("red lamp, oa") == ["oa"]
    widget.input.setText("red lamp, oa")
    index = completer.model().index(0, 0)  # type: ignore[union-attr]
    assert completer.pathFromIndex(index) == "red lamp, oak table"


def test_a_100000_tag_vocabulary_is_set(qtbot: QtBot) -> None:
    widget = make_widget(qtbot)
    widget.set_vocabulary([f"tag_{n}" for n in range(100_000)], ["extra tag"])
    assert completions(widget, "AG_9999") == ["tag_9999"] + [f"tag_9999{n}" for n in range(10)]
    assert completions(widget, "extra") == ["extra tag"]


MULTI = ("sksA: A woman in a blue dress, smiling\n"
         "sksB: A man in a black suit, arms crossed\nScene: A modern office, white walls")


def test_a_multi_line_caption_has_its_chips_per_line(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, MULTI)
    widget.resize(900, 300)
    assert widget.chip_texts() == [
        "sksA: A woman in a blue dress", "smiling", "sksB: A man in a black suit",
        "arms crossed", "Scene: A modern office", "white walls"]
    # Each line begins a new row of chips, however wide the widget is.
    qtbot.waitUntil(lambda: widget.chip_area.isVisible())
    chips = [c for c in widget.findChildren(QToolButton, "removeTag") if not c.isHidden()]
    rows = sorted({button.parentWidget().y() for button in chips})
    assert len(rows) == 3


def test_removing_a_chip_changes_only_its_line(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "sksA: A woman, smiling\nsksB: A man, smiling")
    bodies, _recents = record(widget)
    widget._remove_at(3)  # the second line's "smiling"
    assert bodies == ["sksA: A woman, smiling\nsksB: A man"]


def test_a_typed_tag_goes_to_the_current_line(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, MULTI)
    bodies, _recents = record(widget)
    widget.set_current_line(1)
    assert widget.input.placeholderText() == "Add tag to sksB…"
    widget.add_tags_from_text("red tie")
    assert bodies[-1].splitlines()[1] == "sksB: A man in a black suit, arms crossed, red tie"
    assert bodies[-1].splitlines()[0] == MULTI.splitlines()[0]
    # "smiling" is on sksA's line, not sksB's: sksB gets it too.
    widget.add_tags_from_text("smiling")
    assert bodies[-1].splitlines()[1].endswith(", red tie, smiling")
    # Backspace in the empty input removes the current line's last tag.
    widget._remove_last_tag()
    assert bodies[-1].splitlines()[1].endswith(", red tie")
    assert bodies[-1].splitlines()[2] == MULTI.splitlines()[2]


def test_a_chip_dropped_on_another_line_moves_there(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "sksA: A woman, smiling\nsksB: A man, hat")
    bodies, _recents = record(widget)
    widget.move_tag(1, 3)  # "smiling" onto sksB's "hat"
    assert bodies == ["sksA: A woman\nsksB: A man, smiling, hat"]


def test_recent_tags_toggle_on_the_current_line(qtbot: QtBot) -> None:
    widget = make_widget(qtbot, "sksA: A woman, smiling\nsksB: A man")
    bodies, _recents = record(widget)
    widget.set_recent_tags(["smiling"])
    widget.set_current_line(1)
    [button] = [b for b in recent_buttons(widget) if not b.isHidden()]
    assert not button.isChecked()  # sksB's line has no "smiling"
    button.click()
    assert bodies[-1] == "sksA: A woman, smiling\nsksB: A man, smiling"
