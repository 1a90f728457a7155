"""The Batch Edit dialog: scope, every operation's preview, errors, labels and pre-filling.

The dialog is never exec()'d: fields are filled like a user would and the preview is either
recomputed at once (``refresh_preview``) or waited for (the debounce)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from PyQt6.QtCore import QModelIndex, Qt
from PyQt6.QtGui import QStandardItemModel
from PyQt6.QtWidgets import QCompleter, QDialog

from loracap.core.tags import (
    FIND_TIME_BUDGET_S,
    Change,
    add_tag,
    append_text,
    apply_batch,
    find_replace_preview,
    prepend_text,
    remove_tag,
    rename_tag,
)
from loracap.ui import batch_dialog as batch_dialog_mod
from loracap.ui.batch_dialog import (
    PREVIEW_DELAY_MS,
    BatchEditDialog,
    BatchTarget,
    Operation,
    PreviewModel,
)

DISPLAY = Qt.ItemDataRole.DisplayRole
TOOLTIP = Qt.ItemDataRole.ToolTipRole

BODIES = [
    "wood table, lamp",  # 1
    "oak floor, window",  # 2
    "wood wall, wood floor, Wood door",  # 3
    "",  # 4: uncaptioned
    "lamp, chair",  # 5
]


def targets(bodies: Sequence[str] = BODIES, first_id: int = 1) -> list[BatchTarget]:
    return [BatchTarget(first_id + i, f"img_{first_id + i:05d}.jpg", body)
            for i, body in enumerate(bodies)]


def bodies_of(items: Sequence[BatchTarget]) -> dict[int, str]:
    return {t.image_id: t.body for t in items}


@pytest.fixture
def make_dialog(qtbot):
    def make(selected: Sequence[BatchTarget] = (), shown: Sequence[BatchTarget] | None = None,
             **kwargs) -> BatchEditDialog:
        dialog = BatchEditDialog(selected, targets() if shown is None else shown, **kwargs)
        qtbot.addWidget(dialog)
        return dialog
    return make


def rows(dialog: BatchEditDialog) -> list[tuple[str, ...]]:
    model = dialog.preview_view.model()
    assert model is not None
    return [tuple(str(model.data(model.index(r, c), DISPLAY))
                  for c in range(model.columnCount()))
            for r in range(model.rowCount())]


def headers(dialog: BatchEditDialog) -> list[str]:
    model = dialog.preview_view.model()
    assert model is not None
    return [model.headerData(c, Qt.Orientation.Horizontal, DISPLAY)
            for c in range(model.columnCount())]


def replace(dialog: BatchEditDialog, find: str, by: str, *, regex: bool = False,
            case: bool = True) -> None:
    dialog.set_operation(Operation.REPLACE)
    dialog.regex_check.setChecked(regex)
    dialog.case_check.setChecked(case)
    dialog.find_edit.setText(find)
    dialog.replace_edit.setText(by)
    dialog.refresh_preview()


# ---------------------------------------------------------------------------------- scope


def test_scope_defaults_to_selection_of_two_or_more(make_dialog) -> None:
    shown = targets()
    dialog = make_dialog(selected=shown[:3], shown=shown)
    assert dialog.scope_combo.itemText(0) == "Selected images (3)"
    assert dialog.scope_combo.itemText(1) == "All images shown in the grid (5)"
    assert dialog.scope_combo.currentIndex() == 0
    assert dialog.scope_is_selected


def test_scope_defaults_to_shown_with_one_selected(make_dialog) -> None:
    shown = targets()
    dialog = make_dialog(selected=shown[:1], shown=shown)
    assert dialog.scope_combo.itemText(0) == "Selected images (1)"
    assert dialog.scope_combo.currentIndex() == 1
    assert not dialog.scope_is_selected
    model = dialog.scope_combo.model()
    assert isinstance(model, QStandardItemModel)
    assert model.item(0).isEnabled()


def test_scope_selected_entry_disabled_when_nothing_selected(make_dialog) -> None:
    dialog = make_dialog(selected=[])
    assert dialog.scope_combo.itemText(0) == "Selected images (0)"
    assert dialog.scope_combo.currentIndex() == 1
    model = dialog.scope_combo.model()
    assert isinstance(model, QStandardItemModel)
    assert not model.item(0).isEnabled()
    assert model.item(1).isEnabled()
    dialog.set_scope(True)  # nothing to select: stays on the shown images
    assert dialog.scope_combo.currentIndex() == 1


def test_switching_scope_recomputes(make_dialog) -> None:
    shown = targets()
    dialog = make_dialog(selected=[shown[0], shown[1]], shown=shown)
    replace(dialog, "wood", "oak")
    assert [c.image_id for c in dialog.changes()] == [1]
    dialog.set_scope(False)
    assert [c.image_id for c in dialog.changes()] == [1, 3]
    assert dialog.apply_button.text() == "Apply to 2 captions"
    dialog.scope_combo.setCurrentIndex(0)  # as a user would, without refresh_preview()
    assert [c.image_id for c in dialog.changes()] == [1]
    assert len(rows(dialog)) == 1
    assert dialog.apply_button.text() == "Apply to 1 caption"


# ---------------------------------------------------------------------------------- replace


def test_plain_replace_lists_only_changed_captions(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    assert headers(dialog) == ["File", "Before", "After", "Replacements"]
    assert rows(dialog) == [
        ("img_00001.jpg", "wood table, lamp", "oak table, lamp", "1"),
        ("img_00003.jpg", "wood wall, wood floor, Wood door", "oak wall, oak floor, Wood door",
         "2"),
    ]
    assert dialog.summary_label.text() == "2 captions change · 3 replacements"
    assert dialog.summary_label.styleSheet() == ""
    assert dialog.apply_button.text() == "Apply to 2 captions"
    assert dialog.apply_button.isEnabled()
    assert dialog.changes() == [
        Change(1, "wood table, lamp", "oak table, lamp", 1),
        Change(3, "wood wall, wood floor, Wood door", "oak wall, oak floor, Wood door", 2),
    ]


def test_single_change_summary_is_singular(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "window", "door")
    assert dialog.summary_label.text() == "1 caption changes · 1 replacement"
    assert dialog.apply_button.text() == "Apply to 1 caption"


def test_no_match_says_no_changes_and_disables_apply(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "marble", "stone")
    assert rows(dialog) == []
    assert dialog.summary_label.text() == "No caption changes"
    assert dialog.apply_button.text() == "Apply to 0 captions"
    assert not dialog.apply_button.isEnabled()


def test_regex_with_groups(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["wood table, oak table", "glass table", "table"]))
    replace(dialog, r"(\w+) table", r"\1 desk", regex=True)
    assert rows(dialog) == [
        ("img_00001.jpg", "wood table, oak table", "wood desk, oak desk", "2"),
        ("img_00002.jpg", "glass table", "glass desk", "1"),
    ]
    assert dialog.summary_label.text() == "2 captions change · 3 replacements"
    # Without "Regular expression" the same text is literal and matches nothing.
    dialog.regex_check.setChecked(False)
    assert dialog.changes() == []


def test_match_case_option(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak", case=True)
    assert sum(c.count for c in dialog.changes()) == 3
    assert dialog.case_check.isChecked()
    dialog.case_check.setChecked(False)  # recomputes at once
    assert sum(c.count for c in dialog.changes()) == 4
    assert dialog.changes()[1].after == "oak wall, oak floor, oak door"
    assert dialog.summary_label.text() == "2 captions change · 4 replacements"


def test_match_case_is_on_by_default(make_dialog) -> None:
    assert make_dialog().case_check.isChecked()
    assert not make_dialog().regex_check.isChecked()


def test_invalid_regex_shows_position_and_disables_apply(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    assert dialog.apply_button.isEnabled()
    replace(dialog, "(", "x", regex=True)
    text = dialog.summary_label.text()
    assert "regular expression" in text.lower()
    assert "position 0" in text
    assert "#c0392b" in dialog.summary_label.styleSheet()
    assert dialog.error == text
    assert not dialog.apply_button.isEnabled()
    assert dialog.changes() == []
    assert rows(dialog) == []
    # Fixing the expression clears the error.
    dialog.find_edit.setText(r"(wood)")
    dialog.refresh_preview()
    assert dialog.error == ""
    assert dialog.summary_label.styleSheet() == ""
    assert dialog.apply_button.isEnabled()


def test_replacement_with_missing_group_is_an_error(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", r"\2", regex=True)
    assert dialog.error
    assert "#c0392b" in dialog.summary_label.styleSheet()
    assert not dialog.apply_button.isEnabled()


def test_catastrophic_expression_shows_too_slow_instead_of_freezing(
        make_dialog, monkeypatch: pytest.MonkeyPatch) -> None:
    # (a|aa)+$ on 60 a's and a "!" backtracks for hours without a time limit.
    calls: list[str] = []
    real = batch_dialog_mod.find_replace_preview

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_dialog_mod, "find_replace_preview", counted)
    dialog = make_dialog(shown=targets([*BODIES, "a" * 60 + "!"]))
    dialog.show()
    replace(dialog, "wood", "oak")
    assert dialog.apply_button.isEnabled()
    started = time.monotonic()
    replace(dialog, r"(a|aa)+$", "x", regex=True)
    assert time.monotonic() - started < FIND_TIME_BUDGET_S + 5
    text = dialog.summary_label.text()
    assert text.startswith("This expression is too slow on these captions; simplify it")
    assert dialog.error == text
    assert "#c0392b" in dialog.summary_label.styleSheet()
    assert not dialog.apply_button.isEnabled()
    assert dialog.apply_button.toolTip() == text
    assert dialog.changes() == [] and rows(dialog) == []
    dialog.accept()
    assert dialog.isVisible()  # nothing applied
    # Typing a replacement does not run the slow expression again.
    runs = len(calls)
    dialog.replace_edit.setText("y")
    dialog.refresh_preview()
    assert len(calls) == runs
    assert dialog.error == text
    # A normal expression works again at once.
    dialog.find_edit.setText(r"(wood) ")
    dialog.replace_edit.setText(r"\1en ")
    dialog.refresh_preview()
    assert dialog.error == ""
    assert dialog.summary_label.styleSheet() == ""
    assert [r[2] for r in rows(dialog)] == ["wooden table, lamp",
                                            "wooden wall, wooden floor, Wood door"]
    assert dialog.apply_button.isEnabled()


def test_the_issue_expression_previews_normally(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["word " * 8 + "!", "a wooden table by the window."]))
    replace(dialog, r"(\w+\s?)+\.$", "X.", regex=True)
    assert dialog.error == ""
    assert rows(dialog) == [("img_00002.jpg", "a wooden table by the window.", "X.", "1")]


def test_expression_too_big_to_compile_is_refused(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "(w{1000}){1000}", "x", regex=True)
    assert "repeats too much" in dialog.error
    assert not dialog.apply_button.isEnabled()


def test_empty_find_is_a_neutral_hint(make_dialog) -> None:
    dialog = make_dialog()
    assert dialog.find_edit.text() == ""
    assert dialog.summary_label.text() == "Type the text to find."
    assert dialog.summary_label.styleSheet() == ""
    assert dialog.error == ""
    assert not dialog.apply_button.isEnabled()


# ---------------------------------------------------------------------------------- tags, text


def test_add_tag_at_end_and_start_skips_captions_with_it(make_dialog) -> None:
    dialog = make_dialog()
    dialog.set_operation(Operation.ADD_TAG)
    assert dialog.position_combo.currentText() == "At the end"
    dialog.tag_edit.setText("lamp")
    dialog.refresh_preview()
    assert headers(dialog) == ["File", "Before", "After"]
    assert [(c.image_id, c.after) for c in dialog.changes()] == [
        (2, "oak floor, window, lamp"),
        (3, "wood wall, wood floor, Wood door, lamp"),
        (4, "lamp"),  # an uncaptioned image gets a caption
    ]
    assert dialog.summary_label.text() == "3 captions change"
    dialog.position_combo.setCurrentIndex(1)  # recomputes at once
    assert dialog.position_combo.currentText() == "At the start"
    assert [(c.image_id, c.after) for c in dialog.changes()] == [
        (2, "lamp, oak floor, window"),
        (3, "lamp, wood wall, wood floor, Wood door"),
        (4, "lamp"),
    ]
    assert rows(dialog)[2] == ("img_00004.jpg", "(empty)", "lamp")


def test_remove_tag(make_dialog) -> None:
    dialog = make_dialog()
    dialog.set_operation(Operation.REMOVE_TAG)
    assert not dialog.position_combo.isVisibleTo(dialog)
    dialog.tag_edit.setText("lamp")
    dialog.refresh_preview()
    assert [(c.image_id, c.after) for c in dialog.changes()] == [(1, "wood table"), (5, "chair")]
    assert dialog.summary_label.text() == "2 captions change"


def test_rename_tag(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["cat, sofa", "dog", "cat, tabby cat", "Cat"]))
    dialog.set_operation(Operation.RENAME_TAG)
    dialog.rename_from_edit.setText("cat")
    dialog.rename_to_edit.setText("tabby cat")
    dialog.refresh_preview()
    # A caption that has both merges them; "Cat" is another tag (tags are case-sensitive).
    assert [(c.image_id, c.after) for c in dialog.changes()] == [
        (1, "tabby cat, sofa"), (3, "tabby cat")]


def test_rename_tag_without_new_name_is_a_hint(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["cat, sofa"]))
    dialog.set_operation(Operation.RENAME_TAG)
    dialog.rename_from_edit.setText("cat")
    dialog.refresh_preview()
    assert dialog.changes() == []
    assert dialog.summary_label.text() == "Type the new name of the tag."
    assert dialog.error == ""


def test_prepend_and_append_text(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["a, b", "A room.", ""]))
    dialog.set_operation(Operation.PREPEND)
    dialog.text_edit.setText("photo")
    dialog.refresh_preview()
    assert [c.after for c in dialog.changes()] == ["photo, a, b", "photo, A room.", "photo"]
    dialog.set_operation(Operation.APPEND)  # the text field is shared
    assert [c.after for c in dialog.changes()] == ["a, b, photo", "A room. photo", "photo"]
    assert dialog.summary_label.text() == "3 captions change"


def test_custom_separator_is_used(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["a; b"]), separator="; ")
    dialog.set_operation(Operation.ADD_TAG)
    dialog.tag_edit.setText("c")
    dialog.refresh_preview()
    assert [c.after for c in dialog.changes()] == ["a; b; c"]


def test_operation_combo_labels_and_fields(make_dialog) -> None:
    dialog = make_dialog()
    labels = [dialog.operation_combo.itemText(i) for i in range(dialog.operation_combo.count())]
    assert labels == ["Find and replace", "Add tag", "Remove tag", "Rename tag",
                      "Prepend text", "Append text"]
    dialog.show()
    assert dialog.find_edit.isVisible() and not dialog.tag_edit.isVisible()
    dialog.operation_combo.setCurrentIndex(1)  # as a user would
    assert dialog.operation is Operation.ADD_TAG
    assert dialog.tag_edit.isVisible() and dialog.position_combo.isVisible()
    assert not dialog.find_edit.isVisible() and not dialog.regex_check.isVisible()
    dialog.set_operation(Operation.RENAME_TAG)
    assert dialog.rename_from_edit.isVisible() and dialog.rename_to_edit.isVisible()
    assert not dialog.tag_edit.isVisible()


# ---------------------------------------------------------------------------------- labels


def test_labels(make_dialog) -> None:
    shown = targets(["wood, cat"] * 12)
    dialog = make_dialog(shown=shown)
    replace(dialog, "wood", "oak")
    assert dialog.label() == 'Replace "wood" with "oak" in 12 captions'
    dialog.set_operation(Operation.ADD_TAG)
    dialog.tag_edit.setText("lamp")
    dialog.refresh_preview()
    assert dialog.label() == 'Add tag "lamp" to 12 captions'
    dialog.set_operation(Operation.REMOVE_TAG)
    dialog.tag_edit.setText("cat")
    dialog.refresh_preview()
    assert dialog.label() == 'Remove tag "cat" from 12 captions'
    dialog.set_operation(Operation.RENAME_TAG)
    dialog.rename_from_edit.setText("cat")
    dialog.rename_to_edit.setText("tabby cat")
    dialog.refresh_preview()
    assert dialog.label() == 'Rename tag "cat" to "tabby cat" in 12 captions'
    dialog.set_operation(Operation.PREPEND)
    dialog.text_edit.setText("photo")
    dialog.refresh_preview()
    assert dialog.label() == 'Prepend "photo" to 12 captions'
    dialog.set_operation(Operation.APPEND)
    assert dialog.label() == 'Append "photo" to 12 captions'


def test_label_singular_and_long_text(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["x"]))
    dialog.set_operation(Operation.ADD_TAG)
    dialog.tag_edit.setText("a" * 100)
    dialog.refresh_preview()
    label = dialog.label()
    assert label.startswith('Add tag "aaaa') and label.endswith('…" to 1 caption')
    assert len(label) < 80


# ---------------------------------------------------------------------------------- pre-fill


def test_prefill_rename_tag_from_constructor(make_dialog) -> None:
    dialog = make_dialog(shown=targets(["cat, sofa", "dog"]), operation=Operation.RENAME_TAG,
                         tag="cat")
    assert dialog.operation is Operation.RENAME_TAG
    assert dialog.operation_combo.currentText() == "Rename tag"
    assert dialog.rename_from_edit.text() == "cat"
    assert dialog.rename_to_edit.text() == ""
    assert dialog.find_edit.text() == "" and dialog.tag_edit.text() == ""
    assert dialog.summary_label.text() == "Type the new name of the tag."
    dialog.rename_to_edit.setText("kitten")
    dialog.refresh_preview()
    assert [c.after for c in dialog.changes()] == ["kitten, sofa"]


def test_prefill_remove_tag_previews_at_once(make_dialog) -> None:
    dialog = make_dialog(operation=Operation.REMOVE_TAG, tag="lamp")
    assert dialog.tag_edit.text() == "lamp"
    assert dialog.operation_combo.currentText() == "Remove tag"
    assert [c.image_id for c in dialog.changes()] == [1, 5]
    assert dialog.apply_button.isEnabled()
    assert dialog.label() == 'Remove tag "lamp" from 2 captions'


def test_vocabulary_completers(make_dialog) -> None:
    dialog = make_dialog(vocabulary=["wooden table", "lamp", "Table lamp"])
    for edit in (dialog.tag_edit, dialog.rename_from_edit, dialog.rename_to_edit):
        completer = edit.completer()
        assert isinstance(completer, QCompleter)
        assert completer.caseSensitivity() == Qt.CaseSensitivity.CaseInsensitive
        assert completer.filterMode() == Qt.MatchFlag.MatchContains
        completer.setCompletionPrefix("TABLE")
        found = {completer.completionModel().index(i, 0).data()
                 for i in range(completer.completionCount())}
        assert found == {"wooden table", "Table lamp"}


# ---------------------------------------------------------------------------------- preview


def test_preview_debounces_typing(qtbot, make_dialog) -> None:
    dialog = make_dialog()
    dialog.find_edit.setText("wood")
    dialog.replace_edit.setText("oak")
    assert dialog.changes() == []  # not yet: the preview waits for a pause in typing
    qtbot.waitUntil(lambda: len(dialog.changes()) == 2, timeout=PREVIEW_DELAY_MS * 20)
    assert dialog.summary_label.text() == "2 captions change · 3 replacements"


def test_tooltips_hold_the_full_text(make_dialog) -> None:
    long_body = ", ".join(f"tag{i}" for i in range(200)) + ", wood"
    dialog = make_dialog(shown=targets([long_body]))
    replace(dialog, "wood", "oak <b>")
    model = dialog.preview_view.model()
    assert model is not None
    before_tip = model.data(model.index(0, PreviewModel.BEFORE), TOOLTIP)
    after_tip = model.data(model.index(0, PreviewModel.AFTER), TOOLTIP)
    assert long_body in before_tip
    assert "oak &lt;b&gt;" in after_tip  # escaped: a caption is never read as markup
    assert model.data(model.index(0, PreviewModel.BEFORE), DISPLAY) == long_body
    assert model.data(model.index(0, PreviewModel.FILE), TOOLTIP) == "img_00001.jpg"
    assert model.data(model.index(0, PreviewModel.BEFORE), PreviewModel.DIFF_ROLE) == len(
        long_body) - len("wood")


def test_ten_thousand_targets(make_dialog) -> None:
    shown = targets([f"photo {i}, wood table" for i in range(10_000)])
    dialog = make_dialog(selected=shown, shown=shown)
    replace(dialog, "wood", "oak")
    model = dialog.preview_view.model()
    assert model is not None
    assert model.rowCount() == 10_000
    assert model.rowCount(model.index(0, 0)) == 0
    assert dialog.summary_label.text() == "10000 captions change · 10000 replacements"
    assert dialog.apply_button.text() == "Apply to 10000 captions"


# ---------------------------------------------------------------------------------- results


def test_changes_equal_the_core_functions(make_dialog) -> None:
    shown = targets(["wood table, lamp", "Wood, cat", "", "cat, lamp, cat", "a room."])
    bodies = bodies_of(shown)
    dialog = make_dialog(shown=shown)

    replace(dialog, r"(\w+)d", r"<\1>", regex=True, case=False)
    assert dialog.changes() == find_replace_preview(bodies, r"(\w+)d", r"<\1>", regex=True,
                                                    case_sensitive=False)
    assert dialog.changes()  # the comparison is not between two empty lists

    dialog.set_operation(Operation.ADD_TAG)
    dialog.tag_edit.setText(" lamp ")
    dialog.position_combo.setCurrentIndex(1)
    assert dialog.changes() == apply_batch(bodies, lambda b: add_tag(b, "lamp", at_start=True))

    dialog.set_operation(Operation.REMOVE_TAG)
    dialog.tag_edit.setText("cat")
    dialog.refresh_preview()
    assert dialog.changes() == apply_batch(bodies, lambda b: remove_tag(b, "cat", ", "))

    dialog.set_operation(Operation.RENAME_TAG)
    dialog.rename_from_edit.setText("cat")
    dialog.rename_to_edit.setText("lamp")
    dialog.refresh_preview()
    assert dialog.changes() == apply_batch(bodies, lambda b: rename_tag(b, "cat", "lamp", ", "))

    dialog.set_operation(Operation.PREPEND)
    dialog.text_edit.setText("Photo.")
    dialog.refresh_preview()
    assert dialog.changes() == apply_batch(bodies, lambda b: prepend_text(b, "Photo.", ", "))

    dialog.set_operation(Operation.APPEND)
    assert dialog.changes() == apply_batch(bodies, lambda b: append_text(b, "Photo.", ", "))


def test_changes_returns_a_copy(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    dialog.changes().clear()
    assert len(dialog.changes()) == 2


# ---------------------------------------------------------------------------------- buttons


def test_apply_accepts(qtbot, make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    dialog.show()
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert len(dialog.changes()) == 2


def test_apply_with_stale_preview_first_shows_it(qtbot, make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    dialog.show()
    dialog.find_edit.setText("lamp")  # the preview would update after the debounce
    dialog.accept()
    assert dialog.isVisible()  # not applied: the user has not seen these changes yet
    assert [c.image_id for c in dialog.changes()] == [1, 5]
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_accept_does_nothing_without_changes(qtbot, make_dialog) -> None:
    dialog = make_dialog()
    dialog.show()
    dialog.accept()
    assert dialog.isVisible()


def test_cancel_and_escape_reject(qtbot, make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    dialog.show()
    dialog.setResult(-1)
    qtbot.keyClick(dialog.find_edit, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert dialog.result() == QDialog.DialogCode.Rejected

    other = make_dialog()
    replace(other, "wood", "oak")
    other.show()
    other.buttons.rejected.emit()
    assert other.result() == QDialog.DialogCode.Rejected
    assert not other.isVisible()


def test_preview_model_is_read_only(make_dialog) -> None:
    dialog = make_dialog()
    replace(dialog, "wood", "oak")
    model = dialog.preview_view.model()
    assert model is not None
    flags = model.flags(model.index(0, 1))
    assert not flags & Qt.ItemFlag.ItemIsEditable
    assert model.data(QModelIndex(), DISPLAY) is None
    assert model.data(model.index(0, 0), Qt.ItemDataRole.UserRole) == dialog.changes()[0]


def test_file_column_width_survives_a_refresh(make_dialog) -> None:
    dialog = make_dialog()
    header = dialog.preview_view.horizontalHeader()
    assert header is not None
    assert header.sectionSize(PreviewModel.FILE) == 170
    header.resizeSection(PreviewModel.FILE, 240)  # the user widens it
    replace(dialog, "wood", "oak")
    dialog.set_operation(Operation.ADD_TAG)
    assert header.sectionSize(PreviewModel.FILE) == 240
