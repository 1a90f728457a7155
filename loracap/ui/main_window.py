"""The main window: thumbnail grid, preview, caption editor, captioning and export.

Everything here drives the same core and runner as the command line. The window owns the open
:class:`~loracap.core.project.Project` and at most one
:class:`~loracap.jobs.runner.CaptionRunner`. Undo and redo are the project's own stack
(:meth:`~loracap.core.project.Project.undo`), stored in the project file, so they survive
reopening; the window only shows it in the Edit menu.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    Qt,
    QTimer,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QScreen,
    QShowEvent,
)
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from loracap import __version__
from loracap.core.backends.base import BackendConfig
from loracap.core.backends.registry import BACKENDS
from loracap.core.captioning import Captioner
from loracap.core.errors import (
    ApiKeyMissingError,
    AuthenticationError,
    LoraCapError,
    stop_advice,
)
from loracap.core.image_rows import ImageRows, first_page
from loracap.core.prompts import Profile, build_instructions
from loracap.core.query import tag_term
from loracap.core.records import CaptionMode, ImageRecord, Review, UndoOutcome
from loracap.core.tags import DEFAULT_SEPARATOR, parse_tags_txt
from loracap.core.text import CAPTION_VERBS, QA_VERBS
from loracap.core.trusted_servers import UntrustedServerError
from loracap.jobs.backend_jobs import CaptionerJob, needs_preparation
from loracap.jobs.background import ProjectLoad, ProjectLoadJob
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
from loracap.ui import dialogs
from loracap.ui.batch_dialog import BatchEditDialog, BatchTarget, Operation
from loracap.ui.caption_editor import CaptionEditor
from loracap.ui.checks_panel import ChecksPanel
from loracap.ui.delegate import ThumbnailDelegate, cell_size
from loracap.ui.export_dialog import ExportDialog
from loracap.ui.history_panel import HistoryPanel
from loracap.ui.image_model import ImageFilterProxy, ImageListModel, Roles
from loracap.ui.new_project_dialog import NewProjectDialog
from loracap.ui.people_overlay import is_multi_person, people_marks
from loracap.ui.presets_dialog import PresetsDialog
from loracap.ui.preview import PreviewPane
from loracap.ui.progress_strip import ProgressStrip
from loracap.ui.settings import AppSettings
from loracap.ui.settings_dialog import ApiKeyDialog, SettingsDialog
from loracap.ui.tag_chips import TagChipsWidget
from loracap.ui.tag_panel import TagPanel
from loracap.ui.thumbnails import ThumbnailProvider
from loracap.ui.undecodable import UndecodableImages
from loracap.ui.usage import summarize_usage, usage_text, usage_tooltip
from loracap.ui.widgets import ElidedLabel
from loracap.ui.window_layout import ScreenFit

if TYPE_CHECKING:  # imported where used: SQLAlchemy loads with the first project
    from loracap.core.project import Project
    from loracap.core.qa.generate import QAOptions

log = logging.getLogger(__name__)

#: Seconds a batch waits for one answer (the command line's ``--timeout`` default).
BATCH_TIMEOUT_S = 60.0

#: Makes the captioner of a batch from its configuration (tests give their own).
CaptionerFactory = Callable[[BackendConfig], Captioner]

#: Rows of a project shown at once when it opens; a larger project loads the rest in the
#: background (issue 15: the first grid paint of 100,000 images within half a second). Whole
#: blocks of packed rows (:data:`loracap.core.image_rows.BLOCK`), so later rows add without
#: copying their texts.
FIRST_PAGE = 2048
#: Milliseconds between showing the first page and starting to load the rest.
LOAD_DELAY_MS = 100

#: Thumbnail columns the grid always keeps (the splitter cannot squeeze it below them).
MIN_GRID_COLUMNS = 2
#: Smallest width of the Image tab (preview, caption editor, tags), in logical pixels.
MIN_IMAGE_PANE_WIDTH = 360
#: Smallest widths of the dock panels, in logical pixels.
TAGS_PANEL_MIN_WIDTH = 170
SIDE_PANEL_MIN_WIDTH = 210

#: State filter choices: (label, states shown; None = all).
STATE_FILTERS: list[tuple[str, frozenset[str] | None]] = [
    ("All images", None),
    ("No caption yet", frozenset({"uncaptioned"})),
    ("Failed", frozenset({"failed"})),
    ("Generated", frozenset({"generated"})),
    ("Edited by you", frozenset({"edited"})),
    ("Written by you", frozenset({"manual"})),
    ("Imported", frozenset({"imported"})),
    ("Invalid or missing", frozenset({"invalid", "missing"})),
]


def default_captioner_factory(config: BackendConfig) -> Captioner:
    """The captioner of ``config`` from the backend registry
    (:func:`loracap.core.backends.registry.create_captioner`; raises what it raises)."""
    from loracap.core.backends.registry import create_captioner

    return create_captioner(config)


class MainWindow(QMainWindow):
    """The LoRACap window. ``captioner_factory(config)`` makes the captioner of a batch from
    its :class:`~loracap.core.backends.base.BackendConfig`."""

    project_opened = pyqtSignal(object)  # Path
    batch_finished = pyqtSignal(object)  # BatchSummary
    #: Every row of a large project is in the grid, with its labels, tag counts and missing
    #: files (emitted only for a project loaded in steps, :meth:`_reload_model`).
    loaded = pyqtSignal()

    def __init__(
        self,
        settings: AppSettings,
        thumbnails: ThumbnailProvider,
        captioner_factory: CaptionerFactory = default_captioner_factory,
        parent: QWidget | None = None,
        *,
        log_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.log_dir = log_dir
        self._note_image_id: int | None = None
        self._note_saved = ""
        self._in_current_change = False
        self._screen_hooked = False
        self.project: Project | None = None
        self.runner: CaptionRunner | None = None
        self._captioner_factory = captioner_factory
        #: The backend the next batches use instead of the project's (Captions > Caption
        #: With), for this session only; None: the project's.
        self.backend_override: str | None = None
        self._batch_captioner: Captioner | None = None
        self._batch_config: BackendConfig | None = None
        self._prepare_job: CaptionerJob | None = None
        self._batch_qa = False  # the batch under way writes question-answer pairs
        self._cancelling = False  # Cancel was pressed once: the next press stops at once
        self._load_job: ProjectLoadJob | None = None  # a large project's rows loading
        self._pending_current: int | None = None  # the image to show once its row is loaded
        self._thumbnails = thumbnails
        self.setWindowTitle("LoRACap")
        self.setAcceptDrops(True)

        self.model = ImageListModel(thumbnails, self)
        self.proxy = ImageFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._build_actions()
        self._build_top_bar()
        self._build_central()
        self._build_docks()
        self.progress = ProgressStrip()
        from loracap.ui.people_editing import PeopleEditing

        self.people_editing = PeopleEditing(self)
        from loracap.ui.batch_jobs import BatchJobs

        self.batch_jobs = BatchJobs(self)
        #: Marks an image invalid when its thumbnail finds that its pixels do not decode.
        self.undecodable = UndecodableImages(self, thumbnails)
        self._build_menus()
        # Its whole text stays readable ("27 of 32 reviewed · 3 failed · 2 uncaptioned").
        self.review_status = ElidedLabel(min_chars=60)
        self.review_status.setObjectName("reviewStatus")
        self.statusBar().addPermanentWidget(self.review_status)
        self.usage_status = ElidedLabel(min_chars=16)
        self.usage_status.setObjectName("usageStatus")
        self.statusBar().addPermanentWidget(self.usage_status)
        self.progress.cancel_button.clicked.connect(self.cancel_batch)
        self.statusBar().addPermanentWidget(self.progress, 1)
        self._vocabulary_timer = QTimer(self)
        self._vocabulary_timer.setSingleShot(True)
        self._vocabulary_timer.setInterval(500)
        self._vocabulary_timer.timeout.connect(self._update_vocabulary)
        # Tag count changes are merged and shown once per event-loop turn: a batch edit of
        # thousands of captions updates the Tags panel once, not once per caption.
        self._pending_tag_counts: dict[str, int] = {}
        self._tag_counts_timer = QTimer(self)
        self._tag_counts_timer.setSingleShot(True)
        self._tag_counts_timer.setInterval(0)
        self._tag_counts_timer.timeout.connect(self._show_tag_counts)
        self.model.tags_reset.connect(self._on_tags_reset)
        self.model.tag_counts_changed.connect(self._on_tag_counts_changed)
        self.model.status_changed.connect(self._update_review_status)
        self._restore_window_state()
        self._update_top_bar()
        self._update_enabled()
        self._update_undo_actions()

    # ------------------------------------------------------------------ construction

    def add_action(self, text: str, slot: Callable[[], object],
                   shortcuts: list[QKeySequence] | None = None, tip: str = "") -> QAction:
        """A window action (its shortcuts window-wide, each key once; ``tip`` as tooltip and
        status tip) running ``slot``; the window's controllers make theirs with it too."""
        action = QAction(text, self)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcuts:
            # A platform's standard key may equal an extra one given here (Redo is
            # Ctrl+Shift+Z on Linux): each key once, or Help > Keyboard Shortcuts repeats it.
            unique: list[QKeySequence] = []
            for sequence in shortcuts:
                if sequence not in unique:
                    unique.append(sequence)
            action.setShortcuts(unique)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        key = QKeySequence
        self.new_action = self.add_action(
            "&New Project from Folder…", self.new_project,
            [key(key.StandardKey.New)], "Make a project from a folder of photos")
        self.open_action = self.add_action(
            "&Open Project…", self.open_project_dialog, [key(key.StandardKey.Open)],
            "Open a .loraproj project")
        self.export_action = self.add_action(
            "&Export…", self.export_dialog, [key("Ctrl+E")],
            "Write the training zip or metadata.txt")
        self.relink_action = self.add_action(
            "&Relink Missing Images…", self.relink_dialog, None,
            "Point the project at the folder its images moved to")
        self.settings_action = self.add_action(
            "&Settings…", self.settings_dialog, [key(key.StandardKey.Preferences)],
            "Backend, API key, model, caption language, speed and upload size")
        self.captioning_settings_action = self.add_action(
            "Captioning &Settings…", self.settings_dialog, None,
            "Backend, server, model, API key, caption language and tagger options")
        self.presets_action = self.add_action(
            "Prompt &Presets…", self.presets_dialog, None,
            "Your prompts for all projects and this project's, with a preview on the current "
            "image")
        self.quit_action = self.add_action("&Quit", self.close, [key(key.StandardKey.Quit)])
        self.undo_action = self.add_action(
            "&Undo", self.undo, [key(key.StandardKey.Undo)],
            "Take back the last edit (kept in the project: works after reopening too)")
        self.redo_action = self.add_action(
            "&Redo", self.redo, [key(key.StandardKey.Redo), key("Ctrl+Shift+Z")],
            "Do the undone edit again")
        self.previous_action = self.add_action(
            "&Previous Image", lambda: self.navigate(-1), [key("PgUp"), key("Ctrl+Left")],
            "Previous image (Page Up, Ctrl+Left)")
        self.next_action = self.add_action(
            "&Next Image", lambda: self.navigate(1), [key("PgDown"), key("Ctrl+Right")],
            "Next image (Page Down, Ctrl+Right)")
        self.generate_missing = self.add_action(
            "Only images without a caption", lambda: self.generate(CaptionMode.MISSING))
        self.generate_all = self.add_action("All images", lambda: self.generate(CaptionMode.ALL))
        self.generate_failed = self.add_action(
            "Only failed images", lambda: self.generate(CaptionMode.FAILED))
        self.generate_selected = self.add_action(
            "Selected images", lambda: self.generate(CaptionMode.SELECTED))
        self.approve_action = self.add_action(
            "&Approve", lambda: self.mark_review(Review.APPROVED), [key("A")],
            "Mark the selected images approved (A; not while typing)")
        self.reject_action = self.add_action(
            "&Reject", lambda: self.mark_review(Review.REJECTED), [key("R")],
            "Mark the selected images rejected (R; not while typing)")
        self.unreview_action = self.add_action(
            "&Clear Review Mark", lambda: self.mark_review(Review.UNREVIEWED), [key("U")],
            "Mark the selected images unreviewed (U)")
        self.rate_actions = [
            self.add_action(f"Rate &{n}", lambda n=n: self.rate(n), [key(str(n))],
                         f"Rate the selected images {n} of 5 ({n})")
            for n in range(1, 6)
        ]
        self.batch_action = self.add_action(
            "&Batch Edit…", lambda: self.batch_edit(Operation.REPLACE), [key("Ctrl+Shift+H")],
            "Find and replace, add, remove or rename tags on the selected or shown images")
        self.find_replace_action = self.add_action(
            "&Find and Replace…", lambda: self.batch_edit(Operation.REPLACE), [key("Ctrl+H")],
            "Replace text in the captions of the selected or shown images, with a preview")
        self.add_tag_action = self.add_action(
            "&Add Tag to Images…", lambda: self.batch_edit(Operation.ADD_TAG), None,
            "Add a tag to the selected or shown images")
        self.remove_tag_action = self.add_action(
            "&Remove Tag from Images…", lambda: self.batch_edit(Operation.REMOVE_TAG), None,
            "Remove a tag from the selected or shown images")
        self.rename_tag_action = self.add_action(
            "Re&name Tag…", lambda: self.batch_edit(Operation.RENAME_TAG), None,
            "Rename a tag in the selected or shown images")
        self.export_tags_action = self.add_action(
            "&Export Tag List (tags.txt)…", self.export_tag_list, None,
            "Every tag of the project, one per line, most used first")
        self.import_tags_action = self.add_action(
            "&Import Tag List for Autocomplete…", self.import_tag_list, None,
            "Offer the tags of a list (e.g. a Danbooru CSV) while you type a tag")
        self.check_action = self.add_action(
            "&Check Dataset", self.check_dataset, [key("Ctrl+Shift+K")],
            "Find missing trigger words, duplicates, long captions, small and near-duplicate "
            "images")
        self.focus_tag_action = self.add_action(
            "Add &Tag to This Image", self.focus_tag_input, [key("Ctrl+T")],
            "Type a tag for the current image, with suggestions")
        self.shortcuts_action = self.add_action(
            "&Keyboard Shortcuts", self.show_shortcuts, [key(key.StandardKey.HelpContents)],
            "Every shortcut of the window")
        self.filter_help_action = self.add_action(
            "&Filter Syntax", self.show_filter_help, None, "How to write filters for the grid")
        self.log_folder_action = self.add_action(
            "Open &Log Folder", self.open_log_folder, None,
            "The log file records errors; send it to whoever helps you")
        self.about_action = self.add_action("&About LoRACap", self.about)
        self.generate_action = self.add_action(
            "&Generate Captions", lambda: self.generate(CaptionMode.MISSING), [key("Ctrl+G")],
            "Caption the images without a caption (Ctrl+G); the arrow offers other choices")
        self.show_people_action = self.add_action(
            "Show &People", self._toggle_people, [key("Ctrl+Shift+P")],
            "Draw the people found in the image, with their aliases (multi-person projects)")
        self.show_people_action.setCheckable(True)
        self.show_people_action.setChecked(self.settings.show_people)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.new_action)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.qa_editing.export_action)
        file_menu.addAction(self.relink_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.find_replace_action)
        edit_menu.addAction(self.batch_action)
        tags_menu = bar.addMenu("&Tags")
        for action in (self.focus_tag_action, self.add_tag_action, self.remove_tag_action,
                       self.rename_tag_action):
            tags_menu.addAction(action)
        tags_menu.addSeparator()
        tags_menu.addAction(self.export_tags_action)
        tags_menu.addAction(self.import_tags_action)
        view_menu = bar.addMenu("&View")
        for dock in (self.tags_dock, self.history_dock, self.checks_dock, self.qa_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.show_people_action)
        go_menu = bar.addMenu("&Go")
        go_menu.addAction(self.previous_action)
        go_menu.addAction(self.next_action)
        caption_menu = bar.addMenu("&Captions")
        caption_menu.addAction(self.generate_action)
        caption_menu.addAction(self.batch_jobs.send_action)
        caption_menu.addAction(self.batch_jobs.jobs_action)
        caption_menu.addSeparator()
        for action in (self.generate_missing, self.generate_all, self.generate_failed,
                       self.generate_selected):
            caption_menu.addAction(action)
        caption_menu.addSeparator()
        caption_menu.addMenu(self.caption_with_menu)
        caption_menu.addAction(self.captioning_settings_action)
        caption_menu.addAction(self.presets_action)
        caption_menu.addSeparator()
        caption_menu.addAction(self.qa_editing.generate_action)
        caption_menu.addAction(self.qa_editing.answer_action)
        bar.addMenu(self.people_editing.menu)
        review_menu = bar.addMenu("&Review")
        for action in (self.approve_action, self.reject_action, self.unreview_action):
            review_menu.addAction(action)
        review_menu.addSeparator()
        for action in self.rate_actions:
            review_menu.addAction(action)
        review_menu.addSeparator()
        review_menu.addAction(self.check_action)
        review_menu.addAction(self.qa_editing.stats_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.filter_help_action)
        help_menu.addAction(self.log_folder_action)
        help_menu.addAction(self.about_action)

    def _build_top_bar(self) -> None:
        bar = QToolBar("Project")
        bar.setObjectName("projectBar")
        bar.setMovable(False)
        # Elided, never wider than the room left: a long folder path must not push the
        # Generate button off the screen (or into the tool bar's overflow menu).
        self.folder_label = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle, min_chars=12)
        self.folder_label.setObjectName("projectFolder")
        self.trigger_label = ElidedLabel(min_chars=16)
        bold = self.trigger_label.font()
        bold.setBold(True)
        self.trigger_label.setFont(bold)
        self.profile_label = ElidedLabel(min_chars=10)
        self.model_label = ElidedLabel(min_chars=10)
        for label in (self.folder_label, self.trigger_label, self.profile_label, self.model_label):
            label.setContentsMargins(6, 0, 12, 0)
            bar.addWidget(label)
        spacer = QWidget()
        spacer.setSizePolicy(spacer.sizePolicy().Policy.Expanding,
                             spacer.sizePolicy().Policy.Preferred)
        bar.addWidget(spacer)
        self.generate_button = QToolButton()
        self.generate_button.setDefaultAction(self.generate_action)
        self.generate_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.generate_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        menu = QMenu(self.generate_button)
        for action in (self.generate_missing, self.generate_all, self.generate_failed,
                       self.generate_selected):
            menu.addAction(action)
        # Captions > Caption With: the backend of the next batches, for this session.
        self.caption_with_menu = QMenu("Caption &With", self)
        self.caption_with_menu.setToolTipsVisible(True)
        self.caption_with_menu.aboutToShow.connect(self._fill_caption_with_menu)
        self._caption_with_group = QActionGroup(self)
        self._caption_with_group.setExclusive(True)
        self._fill_caption_with_menu()
        menu.addSeparator()
        menu.addMenu(self.caption_with_menu)
        self.generate_button.setMenu(menu)
        bar.addWidget(self.generate_button)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _build_central(self) -> None:
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name or caption…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Filter images")
        self.filter_edit.setToolTip(
            "Words find captions and file names. Also: tag:lamp, -tag:draft, state:edited, "
            "name:IMG_*, words>40, AND / OR / NOT and ( ). Help > Filter Syntax has it all.")
        self.filter_edit.textChanged.connect(self._on_filter_text)
        self.state_filter = QComboBox()
        self.state_filter.setAccessibleName("Show images by caption state")
        for label, _states in STATE_FILTERS:
            self.state_filter.addItem(label)
        self.state_filter.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.state_filter.setMinimumContentsLength(10)
        self.state_filter.currentIndexChanged.connect(
            lambda i: self.proxy.set_state_filter(STATE_FILTERS[i][1]))

        self.view = QListView()
        self.view.setObjectName("thumbnails")
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.view.setItemDelegate(ThumbnailDelegate(self.view))
        self.view.setGridSize(cell_size(192))
        self.view.setSpacing(4)
        self.view.setModel(self.proxy)
        self.view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.view.setMinimumWidth(self._grid_width(MIN_GRID_COLUMNS))

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        filters = QHBoxLayout()
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.state_filter)
        left_layout.addLayout(filters)
        left_layout.addWidget(self.view, 1)

        self.preview = PreviewPane()
        self.preview.set_people_visible(self.settings.show_people)
        self.editor = CaptionEditor()
        self.editor.edited.connect(self._on_caption_edited)
        self.editor.navigate.connect(self.navigate)
        self.editor.revert_requested.connect(self.revert_to_generated)
        self.editor.caption_requested.connect(
            lambda image_id: self.generate(CaptionMode.SELECTED, (image_id,)))
        self.chips = TagChipsWidget()
        self.chips.set_recent_tags(self.settings.recent_tags)
        self.chips.body_changed.connect(self.editor.apply_text)
        self.chips.recent_changed.connect(self._on_recent_tags)
        # The chips follow the text as typed, so a chip action never works on stale text.
        self.editor.body.textChanged.connect(self._sync_chips)
        # A caption of several lines (multi-person) has its chips per line: a typed tag goes
        # to the line the editor's cursor is on.
        self.editor.body.cursorPositionChanged.connect(
            lambda: self.chips.set_current_line(self.editor.body.textCursor().blockNumber()))
        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.setToolTip("Previous image (Page Up, Ctrl+Left)")
        self.previous_button.clicked.connect(lambda: self.navigate(-1))
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip("Next image (Page Down, Ctrl+Right)")
        self.next_button.clicked.connect(lambda: self.navigate(1))
        nav = QHBoxLayout()
        nav.addWidget(self.previous_button)
        nav.addStretch(1)
        nav.addWidget(self.next_button)

        image_tab = QWidget()
        image_layout = QVBoxLayout(image_tab)
        image_layout.addWidget(self.preview, 1)
        image_layout.addWidget(self.editor)
        image_layout.addWidget(self.chips)
        self.review_label = ElidedLabel(min_chars=10)
        self.review_label.setObjectName("reviewState")
        self.review_label.setToolTip("With the grid focused: A approves, R rejects, U clears the "
                                     "mark, 1–5 rate the selected images")
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Note for this image (for you or your team)…")
        self.note_edit.setAccessibleName("Note")
        self.note_edit.editingFinished.connect(self._save_note)
        review_row = QHBoxLayout()
        self.note_edit.setMinimumWidth(160)
        review_row.addWidget(self.review_label)  # its whole text while there is room
        review_row.addWidget(self.note_edit, 1)
        image_layout.addLayout(review_row)
        image_layout.addLayout(nav)

        self.metadata_view = QPlainTextEdit()
        self.metadata_view.setObjectName("metadataPreview")
        self.metadata_view.setReadOnly(True)
        self.metadata_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.tabs = QTabWidget()
        self.tabs.addTab(image_tab, "Image")
        self.tabs.addTab(self.metadata_view, "metadata.txt preview")
        self.tabs.currentChanged.connect(lambda _i: self._refresh_metadata())

        self.welcome = self._build_welcome()
        self.left_stack = QStackedWidget()
        self.left_stack.addWidget(self.welcome)
        self.left_stack.addWidget(left)

        self.tabs.setMinimumWidth(MIN_IMAGE_PANE_WIDTH)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        # Neither side can be dragged away: the grid keeps two columns, the editor its room.
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.left_stack)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.setCentralWidget(self.splitter)
        self.setTabOrder(self.filter_edit, self.state_filter)
        self.setTabOrder(self.state_filter, self.view)
        self.setTabOrder(self.view, self.editor.body)

    def _build_docks(self) -> None:
        self.tag_panel = TagPanel()
        self.tag_panel.tag_activated.connect(self.filter_by_tag)
        self.tag_panel.rename_requested.connect(
            lambda tag: self.batch_edit(Operation.RENAME_TAG, tag, whole_project=True))
        self.tag_panel.remove_requested.connect(
            lambda tag: self.batch_edit(Operation.REMOVE_TAG, tag, whole_project=True))
        self.history_panel = HistoryPanel()
        self.history_panel.restore_requested.connect(self.restore_version)
        self.checks_panel = ChecksPanel()
        self.checks_panel.image_requested.connect(self.show_image)
        self.checks_panel.strip_other_prefix_requested.connect(self.strip_other_prefixes)
        from loracap.ui.qa_editing import QAEditing

        self.qa_editing = QAEditing(self)

        def dock(title: str, name: str, widget: QWidget) -> QDockWidget:
            result = QDockWidget(title, self)
            result.setObjectName(name)
            result.setWidget(widget)
            result.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable
                               | QDockWidget.DockWidgetFeature.DockWidgetMovable
                               | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            return result

        self.tags_dock = dock("Tags", "tagsDock", self.tag_panel)
        self.history_dock = dock("History", "historyDock", self.history_panel)
        self.checks_dock = dock("Checks", "checksDock", self.checks_panel)
        self.qa_dock = dock("QA Pairs", "qaDock", self.qa_editing.panel)
        # The smallest widths at which each panel still reads: dragging a dock's edge, a long
        # text in the middle of the window or a saved layout cannot squeeze it further.
        self.tag_panel.setMinimumWidth(TAGS_PANEL_MIN_WIDTH)
        self.history_panel.setMinimumWidth(SIDE_PANEL_MIN_WIDTH)
        self.checks_panel.setMinimumWidth(SIDE_PANEL_MIN_WIDTH)
        self.qa_editing.panel.setMinimumWidth(SIDE_PANEL_MIN_WIDTH)
        self.screen_fit = ScreenFit(self, [self.tags_dock, self.history_dock, self.checks_dock,
                                           self.qa_dock])
        self.screen_fit.arrange(wide=True)

    def _build_welcome(self) -> QWidget:
        """What a first-time user sees: how to start, in three lines and two buttons."""
        page = QWidget()
        page.setObjectName("welcome")
        title = QLabel("<h2>Make a captioned LoRA dataset</h2>")
        title.setWordWrap(True)
        steps = QLabel(
            "1. Pick a folder of photos and a trigger word.<br>"
            "2. Press <b>Generate Captions</b> and review the captions.<br>"
            "3. <b>Export</b> the zip for your trainer.<br><br>"
            "You can also drag a folder of photos, or a .loraproj project, onto this window."
        )
        steps.setWordWrap(True)
        new_button = QPushButton("New Project from Folder…")
        new_button.setDefault(True)
        new_button.setToolTip("Ctrl+N")
        new_button.clicked.connect(lambda: self.new_project())
        open_button = QPushButton("Open Project…")
        open_button.setToolTip("Ctrl+O")
        open_button.clicked.connect(self.open_project_dialog)
        buttons = QHBoxLayout()
        buttons.addWidget(new_button)
        buttons.addWidget(open_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(32, 32, 32, 32)
        layout.addWidget(title)
        layout.addWidget(steps)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return page

    def _on_filter_text(self, text: str) -> None:
        error = self.proxy.set_query(text)
        # A mistake is shown where it is, and the grid keeps its last good filter.
        self.filter_edit.setStyleSheet("QLineEdit { border: 1px solid #c0392b; }" if error else "")
        if error:
            self.statusBar().showMessage(f"Filter: {error}")
        else:
            self.statusBar().clearMessage()

    def show_filter_help(self) -> None:
        """Help > Filter Syntax: the query language's reference."""
        from loracap.core import query

        text = html.escape(query.__doc__ or "").replace("``", "")
        QMessageBox.information(self, "Filter Syntax", f"<pre>{text}</pre>")

    def _grid_width(self, columns: int) -> int:
        """The grid's width, frame and scroll bar included, for ``columns`` thumbnail columns."""
        style = self.view.style()
        scroll_bar = style.pixelMetric(style.PixelMetric.PM_ScrollBarExtent) if style else 16
        # A few pixels to spare: the view starts a new row when a cell would end at its edge.
        return columns * self.view.gridSize().width() + scroll_bar + 2 * self.view.frameWidth() + 8

    def _restore_window_state(self) -> None:
        """The saved layout, repaired if it does not fit this screen; on the first launch a
        window sized to the screen with a layout chosen for its width."""
        geometry, state, splitter = self.settings.window_state()
        if geometry.isEmpty() or state.isEmpty():
            self.screen_fit.first_launch()
        else:
            # The docks first: which are shown decides the smallest size the geometry may have.
            self.restoreState(state)
            self.restoreGeometry(geometry)
        if not splitter.isEmpty():
            self.splitter.restoreState(splitter)
        else:
            # First start: once the window has its size, the docks their starting widths and
            # the grid about half of the rest, never less than its two columns.
            QTimer.singleShot(0, self._first_splitter_sizes)
        self.screen_fit.schedule()

    def _first_splitter_sizes(self) -> None:
        """About half of the room for the grid, in whole thumbnail columns (two at least)."""
        self.screen_fit.size_docks()
        layout = self.layout()
        if layout is not None:
            layout.activate()
        total = self.splitter.width()
        overhead = self._grid_width(0)
        cell = max(1, self.view.gridSize().width())
        columns = max(MIN_GRID_COLUMNS, round((total / 2 - overhead) / cell))
        grid = min(total - MIN_IMAGE_PANE_WIDTH, columns * cell + overhead)
        self.splitter.setSizes([grid, max(0, total - grid)])

    # ------------------------------------------------------------------ helpers

    def run_safely(self, work: Callable[[], object]) -> bool:
        """Run ``work``; a core error becomes a message box. Returns True on success."""
        try:
            work()
        except LoraCapError as exc:
            self.show_error(str(exc))
            return False
        return True

    def show_error(self, message: str, title: str = "LoRACap") -> None:
        """Tell the user what went wrong, in their words (never a traceback)."""
        QMessageBox.warning(self, title, message)

    def _update_enabled(self) -> None:
        has_project = self.project is not None
        running = (self.runner is not None and self.runner.is_running) \
            or self._prepare_job is not None or self.people_editing.busy \
            or self.qa_editing.busy or self.batch_jobs.busy
        for action in (self.export_action, self.relink_action, self.previous_action,
                       self.next_action, self.approve_action, self.reject_action,
                       self.unreview_action, *self.rate_actions, self.batch_action,
                       self.find_replace_action, self.add_tag_action, self.remove_tag_action,
                       self.rename_tag_action, self.export_tags_action, self.check_action,
                       self.focus_tag_action):
            action.setEnabled(has_project)
        self.presets_action.setEnabled(has_project)
        self.caption_with_menu.setEnabled(has_project and not running)
        for action in (self.generate_action, self.generate_missing, self.generate_all,
                       self.generate_failed, self.generate_selected):
            action.setEnabled(has_project and not running)
        self.generate_button.setEnabled(has_project and not running)
        self.previous_button.setEnabled(has_project)
        self.next_button.setEnabled(has_project)
        self.tabs.setEnabled(has_project)
        for widget in (self.tag_panel, self.history_panel):
            widget.setEnabled(has_project)
        self.people_editing.update_actions()
        self.qa_editing.update_actions()
        self.batch_jobs.update_actions()

    def _update_top_bar(self) -> None:
        self._update_review_status()
        if self.project is None:
            for label in (self.folder_label, self.trigger_label, self.profile_label,
                          self.model_label, self.usage_status):
                label.setText("")
            self.folder_label.setText("No project open")
            self.setWindowTitle("LoRACap")
            if self.model.loading:  # a large project opening: its first page is shown
                self.folder_label.setText("Opening the project…")
                self.left_stack.setCurrentIndex(1)
            else:
                self.left_stack.setCurrentWidget(self.welcome)
            return
        self.left_stack.setCurrentIndex(1)
        settings = self.project.settings
        self.folder_label.setText(f"Folder: {self.project.folder}")
        self.folder_label.setToolTip(str(self.project.path))
        self.trigger_label.setText(f"Trigger word: {settings.trigger}")
        self.trigger_label.setToolTip(f'Captions start with "{settings.prefix}"')
        self.profile_label.setText(f"Profile: {Profile(settings.profile).label}")
        if self.backend_override is not None:
            self.model_label.setText(
                f"Captioning with: {BACKENDS[self.backend_override].label} (this session)")
            self.model_label.setToolTip("Captions > Caption With chose it; the project's "
                                        f"backend is {BACKENDS[settings.backend].label}")
        else:
            backend = BACKENDS.get(settings.backend)
            model = settings.model or "automatic"
            self.model_label.setText(f"Model: {model}" if settings.backend == "gemini"
                                     else f"{backend.label if backend else settings.backend}: "
                                     f"{model}")
            self.model_label.setToolTip("Captions > Captioning Settings… changes it")
        self.setWindowTitle(f"{self.project.path.name} — LoRACap")

    # ------------------------------------------------------------------ projects

    def new_project(self, folder: Path | None = None) -> None:
        """File > New Project from Folder: the dialog, then the project is created and opened."""
        dialog = NewProjectDialog(folder, self, language=self.settings.default_language)
        if not dialog.exec():
            return
        spec = dialog.spec()
        from loracap.core.project import Project  # SQLAlchemy: loaded with the first project

        project: Project | None = None

        app = self.settings

        def create() -> None:
            nonlocal project
            project = Project.create(
                spec.project_path, trigger=spec.trigger, profile=spec.profile.value,
                custom_prompt=spec.custom_prompt, model=app.default_model,
                name=spec.folder.name, backend=app.default_backend,
                base_url=app.default_base_url, language=spec.language,
            )
            project.add_scanned(spec.files)
            options = app.default_backend_options
            if options:
                project.update_settings(backend_options=options)

        if not self.run_safely(create) or project is None:
            return
        self._set_project(project)

    def open_project_dialog(self) -> None:
        """File > Open Project…"""
        path, _filter = QFileDialog.getOpenFileName(
            self, "Open Project", str(Path.home()), "LoRACap projects (*.loraproj)")
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> bool:
        """Open ``path``; errors (locked, newer version, damaged) become a message.

        A project of more than :data:`FIRST_PAGE` images shows its first page at once, read
        straight from the file, while a background job opens it (the checks of every row,
        the lock) and loads the rest (issue 15): True then says that it is opening, and an
        error comes as a message later."""
        if not self._close_project():
            return False
        first = first_page(Path(path), FIRST_PAGE)
        if first is not None:
            self._open_in_background(Path(path), first)
            return True
        from loracap.core.project import Project  # SQLAlchemy: loaded with the first project

        try:
            project = Project.open(path)
        except LoraCapError as exc:
            self.show_error(str(exc), "Cannot open the project")
            if not Path(path).exists():
                self.settings.remove_recent_project(path)
            return False
        self._set_project(project)
        return True

    def _open_in_background(self, path: Path, first: ImageRows) -> None:
        """A large project: ``first`` shown now; a job opens the file and loads the rest."""
        self.model.begin_loading(first, None)
        self._start_load(ProjectLoadJob(path, first, parent=self))
        self._update_top_bar()
        self.statusBar().showMessage(f"Opening {path.name}…")

    def _on_opened(self, job: ProjectLoadJob, project: Project) -> None:
        job.claim()
        if job is not self._load_job:
            project.close()
            return
        self._set_project(project, loading=True)
        self.statusBar().showMessage("Loading the other images…")

    def _set_project(self, project: Project, *, loading: bool = False) -> None:
        """Make ``project`` the open one; ``loading``: its rows are loading already (the
        first page shown by :meth:`open_project`), so they stay."""
        if not loading:
            self._close_project()
        self.project = project
        self.backend_override = None
        self.settings.add_recent_project(project.path)
        self.proxy.set_separator(project.settings.tag_separator)
        self.checks_panel.set_project(project)
        if loading:
            self.model.set_settings(project.settings)
            self._update_review_status()
        else:
            self._reload_model()
        self._update_top_bar()
        self._update_enabled()
        self._update_undo_actions()
        self.update_usage()
        if not self.model.loading:
            self._say_missing()
        current = project.settings.current_image_id
        row = self.model.row_of(current) if current is not None else -1
        # A large project's current image may come with a later page of rows (_on_rows).
        self._pending_current = current if row < 0 and self.model.loading else None
        self.select_row_of_source(max(row, 0))
        self.project_opened.emit(project.path)

    def _say_missing(self) -> None:
        missing = self.model_missing_count()
        if missing:
            self.statusBar().showMessage(
                f"{missing} image file(s) are missing — File > Relink Missing Images…", 15000)

    def model_missing_count(self) -> int:
        """Images of the open project whose file is not on disk."""
        return self.model.missing_count()

    def _reload_model(self) -> None:
        """The project's images into the grid. A project of at most :data:`FIRST_PAGE`
        images is read at once; a larger one shows its first page at once and loads the
        rest, the labels, tag counts and missing files in the background
        (:class:`~loracap.jobs.background.ProjectLoadJob`), so the window answers at once
        even at 100,000 images (issue 15)."""
        self._cancel_load()
        project = self.project
        if project is None:
            self.model.set_records([], None)  # type: ignore[arg-type]
            return
        first = project.image_rows(limit=FIRST_PAGE + 1)
        if len(first) <= FIRST_PAGE:
            self.model.set_records(first, project.settings, first.missing_ids())
            self.qa_editing.load_counts()
            self._update_review_status()
            return
        first = first[:FIRST_PAGE]
        self.model.begin_loading(first, project.settings)
        self._start_load(ProjectLoadJob(project, first, parent=self))
        self.statusBar().showMessage("Loading the other images…")
        self._update_review_status()

    def _start_load(self, job: ProjectLoadJob) -> None:
        job.opened.connect(lambda project: self._on_opened(job, project))
        job.rows.connect(self._on_rows)
        job.finished.connect(lambda load: self._on_loaded(job, load))
        job.failed.connect(lambda message: self._on_load_failed(job, message))
        self._load_job = job
        # Started once the first page is painted (a tenth of a second later): the job's Python
        # work would otherwise hold the interpreter while the window draws its first rows.
        QTimer.singleShot(LOAD_DELAY_MS,
                          lambda: job.start() if job is self._load_job else None)

    def _cancel_load(self, *, wait: bool = False) -> None:
        """Stop loading a large project's rows; ``wait`` for the job's query to end (before
        the project file closes)."""
        job, self._load_job = self._load_job, None
        if job is not None and job.is_running:
            job.cancel()
        if job is not None and wait:
            job.wait()
            opened = job.unclaimed  # opened, but its signal will find the job replaced
            if opened is not None:
                job.claim()
                opened.close()

    def _on_rows(self, records: ImageRows) -> None:
        self.model.append_records(records)
        pending = self._pending_current
        if pending is not None and records.row_of(pending) >= 0:
            self._pending_current = None
            current = self.current_record()
            first = self.model.record(0) if self.model.rowCount() else None
            if current is None or (first is not None and current.id == first.id):
                self.select_row_of_source(self.model.row_of(pending))

    def _on_loaded(self, job: ProjectLoadJob, load: ProjectLoad) -> None:
        if job is not self._load_job:
            return
        self._load_job = None
        self.model.finish_loading(load.labels, load.counter, load.missing)
        self.model.set_qa_counts(load.qa)
        self.statusBar().clearMessage()
        self._say_missing()
        self.loaded.emit()

    def _on_load_failed(self, job: ProjectLoadJob, message: str) -> None:
        if job is not self._load_job:
            return
        self._load_job = None
        if self.project is None:  # the project file itself could not be opened
            path = job.project
            self.model.set_records([], None)
            self._update_top_bar()
            self.statusBar().clearMessage()
            self.show_error(message, "Cannot open the project")
            if isinstance(path, Path) and not path.exists():
                self.settings.remove_recent_project(path)
            return
        self.show_error(f"Not every image of the project could be read: {message}")

    def _close_project(self) -> bool:
        """Close the open project (after the batch, if any, stops). False if the user refused."""
        if self.project is None:
            if self._load_job is not None:  # a large project still opening
                self._cancel_load(wait=True)
                self.model.set_records([], None)
                self._update_top_bar()
                self.statusBar().clearMessage()
            return True
        if self.runner is not None and self.runner.is_running:
            answer = QMessageBox.question(
                self, "Captioning is running",
                "Captioning is still running. Stop it? Captions already received are kept.")
            if answer != QMessageBox.StandardButton.Yes:
                return False
            self.runner.cancel()
            self.runner.wait()
        if self._prepare_job is not None:
            self._prepare_job.cancel()
        self._cancel_load(wait=True)
        self.people_editing.wait()  # one request; its answer is stored before the file closes
        self.qa_editing.wait()
        self.batch_jobs.project_closing()  # a fetch stops after what it stored
        self._end_batch_captioner()
        self.editor.flush()
        self.editor.set_image(None, "", can_revert=False)
        self._show_review(None)  # saves a note being typed, before the model goes away
        self.preview.show_record(None)
        self.checks_panel.set_project(None)
        self.project.close()
        self.project = None
        self.backend_override = None
        self.model.set_records([], None)  # type: ignore[arg-type]
        self._update_top_bar()
        self._update_enabled()
        self._update_undo_actions()
        return True

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_projects
        if not recent:
            self.recent_menu.addAction("No recent projects").setEnabled(False)
        for path in recent:
            action = self.recent_menu.addAction(str(path))
            action.triggered.connect(lambda _c=False, p=path: self.open_project(p))

    def relink_dialog(self) -> None:
        """File > Relink Missing Images…: choose the folder the images moved to."""
        if self.project is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Where are the images now?",
                                                  str(self.project.folder))
        if not folder:
            return
        project = self.project
        found: list[ImageRecord] = []

        def relink() -> None:
            found.extend(project.relink(Path(folder)))

        if self.run_safely(relink):
            self._reload_model()
            still = self.model_missing_count()
            text = f"Relinked {len(found)} image(s)."
            if still:
                text += f" {still} are still missing."
            self.statusBar().showMessage(text, 10000)

    # ------------------------------------------------------------------ navigation

    def select_row_of_source(self, source_row: int) -> None:
        """Make the image in source row ``source_row`` current (if shown by the filter)."""
        if source_row < 0 or source_row >= self.model.rowCount():
            self._on_current_changed(QModelIndex(), QModelIndex())
            return
        index = self.proxy.mapFromSource(self.model.index(source_row, 0))
        if index.isValid():
            self.view.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.view.scrollTo(index)

    def navigate(self, step: int) -> None:
        """Go to the previous (-1) or next (+1) image shown in the grid."""
        if self.proxy.rowCount() == 0:
            return
        current = self.view.currentIndex()
        row = current.row() + step if current.isValid() else 0
        row = max(0, min(self.proxy.rowCount() - 1, row))
        index = self.proxy.index(row, 0)
        self.view.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.view.scrollTo(index)

    def current_record(self) -> ImageRecord | None:
        """The image shown in the preview and editor."""
        index = self.view.currentIndex()
        if not index.isValid():
            return None
        record = index.data(Roles.RECORD)
        return record if isinstance(record, ImageRecord) else None

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        # This slot can run inside the proxy's own row removal (a filter hiding the current
        # image). Saving the editor's text then changes the source model; such model updates
        # are deferred to the next event-loop turn (see refresh_image), never done re-entrantly.
        self._in_current_change = True
        try:
            self._show_current(current)
        finally:
            self._in_current_change = False

    def _show_current(self, current: QModelIndex) -> None:
        record = current.data(Roles.RECORD) if current.isValid() else None
        if not isinstance(record, ImageRecord) or self.project is None:
            self._show_review(None)
            self.editor.set_image(None, "", can_revert=False)
            self.preview.show_record(None)
            self._show_side_panels(None)
            return
        project = self.project
        self._show_review(record)
        self.preview.show_record(record)
        self._show_people(record)
        self.editor.set_image(record, project.settings.prefix,
                              can_revert=project.has_generated_version(record.id))
        self._show_side_panels(record)
        if project.settings.current_image_id != record.id:
            self.run_safely(lambda: project.update_settings(current_image_id=record.id))

    def _toggle_people(self) -> None:
        """View > Show People: draw the people or not, remembered for the next start."""
        shown = self.show_people_action.isChecked()
        self.preview.set_people_visible(shown)
        self.settings.show_people = shown

    def _show_people(self, record: ImageRecord) -> None:
        """The people of the image's latest detection over the preview (one read, here)."""
        if self.project is not None:
            settings = self.project.settings
            self.show_people_action.setEnabled(is_multi_person(settings.profile))
            self.preview.set_people(people_marks(self.project, settings, record))
            self.people_editing.update_actions()

    def refresh_image(self, image_id: int) -> None:
        """Re-read one image from the project into the grid, editor and metadata preview."""
        self.refresh_images([image_id])

    def refresh_images(self, image_ids: list[int]) -> None:
        """Re-read images from the project (one query) into the grid, editor, panels and
        metadata preview, and update the Undo/Redo menu entries."""
        if self.project is None:
            return
        records = self.project.images_by_id(image_ids) if image_ids else []
        if image_ids:
            counts = self.project.qa_counts(image_ids)
            for image_id in image_ids:
                self.model.update_qa_count(image_id, counts.get(image_id))
        if self._in_current_change:
            QTimer.singleShot(0, lambda: self._refresh_model_rows(image_ids))
        else:
            for record in records:
                self.model.update_record(record)
        for record in records:
            if record.id == self.editor.image_id:
                self.editor.show_saved(
                    record, can_revert=self.project.has_generated_version(record.id))
                self._show_side_panels(record)
                self._show_people(record)
            if self._note_image_id == record.id:
                self._show_review(record)
        self._update_undo_actions()
        if records:
            self.checks_panel.mark_outdated()
        if self.tabs.currentWidget() is self.metadata_view:
            self._refresh_metadata()

    def _refresh_model_rows(self, image_ids: list[int]) -> None:
        if self.project is not None:
            for record in self.project.images_by_id(image_ids):
                self.model.update_record(record)

    def _refresh_metadata(self) -> None:
        if self.tabs.currentWidget() is not self.metadata_view:
            return
        if self.project is None:
            self.metadata_view.setPlainText("")
            return
        try:
            from loracap.core.exports import METADATA_FORMAT, ExportOptions, plan_export

            options = ExportOptions(allow_uncaptioned=True, skip_untrainable=True)
            text = plan_export(self.project, METADATA_FORMAT, options).metadata_text()
        except LoraCapError as exc:
            text = str(exc)
        self.metadata_view.setPlainText(text or "(no captions yet)")

    # ------------------------------------------------------------------ editing

    def _on_caption_edited(self, image_id: int, _old: str, new: str) -> None:
        project = self.project
        if project is not None and self.run_safely(lambda: project.edit_caption(image_id, new)):
            self.refresh_image(image_id)

    def revert_to_generated(self, image_id: int) -> None:
        """Bring back the generated caption (undoable)."""
        project = self.project
        if project is not None and self.run_safely(
            lambda: project.revert_to_generated(image_id)
        ):
            self.refresh_image(image_id)

    def undo(self) -> None:
        """Edit > Undo: take back the newest edit of the project (stored in its file)."""
        self._undo_or_redo(undo=True)

    def redo(self) -> None:
        """Edit > Redo."""
        self._undo_or_redo(undo=False)

    def _undo_or_redo(self, *, undo: bool) -> None:
        project = self.project
        if project is None:
            return
        # Typing not yet saved is saved first, so Undo takes back exactly what was typed.
        self.editor.flush()
        outcome: list[UndoOutcome | None] = []
        if not self.run_safely(lambda: outcome.append(project.undo() if undo else project.redo())):
            return
        result = outcome[0] if outcome else None
        if result is None:
            self._update_undo_actions()
            return
        self.refresh_images(result.changed + result.skipped)
        verb = "Undid" if undo else "Redid"
        text = f"{verb}: {result.label}."
        if result.skipped:
            text += (f" {len(result.skipped)} image(s) changed since were left as they are.")
        self.statusBar().showMessage(text, 8000)

    def _update_undo_actions(self) -> None:
        project = self.project
        undo_label = project.undo_label() if project is not None else None
        redo_label = project.redo_label() if project is not None else None
        for action, verb, label in ((self.undo_action, "&Undo", undo_label),
                                    (self.redo_action, "&Redo", redo_label)):
            action.setEnabled(label is not None)
            action.setText(f"{verb} {label.replace('&', '&&')}" if label else verb)

    def restore_version(self, version_id: int) -> None:
        """History panel: make an earlier caption version current again (undoable)."""
        project, image_id = self.project, self.editor.image_id
        if project is None or image_id is None:
            return
        self.editor.flush()
        if self.run_safely(lambda: project.restore_version(image_id, version_id)):
            self.refresh_image(image_id)
            self.statusBar().showMessage("Earlier caption restored — Ctrl+Z takes it back.", 8000)

    def _show_side_panels(self, record: ImageRecord | None) -> None:
        """The tag chips and the History panel follow the current image."""
        project = self.project
        if record is None or project is None or not record.valid:
            self.chips.set_caption(None)
            self.qa_editing.show(None)
            if record is None or project is None:
                self.history_panel.clear()
            else:
                self.history_panel.show_history(record.file_name, [], None)
            return
        self.qa_editing.show(record.id, record.file_name)
        self.chips.set_caption(self.editor.body.toPlainText(), separator=self._separator())
        self.history_panel.show_history(record.file_name, project.history(record.id),
                                        record.caption)

    def _sync_chips(self) -> None:
        if self.project is not None and self.editor.image_id is not None \
                and self.editor.body.isEnabled():
            self.chips.set_caption(self.editor.body.toPlainText(), separator=self._separator())

    def _separator(self) -> str:
        """The open project's tag separator (from memory: called on every keystroke)."""
        settings = self.model.settings()
        return settings.tag_separator if settings is not None else DEFAULT_SEPARATOR

    def _on_recent_tags(self, tags: list[str]) -> None:
        self.settings.recent_tags = tags

    def focus_tag_input(self) -> None:
        """Tags > Add Tag to This Image (Ctrl+T): put the cursor in the tag field."""
        if self.chips.input.isEnabled():
            self.tabs.setCurrentIndex(0)
            self.chips.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    # ------------------------------------------------------------------ tags

    def _on_tags_reset(self) -> None:
        self._tag_counts_timer.stop()
        self._pending_tag_counts.clear()
        self.tag_panel.model.set_counts(self.model.tag_counter().counts())
        self._vocabulary_timer.start()

    def _on_tag_counts_changed(self, changed: dict[str, int]) -> None:
        self._pending_tag_counts.update(changed)  # new counts: the latest one wins
        self._tag_counts_timer.start()

    def _show_tag_counts(self) -> None:
        pending, self._pending_tag_counts = self._pending_tag_counts, {}
        if pending:
            self.tag_panel.model.apply_delta(pending)
            self._vocabulary_timer.start()

    def _update_vocabulary(self) -> None:
        self.chips.set_vocabulary(self.model.tag_counter().vocabulary(),
                                  self.settings.user_tags())

    def filter_by_tag(self, tag: str, exclude: bool) -> None:
        """Tags panel click: show the images with ``tag`` (Ctrl-click: without it)."""
        self.filter_edit.setText(tag_term(tag, exclude=exclude))

    def _batch_targets(self, ids: list[int]) -> list[BatchTarget]:
        targets = []
        for image_id in ids:
            row = self.model.row_of(image_id)
            if row < 0:
                continue
            record = self.model.record(row)
            if record.valid:
                targets.append(BatchTarget(record.id, record.file_name,
                                           record.caption.body if record.caption else ""))
        return targets

    def batch_edit(self, operation: Operation, tag: str = "", *,
                   whole_project: bool = False) -> None:
        """Edit > Batch Edit: change many captions at once, previewed, as one undo step.

        Works on the selected images or on every image the grid shows (the filter);
        ``whole_project`` (from the Tags panel) offers every image instead.
        """
        project = self.project
        if project is None:
            return
        self.editor.flush()
        shown_ids = [self.proxy.index(row, 0).data(Roles.IMAGE_ID)
                     for row in range(self.proxy.rowCount())]
        if whole_project:
            shown_ids = self.model.image_ids()
        selected = [] if whole_project else self._batch_targets(list(self.selected_image_ids()))
        dialog = BatchEditDialog(
            selected, self._batch_targets(shown_ids),
            separator=self._separator(),
            vocabulary=self.model.tag_counter().vocabulary(),
            operation=operation, tag=tag, parent=self,
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        changes = dialog.changes()
        if not changes:
            return
        changed: list[int] = []
        if self.run_safely(lambda: changed.extend(project.apply_edits(
                {change.image_id: change.after for change in changes}, dialog.label()))):
            self.refresh_images(changed)
            self.statusBar().showMessage(
                f"{dialog.label()}. Ctrl+Z takes it back.", 10000)

    def export_tag_list(self) -> None:
        """Tags > Export Tag List: ``tags.txt``, one tag per line, most used first."""
        if self.project is None:
            return
        self.editor.flush()
        default = str(self.project.folder / "tags.txt")
        name, _filter = QFileDialog.getSaveFileName(self, "Export Tag List", default,
                                                    "Text files (*.txt)")
        if not name:
            return
        text = self.model.tag_counter().export_tags_txt()
        try:
            Path(name).write_text(text, encoding="utf-8", newline="\n")
        except OSError as exc:
            self.show_error(f"Cannot write {name}: {exc.strerror or exc}")
            return
        count = len(parse_tags_txt(text))
        self.statusBar().showMessage(f"Wrote {count} tag(s) to {name}.", 10000)

    def import_tag_list(self, path: Path | None = None) -> None:
        """Tags > Import Tag List: offer a list's tags while typing a tag (kept for later)."""
        if path is None:
            name, _filter = QFileDialog.getOpenFileName(
                self, "Import Tag List", str(Path.home()),
                "Tag lists (*.txt *.csv);;All files (*)")
            if not name:
                return
            path = Path(name)
        count: list[int] = []
        if self.run_safely(lambda: count.append(self.settings.import_tag_list(path))):
            self._update_vocabulary()
            self.statusBar().showMessage(
                f"{count[0]} tag(s) from {path.name} are offered while you type a tag.", 10000)

    def check_dataset(self) -> None:
        """Review > Check Dataset: run the check and show its findings."""
        if self.project is None:
            return
        self.editor.flush()
        self.checks_dock.show()
        self.checks_dock.raise_()
        if not self.checks_panel.is_running:
            self.checks_panel.run()

    def strip_other_prefixes(self, image_ids: list[int]) -> None:
        """Checks panel (``prefix_other``): strip another trigger word's prefix from
        these images' captions, as one undo step; captions without one are left alone."""
        from loracap.core.checks import foreign_prefix_edits, strip_foreign_label

        project = self.project
        if project is None:
            return
        self.editor.flush()
        bodies: dict[int, str] = {}
        if not self.run_safely(lambda: bodies.update(foreign_prefix_edits(project, image_ids))):
            return
        if not bodies:
            self.statusBar().showMessage(
                "No caption starts with another trigger word's prefix any more.", 8000)
            return
        label = strip_foreign_label(len(bodies))
        changed: list[int] = []
        if self.run_safely(lambda: changed.extend(project.apply_edits(bodies, label))):
            self.refresh_images(changed)
            self.statusBar().showMessage(f"{label}. Ctrl+Z takes it back.", 10000)

    def show_image(self, image_id: int) -> None:
        """Make an image current, clearing the filters if they hide it (check findings)."""
        row = self.model.row_of(image_id)
        if row < 0:
            return
        if not self.proxy.mapFromSource(self.model.index(row, 0)).isValid():
            self.filter_edit.clear()
            self.state_filter.setCurrentIndex(0)
        self.tabs.setCurrentIndex(0)
        self.select_row_of_source(row)

    # ------------------------------------------------------------------ review

    def _target_ids(self) -> tuple[int, ...]:
        ids = self.selected_image_ids()
        if ids:
            return ids
        record = self.current_record()
        return (record.id,) if record is not None else ()

    def mark_review(self, review: Review) -> None:
        """Approve, reject or un-mark the selected images (or the current one)."""
        self._review_change(review=review)

    def rate(self, rating: int) -> None:
        """Rate the selected images (or the current one) 1-5."""
        self._review_change(rating=rating)

    def _review_change(self, **change: object) -> None:
        project = self.project
        ids = self._target_ids()
        if project is None or not ids:
            return
        changed: list[int] = []
        if self.run_safely(
            lambda: changed.extend(project.set_reviews(ids, **change))  # type: ignore[arg-type]
        ):
            self.refresh_images(changed)

    def _save_note(self) -> None:
        """Store the note typed for the image it was typed for (never looks at the view, which
        may be in the middle of a model reset when focus leaves the field)."""
        image_id, project = self._note_image_id, self.project
        text = self.note_edit.text()
        if image_id is None or project is None or text == self._note_saved:
            return
        self._note_saved = text
        if self.run_safely(lambda: project.set_review(image_id, note=text)):
            self.refresh_image(image_id)

    def _show_review(self, record: ImageRecord | None) -> None:
        if record is None or record.id != self._note_image_id:
            self._save_note()
            self._note_image_id = record.id if record is not None else None
            self._note_saved = record.note if record is not None else ""
            self.note_edit.setText(self._note_saved)
        if record is None:
            self.review_label.setText("")
            self.note_edit.setEnabled(False)
            return
        marks = {Review.APPROVED: "✓ Approved", Review.REJECTED: "✗ Rejected",
                 Review.UNREVIEWED: "Not reviewed"}
        text = marks[record.review]
        if record.rating:
            text += f" · {'★' * record.rating}{'☆' * (5 - record.rating)}"
        self.review_label.setText(text)
        self.note_edit.setEnabled(record.valid)

    def _update_review_status(self) -> None:
        """"27 of 32 reviewed · 3 failed · 2 uncaptioned" in the status bar (counts kept by the
        model incrementally, not recounted)."""
        counts = self.model.status_counts()
        if self.project is None or not counts["valid"]:
            self.review_status.setText("")
            return
        self.review_status.setText(
            f"{counts['reviewed']} of {counts['valid']} reviewed · {counts['failed']} failed · "
            f"{counts['uncaptioned']} uncaptioned")

    # ------------------------------------------------------------------ captioning

    def selected_image_ids(self) -> tuple[int, ...]:
        """Ids of the images selected in the grid, in grid order."""
        rows = sorted(index.row() for index in self.view.selectionModel().selectedIndexes())
        return tuple(self.proxy.index(row, 0).data(Roles.IMAGE_ID) for row in rows)

    def generate(self, mode: CaptionMode, image_ids: tuple[int, ...] = ()) -> None:
        """Start a captioning batch (Generate button, its menu, "Caption this image")."""
        if self.project is None or (self.runner is not None and self.runner.is_running) \
                or self.people_editing.busy or self.qa_editing.busy:
            return
        self.editor.flush()
        if mode is CaptionMode.SELECTED and not image_ids:
            image_ids = self.selected_image_ids()
            if not image_ids:
                self.statusBar().showMessage("Select images in the grid first.", 5000)
                return
        project = self.project
        overwrite = False
        if mode in (CaptionMode.ALL, CaptionMode.SELECTED):
            _ids, protected = project.select_for_captioning(mode, image_ids)
            if protected:
                answer = QMessageBox.question(
                    self, "Replace your captions?",
                    f"{len(protected)} image(s) have captions you edited, wrote or imported.\n"
                    "Replace them with new generated captions too? (The old text stays in "
                    "the project's history.)",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
                    | QMessageBox.StandardButton.Cancel,
                    QMessageBox.StandardButton.No,
                )
                if answer == QMessageBox.StandardButton.Cancel:
                    return
                overwrite = answer == QMessageBox.StandardButton.Yes
        settings = project.settings
        config = self.batch_config_or_ask()
        if config is None:
            return
        try:
            instructions = build_instructions(Profile(settings.profile), settings.custom_prompt,
                                              language=settings.language)
        except LoraCapError as exc:
            self.show_error(str(exc))
            return
        from loracap.core.backends.registry import batch_defaults

        workers, rpm = self.settings.batch_pace(batch_defaults(config))
        from loracap.core.captioning_people import people_options

        options = BatchOptions(
            mode=mode, image_ids=image_ids, overwrite_protected=overwrite,
            workers=workers, rpm=rpm, max_side=self.settings.max_side,
            people=people_options(project.settings),
        )
        if needs_preparation(config):
            self._prepare_captioner(config, instructions, options)
            return
        captioner = self._make_captioner(config)
        if captioner is None:
            return
        self._run_batch(config, captioner, instructions, options)

    def generate_qa(self, qa: QAOptions, image_ids: tuple[int, ...] = ()) -> None:
        """Start a question-answer batch (Captions > Generate Question-Answer Pairs…, Answer
        Open Questions) on the captioning runner, with its pacing, retries and progress."""
        if self.project is None or (self.runner is not None and self.runner.is_running) \
                or self.people_editing.busy or self.qa_editing.busy:
            return
        self.editor.flush()
        if image_ids and qa.only != "selected":
            from dataclasses import replace

            qa = replace(qa, only="selected")
        config = self.batch_config_or_ask()
        if config is None:
            return
        # The pairs appear in the QA Pairs panel as they arrive.
        self.qa_dock.show()
        self.qa_dock.raise_()
        from loracap.core.backends.registry import batch_defaults

        workers, rpm = self.settings.batch_pace(batch_defaults(config))
        options = BatchOptions(mode=CaptionMode.SELECTED, image_ids=image_ids,
                               workers=workers, rpm=rpm, max_side=self.settings.max_side,
                               qa=qa)
        instructions = build_instructions(Profile.SHORT)  # unused: the batch asks questions
        if needs_preparation(config):
            self._prepare_captioner(config, instructions, options)
            return
        captioner = self._make_captioner(config)
        if captioner is None:
            return
        self._run_batch(config, captioner, instructions, options)

    @property
    def captioner_factory(self) -> CaptionerFactory:
        """What makes the captioner of a configuration (tests give their own)."""
        return self._captioner_factory

    @property
    def batch_backend(self) -> str | None:
        """The backend the next batch uses: the Caption With choice, else the project's."""
        if self.backend_override is not None:
            return self.backend_override
        return self.project.settings.backend if self.project is not None else None

    def set_backend_override(self, backend: str | None) -> None:
        """Caption the next batches of this session with ``backend`` (None, or the project's
        own backend: the project's settings)."""
        project_backend = self.project.settings.backend if self.project is not None else None
        self.backend_override = None if backend in (None, project_backend) else backend
        self._update_top_bar()

    def _fill_caption_with_menu(self) -> None:
        """Captions > Caption With: the project's backend first, then the others."""
        menu = self.caption_with_menu
        menu.clear()
        for action in self._caption_with_group.actions():
            self._caption_with_group.removeAction(action)
        own = self.project.settings.backend if self.project is not None else None
        names = sorted(BACKENDS, key=lambda name: name != own)
        chosen = self.batch_backend
        for name in names:
            label = BACKENDS[name].label + (" (project default)" if name == own else "")
            action = QAction(label, menu)
            action.setCheckable(True)
            action.setChecked(name == chosen)
            action.setData(name)
            action.setEnabled(self.project is not None)
            action.setToolTip("Used by this project's batches" if name == own else
                              "Caption the next batches with it (this session only; the "
                              "project's setting stays)")
            action.triggered.connect(lambda _c=False, n=name: self.set_backend_override(n))
            self._caption_with_group.addAction(action)
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.captioning_settings_action)

    def batch_config_or_ask(self) -> BackendConfig | None:
        """The configuration of the next batch; asks for a missing key (the dialog of that
        backend); None when the user gave none or the settings cannot be used (said)."""
        from loracap.core.backends.registry import resolve_config

        project = self.project
        assert project is not None
        backend = self.backend_override
        model_dir = self.settings.wd14_model_dir if (backend or project.settings.backend) \
            == "wd14" else None
        for _attempt in range(2):
            try:
                return resolve_config(project.settings, backend=backend, model_dir=model_dir,
                                      timeout_s=BATCH_TIMEOUT_S)
            except ApiKeyMissingError as exc:
                if _attempt or not self._ask_key(backend or project.settings.backend):
                    if _attempt:
                        self.show_error(str(exc))
                    return None
            except UntrustedServerError:
                if _attempt or not self._ask_trust(backend or project.settings.backend,
                                                   project.settings.base_url):
                    return None
            except LoraCapError as exc:
                self.show_error(str(exc))
                return None
        return None

    def _ask_trust(self, backend: str, url: str) -> bool:
        """Ask whether this project's server may receive the user's key of ``backend``
        (:mod:`loracap.core.trusted_servers`); remembered when the user says yes."""
        from loracap.core.keys import key_service
        from loracap.core.trusted_servers import trust_server

        answer = QMessageBox.question(
            self, "Send your key to this server?",
            f"This project sends its captioning requests to\n{url}\nwith your "
            f"{key_service(backend).label} API key.\n\nDo you trust this server? (Choose No "
            "and change the server in Captioning Settings if you do not know it.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        trust_server(backend, url)
        return True

    def _ask_key(self, backend: str) -> bool:
        """The API key dialog of ``backend``; True when a key was given."""
        from loracap.core.keys import KEY_SERVICES

        if backend not in KEY_SERVICES:
            return False
        return bool(ApiKeyDialog(self, backend).exec())

    def _make_captioner(self, config: BackendConfig) -> Captioner | None:
        try:
            return self._captioner_factory(config)
        except ApiKeyMissingError:
            if not self._ask_key(config.backend):
                return None
            fresh = self.batch_config_or_ask()
            if fresh is None:
                return None
            try:
                return self._captioner_factory(fresh)
            except LoraCapError as exc:
                self.show_error(str(exc))
                return None
        except LoraCapError as exc:
            self.show_error(str(exc))
            return None

    def _prepare_captioner(self, config: BackendConfig, instructions: object,
                           options: BatchOptions) -> None:
        """Download (if needed) and load a local tagger in the background, then caption; the
        progress strip shows it and its Cancel stops it."""
        job = CaptionerJob(config, self._captioner_factory, self)
        self._prepare_job = job
        from loracap.core.text import human_size

        def on_progress(model: str, done: int, total: int) -> None:
            size = human_size(done) + (f" of {human_size(total)}" if total else "")
            self.progress.show_activity(f"Downloading the WD14 model {model}: {size}",
                                        done, total)

        job.progress.connect(on_progress)
        job.loading.connect(lambda text: self.progress.show_activity(text, 0, 0))
        job.finished.connect(lambda captioner: self._on_captioner_ready(
            job, config, captioner, instructions, options))
        job.failed.connect(lambda message: self._on_prepare_ended(job, message))
        job.cancelled.connect(lambda: self._on_prepare_ended(job, ""))
        self.progress.cancel_button.setEnabled(True)
        self.progress.show_activity("Getting the captioning backend ready…", 0, 0)
        job.start()
        self._update_enabled()

    def _on_captioner_ready(self, job: CaptionerJob, config: BackendConfig,
                            captioner: Captioner, instructions: object,
                            options: BatchOptions) -> None:
        if job is not self._prepare_job or self.project is None:
            captioner.close()
            return
        self._prepare_job = None
        self._run_batch(config, captioner, instructions, options)

    def _on_prepare_ended(self, job: CaptionerJob, message: str) -> None:
        if job is not self._prepare_job:
            return
        self._prepare_job = None
        self.progress.hide()
        self._update_enabled()
        if message:
            self.show_error(message, "Cannot start captioning")
        else:
            self.statusBar().showMessage("Cancelled before captioning began.", 10000)

    def _run_batch(self, config: BackendConfig, captioner: Captioner, instructions: object,
                   options: BatchOptions) -> None:
        project = self.project
        assert project is not None
        runner = CaptionRunner(project, captioner, instructions,  # type: ignore[arg-type]
                               options, self)
        runner.progress.connect(self.progress.show_progress)
        runner.waiting.connect(self.progress.show_waiting)
        runner.captioned.connect(lambda image_id, _body: self.refresh_image(image_id))
        runner.failed.connect(lambda image_id, _reason: self.refresh_image(image_id))
        runner.finished.connect(self._on_batch_finished)
        self.runner = runner
        self._batch_captioner = captioner
        self._batch_config = config
        self._batch_qa = options.qa is not None
        self.progress.verbs = QA_VERBS if self._batch_qa else CAPTION_VERBS
        self._cancelling = False
        self.progress.cancel_button.setText("Cancel")
        self.progress.cancel_button.setToolTip(
            "Stop sending requests; captions already paid for are kept")
        self.progress.cancel_button.setEnabled(True)
        runner.start()
        self._update_enabled()

    def _end_batch_captioner(self, answered: bool = False) -> None:
        """Keep what the captioner learned about its server in the project, then close it."""
        captioner, config = self._batch_captioner, self._batch_config
        self._batch_captioner = self._batch_config = None
        if captioner is None or config is None:
            return
        from loracap.core.backends.registry import options_to_keep

        project = self.project
        try:
            if project is not None and not project.read_only:
                keep = options_to_keep(captioner, config, project.settings,
                                       answered=answered)
                if keep:
                    project.update_backend_options(config.backend, **keep)
        except LoraCapError as exc:
            log.warning("Could not keep what the %s server told: %s", config.backend, exc)
        finally:
            captioner.close()

    def cancel_batch(self) -> None:
        """Stop sending requests; answers in flight are still saved, and the button becomes
        Stop Now, which drops them instead (their images stay as they were). Before the batch
        has begun (a model downloading or loading) it stops that."""
        if self._prepare_job is not None:
            self._prepare_job.cancel()
            return
        if self.runner is None or not self.runner.is_running:
            return
        button = self.progress.cancel_button
        if self._cancelling:
            self.runner.abort()
            button.setEnabled(False)
            self.progress.label.setText("Stopping now — answers still on their way are dropped…")
            return
        self.runner.cancel()
        self._cancelling = True
        button.setText("Stop Now")
        button.setToolTip("Drop the answers still on their way; their images stay as they were")
        self.progress.label.setText("Cancelling — waiting for answers already on their way "
                                    "(Stop Now drops them)…")

    def _on_batch_finished(self, summary: BatchSummary) -> None:
        self._end_batch_captioner(answered=summary.done > 0)
        self.progress.hide()
        self._update_enabled()
        self._refresh_metadata()
        self.update_usage()
        qa = self._batch_qa
        self._batch_qa = False
        verb = "Wrote question-answer pairs for" if qa else "Captioned"
        parts = [f"{verb} {summary.done} of {summary.total} image(s)"]
        if summary.failed and qa:
            parts.append(f"{len(summary.failed)} failed (generate again for images without "
                         "pairs to retry)")
        elif summary.failed:
            parts.append(f"{len(summary.failed)} failed (Generate > Only failed images to retry)")
        if summary.kept:
            parts.append(f"{len(summary.kept)} caption(s) you edited meanwhile were kept")
        if summary.cancelled:
            parts.append("cancelled")
        if summary.total == 0:
            parts = ["Nothing to ask about" if qa else "Nothing to caption"]
        if summary.in_batch_jobs:
            parts.append(f"{summary.in_batch_jobs} image(s) wait for a batch job's result and "
                         "were left out (Captions > Batch Jobs…)")
        self.statusBar().showMessage("; ".join(parts) + ".", 15000)
        if summary.stop_error is not None:
            self.show_stop(summary)
        self.batch_finished.emit(summary)

    def show_stop(self, summary: BatchSummary) -> None:
        """One message for a batch that stopped early (a wrong key, the daily quota, no
        network): what happened and what to do. The images not reached keep their state; a
        key problem offers File > Settings at once."""
        error = summary.stop_error
        assert error is not None
        left = f"{summary.not_started} image(s) were not captioned yet. " \
            if summary.not_started else ""
        key_problem = isinstance(error, (AuthenticationError, ApiKeyMissingError))
        if dialogs.show_stop(self, f"Captioning stopped: {error}",
                             left + stop_advice(error, for_cli=False),
                             offer_settings=key_problem):
            self.settings_dialog()

    # ------------------------------------------------------------------ dialogs

    def export_dialog(self) -> None:
        """File > Export…"""
        if self.project is None:
            return
        self.editor.flush()
        ExportDialog(self.project, self).exec()

    def settings_dialog(self) -> None:
        """File > Settings… (and Captions > Captioning Settings…)"""
        self.editor.flush()
        if SettingsDialog(self.settings, self.project, self).exec():
            if self.project is not None and self.backend_override == \
                    self.project.settings.backend:
                self.backend_override = None
            self._update_top_bar()
            if self.project is not None:
                settings = self.project.settings
                self.proxy.set_separator(settings.tag_separator)
                self.model.set_settings(settings)  # a new separator recounts the tags
            self._update_vocabulary()
            record = self.current_record()
            self._show_side_panels(record)

    def presets_dialog(self) -> None:
        """Captions > Prompt Presets…: the presets, and a preview on the current image."""
        if self.project is None:
            return
        self.editor.flush()
        record = self.current_record()
        image = self.project.resolve(record.path) if record is not None and record.valid \
            else None
        dialog = PresetsDialog(self.project, self, image=image, backend=self.backend_override,
                               max_side=self.settings.max_side,
                               model_dir=self.settings.wd14_model_dir,
                               captioner_factory=self._captioner_factory)
        dialog.exec()
        if dialog.project_changed:
            self._update_top_bar()
        self.update_usage()

    def update_usage(self) -> None:
        """The project's tokens and their estimated cost in the status bar."""
        from loracap.core.pricing import load_prices

        if self.project is None:
            self.usage_status.setText("")
            return
        try:
            usages = self.project.token_usage()
        except LoraCapError as exc:
            log.warning("Cannot read the token usage: %s", exc)
            return
        prices = load_prices()
        self.usage_status.setText(usage_text(summarize_usage(usages, prices)))
        self.usage_status.setToolTip(usage_tooltip(usages, prices) if usages else "")

    def shortcut_list(self) -> list[tuple[str, str]]:
        """``(action, shortcuts)`` for every action with a shortcut, in menu order."""
        rows: list[tuple[str, str]] = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            if menu is None:
                continue
            for action in menu.actions():
                keys = ", ".join(
                    k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
                )
                if keys and (action.text(), keys) not in rows:
                    rows.append((action.text().replace("&", ""), keys))
        rows.append(("Previous / next image while typing", "Page Up / Page Down, Ctrl+Left / "
                     "Ctrl+Right"))
        rows.append(("Add the typed tag (in the tag field)", "Enter"))
        rows.append(("Remove the last tag (in the empty tag field)", "Backspace"))
        rows.append(("Tags panel: show images with / without a tag", "Click / Ctrl+Click, "
                     "Enter / Ctrl+Enter"))
        rows.append(("Tags panel: rename or remove a tag everywhere", "Right-click, Menu key"))
        return rows

    def show_shortcuts(self) -> None:
        """Help > Keyboard Shortcuts: a table of every shortcut."""
        rows = "".join(f"<tr><td>{name}</td><td><b>{keys}</b></td></tr>"
                       for name, keys in self.shortcut_list())
        QMessageBox.information(self, "Keyboard Shortcuts",
                                f"<table cellspacing='6'>{rows}</table>")

    def open_log_folder(self) -> None:
        """Help > Open Log Folder: show the folder of ``loracap.log`` in the file manager."""
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir))):
            self.show_error(f"The log file is in {self.log_dir}.")

    def about(self) -> None:
        """Help > About LoRACap."""
        QMessageBox.about(
            self, "About LoRACap",
            f"<b>LoRACap {__version__}</b><br>Turns a folder of photos into a captioned, "
            "trainer-ready LoRA dataset.<br><br>Log folder: "
            f"{self.log_dir if self.log_dir else 'not set'}",
        )

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent | None) -> None:
        if event is None:
            return
        mime = event.mimeData()
        if mime is not None and mime.hasUrls() and self._dropped_path(mime.urls()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent | None) -> None:
        if event is None or event.mimeData() is None:
            return
        path = self._dropped_path(event.mimeData().urls())  # type: ignore[union-attr]
        if path is None:
            return
        event.acceptProposedAction()
        self.open_path(path)

    @staticmethod
    def _dropped_path(urls: list[QUrl]) -> Path | None:
        for url in urls:
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.is_dir() or path.suffix.lower() == ".loraproj":
                    return path
        return None

    def open_path(self, path: Path) -> None:
        """A folder starts a new project; a ``.loraproj`` file opens."""
        if path.is_dir():
            self.new_project(path)
        else:
            self.open_project(path)

    # ------------------------------------------------------------------ screens

    def showEvent(self, event: QShowEvent | None) -> None:
        super().showEvent(event)
        handle = self.windowHandle()
        if handle is not None and not self._screen_hooked:
            self._screen_hooked = True
            handle.screenChanged.connect(self._on_screen_changed)
            self._on_screen_changed(handle.screen())

    def _on_screen_changed(self, screen: QScreen | None) -> None:
        """Moved to a screen with another scale: thumbnails are decoded again, crisp there.
        Moved to a smaller screen: the layout is made to fit it."""
        if screen is None:
            return
        self.screen_fit.schedule()
        ratio = screen.devicePixelRatio()
        if ratio != self._thumbnails.device_pixel_ratio:
            self._thumbnails.set_device_pixel_ratio(ratio)
            self.model.refresh_thumbnails()

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if not self._close_project():
            if event is not None:
                event.ignore()
            return
        self.settings.save_window_state(self.saveGeometry(), self.saveState(),
                                        self.splitter.saveState())
        self.settings.sync()
        self.preview.shutdown()
        self.people_editing.wait()
        self.qa_editing.wait()
        self.checks_panel.shutdown()
        self._thumbnails.shutdown()
        super().closeEvent(event)

