"""The Tags panel: the tag frequency model's incremental updates, sorting, filtering, clicks."""

from __future__ import annotations

import random

import pytest
from PyQt6.QtCore import QModelIndex, QPoint, Qt
from PyQt6.QtWidgets import QHeaderView

from loracap.ui.tag_panel import (
    COUNT_COLUMN,
    SORT_ROLE,
    TAG_COLUMN,
    TAG_ROLE,
    TagFrequencyModel,
    TagPanel,
)

COUNTS = {"lamp": 12, "desk lamp": 3, "Window": 7, "chair": 1, "table": 9}


def proxy_tags(panel: TagPanel) -> list[str]:
    return [panel.proxy.index(row, TAG_COLUMN).data() for row in range(panel.proxy.rowCount())]


def proxy_counts(panel: TagPanel) -> list[int]:
    return [panel.proxy.index(row, COUNT_COLUMN).data() for row in range(panel.proxy.rowCount())]


def model_contents(model: TagFrequencyModel) -> dict[str, int]:
    """What the model shows through data(), row by row."""
    out: dict[str, int] = {}
    for row in range(model.rowCount()):
        tag = model.index(row, TAG_COLUMN).data()
        assert tag not in out, f"{tag!r} is in two rows"
        out[tag] = model.index(row, COUNT_COLUMN).data()
    return out


@pytest.fixture
def panel(qtbot) -> TagPanel:
    widget = TagPanel()
    qtbot.addWidget(widget)
    widget.model.set_counts(COUNTS)
    return widget


@pytest.fixture
def shown(panel: TagPanel, qtbot) -> TagPanel:
    """The panel on screen, with a size, so rows have a place to click."""
    panel.resize(320, 480)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


# ---------------------------------------------------------------------- the model


def test_set_counts_shows_every_tag_by_count_descending(panel: TagPanel) -> None:
    assert model_contents(panel.model) == COUNTS
    assert proxy_tags(panel) == ["lamp", "table", "Window", "desk lamp", "chair"]
    assert proxy_counts(panel) == [12, 9, 7, 3, 1]
    assert panel.summary.text() == "5 tags"
    header = panel.view.horizontalHeader()
    assert header.sortIndicatorSection() == COUNT_COLUMN
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder


def test_set_counts_drops_zero_counts_and_resets(qtbot) -> None:
    model = TagFrequencyModel()
    model.set_counts({"a": 1})
    with qtbot.waitSignal(model.modelReset, timeout=0):
        model.set_counts({"b": 2, "gone": 0, "neg": -1})
    assert model_contents(model) == {"b": 2}
    assert model.count("gone") == 0 and model.count("a") == 0


def test_model_roles_headers_and_flags(panel: TagPanel) -> None:
    model = panel.model
    row = model.row_of("lamp")
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in (0, 1)] == ["Tag", "Count"]
    tag_index, count_index = model.index(row, TAG_COLUMN), model.index(row, COUNT_COLUMN)
    assert tag_index.data() == "lamp" and count_index.data() == 12
    assert count_index.data(SORT_ROLE) == 12
    assert model.index(model.row_of("Window"), TAG_COLUMN).data(SORT_ROLE) == "window"
    assert count_index.data(TAG_ROLE) == "lamp"
    assert tag_index.data(Qt.ItemDataRole.ToolTipRole) == (
        "12 images have this tag \u2014 click to show them, "
        "Ctrl-click to show the images without it"
    )
    assert not model.flags(tag_index) & Qt.ItemFlag.ItemIsEditable
    assert model.flags(tag_index) & Qt.ItemFlag.ItemIsSelectable
    assert model.count("lamp") == 12 and model.count("nope") == 0
    assert sorted(model.tags()) == sorted(COUNTS)
    assert model.row_of("nope") == -1
    with pytest.raises(IndexError):
        model.tag_at(len(COUNTS))


def test_apply_delta_updates_a_count_in_place(panel: TagPanel, qtbot) -> None:
    model = panel.model
    row = model.row_of("chair")
    changed: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(
        lambda tl, br, _roles: changed.append((tl.row(), tl.column(), br.row(), br.column()))
    )
    with qtbot.assertNotEmitted(model.modelAboutToBeReset), \
            qtbot.assertNotEmitted(model.rowsInserted), \
            qtbot.assertNotEmitted(model.rowsRemoved):
        model.apply_delta({"chair": 20})
    assert changed == [(row, TAG_COLUMN, row, COUNT_COLUMN)]
    assert model.row_of("chair") == row
    assert model.count("chair") == 20
    # The proxy re-sorts on its own (dynamicSortFilter): chair now leads.
    assert proxy_tags(panel)[0] == "chair"
    assert proxy_counts(panel) == sorted(proxy_counts(panel), reverse=True)


def test_apply_delta_with_an_unchanged_count_emits_nothing(panel: TagPanel, qtbot) -> None:
    with qtbot.assertNotEmitted(panel.model.dataChanged):
        panel.model.apply_delta({"lamp": 12})
        panel.model.apply_delta({})
        panel.model.apply_delta({"never seen": 0})
    assert model_contents(panel.model) == COUNTS


def test_apply_delta_inserts_a_new_tag(panel: TagPanel, qtbot) -> None:
    model = panel.model
    with qtbot.assertNotEmitted(model.modelAboutToBeReset), \
            qtbot.waitSignal(model.rowsInserted, timeout=0) as inserted:
        model.apply_delta({"sofa": 5})
    _parent, first, last = inserted.args
    assert (first, last) == (len(COUNTS), len(COUNTS))
    assert model.tag_at(first) == "sofa" and model.count("sofa") == 5
    assert proxy_tags(panel) == ["lamp", "table", "Window", "sofa", "desk lamp", "chair"]
    assert panel.summary.text() == "6 tags"


def test_apply_delta_removes_a_tag_whose_count_drops_to_zero(panel: TagPanel, qtbot) -> None:
    model = panel.model
    row = model.row_of("Window")
    with qtbot.assertNotEmitted(model.modelAboutToBeReset), \
            qtbot.waitSignal(model.rowsRemoved, timeout=0) as removed:
        model.apply_delta({"Window": 0})
    _parent, first, last = removed.args
    assert (first, last) == (row, row)
    assert "Window" not in model.tags() and model.count("Window") == 0
    expected = {tag: n for tag, n in COUNTS.items() if tag != "Window"}
    assert model_contents(model) == expected
    # Rows after the removed one were re-indexed.
    assert all(model.row_of(tag) == r for r, tag in enumerate(model.tags()))
    assert panel.summary.text() == "4 tags"


def test_apply_delta_mixed_batch(panel: TagPanel, qtbot) -> None:
    model = panel.model
    removed: list[tuple[int, int]] = []
    model.rowsRemoved.connect(lambda _p, first, last: removed.append((first, last)))
    rows = {tag: model.row_of(tag) for tag in COUNTS}
    with qtbot.assertNotEmitted(model.modelAboutToBeReset):
        model.apply_delta({"lamp": 0, "table": 0, "chair": -3, "sofa": 2, "bed": 4, "Window": 8})
    assert model_contents(model) == {"desk lamp": 3, "Window": 8, "sofa": 2, "bed": 4}
    # Removed bottom up, so each signal names the rows as they were before the call; the
    # removed rows are exactly those of the three tags, each once.
    gone = [r for first, last in removed for r in range(first, last + 1)]
    assert sorted(gone) == sorted([rows["lamp"], rows["table"], rows["chair"]])
    assert [first for first, _last in removed] == sorted(
        (first for first, _last in removed), reverse=True)
    assert proxy_tags(panel) == ["Window", "bed", "desk lamp", "sofa"]


def test_random_deltas_match_a_plain_dict(qtbot, qtmodeltester) -> None:
    panel = TagPanel()
    qtbot.addWidget(panel)
    model = panel.model
    rng = random.Random(20240611)
    expected = {f"tag{n}": rng.randint(1, 50) for n in range(40)}
    model.set_counts(expected)
    # Qt's own model tester keeps checking every signal of both models from here on.
    qtmodeltester.check(model)
    qtmodeltester.check(panel.proxy)
    resets: list[bool] = []
    model.modelAboutToBeReset.connect(lambda: resets.append(True))
    next_name = 40
    for _ in range(300):
        delta: dict[str, int] = {}
        for _change in range(rng.randint(1, 6)):
            op = rng.random()
            if expected and op < 0.45:  # change a count
                delta[rng.choice(sorted(expected))] = rng.randint(1, 60)
            elif expected and op < 0.7:  # drop a tag
                delta[rng.choice(sorted(expected))] = rng.choice([0, 0, -1])
            else:  # a new tag, in mixed case
                name = rng.choice(["Tag", "tag", "TAG"]) + str(next_name)
                next_name += 1
                delta[name] = rng.randint(1, 60)
        model.apply_delta(delta)
        for tag, count in delta.items():
            if count > 0:
                expected[tag] = count
            else:
                expected.pop(tag, None)
        assert model_contents(model) == expected
    assert not resets
    assert model.counts() == expected
    assert all(model.row_of(tag) == row for row, tag in enumerate(model.tags()))
    assert all(model.count(tag) == count for tag, count in expected.items())
    # The proxy kept sorting as counts changed.
    assert proxy_counts(panel) == sorted(expected.values(), reverse=True)
    assert panel.summary.text() == f"{len(expected)} tags"


# ---------------------------------------------------------------------- the panel


def test_panel_view_setup(panel: TagPanel) -> None:
    view = panel.view
    assert view.model() is panel.proxy
    assert panel.proxy.sourceModel() is panel.model
    assert panel.proxy.dynamicSortFilter()
    assert view.isSortingEnabled()
    assert view.alternatingRowColors()
    assert view.verticalHeader().isHidden()
    assert view.editTriggers() == view.EditTrigger.NoEditTriggers
    assert view.selectionBehavior() == view.SelectionBehavior.SelectRows
    header = view.horizontalHeader()
    assert header.sectionResizeMode(TAG_COLUMN) == QHeaderView.ResizeMode.Stretch
    assert panel.filter_edit.placeholderText() == "Filter tags\u2026"
    assert panel.filter_edit.isClearButtonEnabled()


def test_empty_panel_summary(qtbot) -> None:
    panel = TagPanel()
    qtbot.addWidget(panel)
    assert panel.summary.text() == "No tags"
    panel.model.set_counts({"one": 1})
    assert panel.summary.text() == "1 tag"


def test_filter_narrows_rows_and_updates_summary(panel: TagPanel) -> None:
    panel.filter_edit.setText("LAMP")
    assert proxy_tags(panel) == ["lamp", "desk lamp"]
    assert panel.summary.text() == "2 of 5 tags"
    panel.filter_edit.setText("win")
    assert proxy_tags(panel) == ["Window"]
    assert panel.summary.text() == "1 of 5 tags"
    panel.filter_edit.setText("zzz")
    assert proxy_tags(panel) == []
    assert panel.summary.text() == "0 of 5 tags"
    panel.filter_edit.clear()
    assert len(proxy_tags(panel)) == 5
    assert panel.summary.text() == "5 tags"


def test_filter_stays_applied_as_tags_come_and_go(panel: TagPanel) -> None:
    panel.filter_edit.setText("lamp")
    panel.model.apply_delta({"floor lamp": 30, "rug": 2})
    assert proxy_tags(panel) == ["floor lamp", "lamp", "desk lamp"]
    assert panel.summary.text() == "3 of 7 tags"
    panel.model.apply_delta({"lamp": 0, "rug": 0})
    assert proxy_tags(panel) == ["floor lamp", "desk lamp"]
    assert panel.summary.text() == "2 of 5 tags"


def test_header_sort_by_tag_name_ignores_case(panel: TagPanel) -> None:
    panel.view.sortByColumn(TAG_COLUMN, Qt.SortOrder.AscendingOrder)
    assert proxy_tags(panel) == ["chair", "desk lamp", "lamp", "table", "Window"]
    panel.view.sortByColumn(TAG_COLUMN, Qt.SortOrder.DescendingOrder)
    assert proxy_tags(panel) == ["Window", "table", "lamp", "desk lamp", "chair"]


def test_header_click_sorts_by_tag(shown: TagPanel, qtbot) -> None:
    header = shown.view.horizontalHeader()
    x = header.sectionViewportPosition(TAG_COLUMN) + header.sectionSize(TAG_COLUMN) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, QPoint(x, header.height() // 2))
    assert header.sortIndicatorSection() == TAG_COLUMN
    tags = proxy_tags(shown)
    assert tags in (sorted(tags, key=str.casefold), sorted(tags, key=str.casefold, reverse=True))
    assert tags != ["lamp", "table", "Window", "desk lamp", "chair"]


def test_count_sorts_numerically(qtbot) -> None:
    panel = TagPanel()
    qtbot.addWidget(panel)
    panel.model.set_counts({"nine": 9, "ten": 10, "hundred": 100})
    assert proxy_counts(panel) == [100, 10, 9]
    panel.view.sortByColumn(COUNT_COLUMN, Qt.SortOrder.AscendingOrder)
    assert proxy_counts(panel) == [9, 10, 100]


def test_activate_row_emits_the_tag_of_the_proxy_row(panel: TagPanel, qtbot) -> None:
    with qtbot.waitSignal(panel.tag_activated, timeout=0) as blocker:
        panel.activate_row(1, False)
    assert blocker.args == ["table", False]
    with qtbot.waitSignal(panel.tag_activated, timeout=0) as blocker:
        panel.activate_row(4, True)
    assert blocker.args == ["chair", True]
    with pytest.raises(IndexError):
        panel.activate_row(5, False)


def test_click_and_ctrl_click_emit_tag_activated(shown: TagPanel, qtbot) -> None:
    view = shown.view
    first = view.visualRect(shown.proxy.index(0, TAG_COLUMN))
    assert first.isValid() and view.viewport().rect().contains(first.center())
    with qtbot.waitSignal(shown.tag_activated, timeout=1000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.NoModifier, first.center())
    assert blocker.args == ["lamp", False]
    # Another row, so the two clicks are never taken for a double click.
    third = view.visualRect(shown.proxy.index(2, COUNT_COLUMN))
    with qtbot.waitSignal(shown.tag_activated, timeout=1000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.ControlModifier, third.center())
    assert blocker.args == ["Window", True]


def test_enter_on_a_row_emits_tag_activated(shown: TagPanel, qtbot) -> None:
    view = shown.view
    view.setFocus()
    view.setCurrentIndex(shown.proxy.index(1, TAG_COLUMN))
    with qtbot.waitSignal(shown.tag_activated, timeout=1000) as blocker:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert blocker.args == ["table", False]
    with qtbot.waitSignal(shown.tag_activated, timeout=1000) as blocker:
        qtbot.keyClick(view, Qt.Key.Key_Enter, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == ["table", True]
    with qtbot.assertNotEmitted(shown.tag_activated):
        view.setCurrentIndex(QModelIndex())
        qtbot.keyClick(view, Qt.Key.Key_Return)


def test_context_actions_emit_their_signals(panel: TagPanel, qtbot) -> None:
    actions = panel.context_actions(0)  # "lamp"
    assert [a.text() for a in actions] == [
        "Show Images With This Tag",
        "Show Images Without This Tag",
        "Rename Tag\u2026",
        "Remove Tag from All Images\u2026",
    ]
    show_with, show_without, rename, remove = actions
    with qtbot.waitSignal(panel.tag_activated, timeout=0) as blocker:
        show_with.trigger()
    assert blocker.args == ["lamp", False]
    with qtbot.waitSignal(panel.tag_activated, timeout=0) as blocker:
        show_without.trigger()
    assert blocker.args == ["lamp", True]
    with qtbot.waitSignal(panel.rename_requested, timeout=0) as blocker, \
            qtbot.assertNotEmitted(panel.remove_requested):
        rename.trigger()
    assert blocker.args == ["lamp"]
    with qtbot.waitSignal(panel.remove_requested, timeout=0) as blocker, \
            qtbot.assertNotEmitted(panel.rename_requested):
        remove.trigger()
    assert blocker.args == ["lamp"]


def test_context_actions_keep_their_tag_when_rows_move(panel: TagPanel, qtbot) -> None:
    actions = panel.context_actions(4)  # "chair", last by count
    panel.model.apply_delta({"chair": 99})  # now first
    with qtbot.waitSignal(panel.rename_requested, timeout=0) as blocker:
        actions[2].trigger()
    assert blocker.args == ["chair"]
    with pytest.raises(IndexError):
        panel.context_actions(99)
