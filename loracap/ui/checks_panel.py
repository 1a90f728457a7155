"""The dataset check in the window: run :mod:`loracap.core.checks` and list what it found.

The same check as ``loracap check`` on the command line. It runs as a
:class:`~loracap.jobs.background.CheckJob` on a pool thread, so the window stays usable; the
panel never changes the project. Activating a finding emits :attr:`ChecksPanel.image_requested`
so that the window can show the image; the one fix it offers (strip another trigger word's
prefix, for ``prefix_other`` findings) is asked for with
:attr:`ChecksPanel.strip_other_prefix_requested` and applied by the window.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QPoint, Qt, QThreadPool, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from loracap.core.checks import KIND_LABELS, Finding, summary_text
from loracap.jobs.background import CheckJob
from loracap.ui.widgets import ResponsiveColumns

if TYPE_CHECKING:
    from loracap.core.project import Project

#: Columns of :attr:`ChecksPanel.list_view`.
COL_FILE, COL_KIND, COL_PROBLEM = range(3)

#: Item data role holding a row's image id (on the ``File`` column).
IMAGE_ID_ROLE = Qt.ItemDataRole.UserRole
#: Item data role holding a row's index into :meth:`ChecksPanel.findings` (on ``Kind``).
FINDING_INDEX_ROLE = Qt.ItemDataRole.UserRole

#: How long :meth:`ChecksPanel.set_project` and :meth:`ChecksPanel.shutdown` wait for a
#: cancelled check's thread (it stops after the image it is checking), in milliseconds.
STOP_TIMEOUT_MS = 10_000

RUN_TEXT = "Check Dataset"
CANCEL_TEXT = "Cancel"
CANCELLED_TEXT = "Check cancelled."
INTRO_TEXT = ("Looks for empty, repeated and too-long captions, a missing or doubled trigger "
              "word, another trigger word's prefix, small images and near-duplicate photos.")
NO_PROJECT_TEXT = "Open a project to check its dataset."


def kind_label(kind: str, *, plural: bool = False) -> str:
    """The label of a finding kind for people, capitalised: ``"Empty captions"``."""
    labels = KIND_LABELS.get(kind)
    text = (labels[1] if plural else labels[0]) if labels else kind.replace("_", " ")
    return text[:1].upper() + text[1:]


#: Narrowest list, in logical pixels, that shows the Problem column (the detail line under the
#: list shows the selected finding's whole message in any case).
PROBLEM_COLUMN_MIN_WIDTH = 420

#: The finding kind the panel offers a fix for, and the fix's button text.
FOREIGN_KIND = "prefix_other"
STRIP_TEXT = "Strip Other Prefix…"
STRIP_THIS_TEXT = "Strip Other Prefix from This Image"

OUTDATED_TEXT = ("Captions changed since this check; press Check Dataset again to bring the "
                 "findings up to date.")


class ChecksPanel(QWidget):
    """Run the dataset check on the open project and list the findings.

    Widgets: :attr:`run_button` ("Check Dataset", "Cancel" while running), :attr:`near_check`
    (include the slower near-duplicate search), :attr:`progress` and :attr:`status` (shown while
    running; ``status`` also tells a cancelled or failed check), :attr:`summary`
    (:func:`~loracap.core.checks.summary_text` of the last run), :attr:`kind_combo` (show all
    findings or one kind) and :attr:`list_view` (columns File, Kind, Problem; one row per finding,
    so an image may have several rows).

    Signals:

    * ``image_requested(image_id)`` -- a finding was clicked, double-clicked or activated with
      Enter; the window shows that image. A double-click emits it once.
    * ``strip_other_prefix_requested(image_ids)`` -- the user chose to strip another trigger
      word's prefix (``prefix_other`` findings) from these images' captions (a ``list[int]``):
      with :attr:`strip_button` ("Strip Other Prefix…", shown while there are such findings,
      which asks "this image or all of them?") or the list's context menu. The window applies
      it as one undo step; the panel itself changes nothing.
    """

    image_requested = pyqtSignal(int)
    strip_other_prefix_requested = pyqtSignal(list)

    def __init__(self, parent: QWidget | None = None, *, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._project: Project | None = None
        self._job: CheckJob | None = None
        self._findings: list[Finding] = []
        self._total = 0  # valid images of the running (or last) check
        self._last_emit: tuple[int, float] | None = None  # (image id, time) of the last jump
        self._wanted_kind: str | None = None  # the kind last chosen in the filter, kept by runs

        self.run_button = QPushButton(RUN_TEXT)
        self.run_button.setObjectName("checkRunButton")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.near_check = QCheckBox("Near-duplicates (slower)")
        self.near_check.setChecked(True)
        self.near_check.setToolTip("Also look for near-duplicate photos: resized or re-encoded "
                                   "copies and burst shots, found by comparing a small "
                                   "fingerprint of every image (opens every image file)")

        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(12)
        self.status = QLabel()
        self.status.setObjectName("checkStatus")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)

        self.summary = QLabel()
        self.summary.setObjectName("checkSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.kind_combo = QComboBox()
        self.kind_combo.setAccessibleName("Show findings")
        self.kind_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.kind_combo.setMinimumContentsLength(14)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_chosen)

        self.list_view = QTreeWidget()
        self.list_view.setObjectName("checkFindings")
        self.list_view.setAccessibleName("Findings")
        self.list_view.setColumnCount(3)
        self.list_view.setHeaderLabels(["File", "Kind", "Problem"])
        self.list_view.setRootIsDecorated(False)
        self.list_view.setUniformRowHeights(True)
        self.list_view.setAlternatingRowColors(True)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.list_view.header()
        assert header is not None
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_KIND, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_PROBLEM, QHeaderView.ResizeMode.Stretch)
        self.list_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # keeps the file name
        self.list_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # In a narrow dock: File and Kind whole, the problem in the detail line below.
        self._columns = ResponsiveColumns(self.list_view, {COL_PROBLEM: PROBLEM_COLUMN_MIN_WIDTH})
        self.list_view.itemClicked.connect(self._on_item_activated)
        self.list_view.currentItemChanged.connect(self._show_detail)
        # The selected finding's whole message: the Problem column is cut off in a narrow dock.
        self.detail = QLabel()
        self.detail.setObjectName("checkDetail")
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.list_view.itemActivated.connect(self._on_item_activated)
        self.list_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list_view.customContextMenuRequested.connect(self._show_context_menu)

        self.strip_button = QPushButton(STRIP_TEXT)
        self.strip_button.setObjectName("checkStripPrefixButton")
        self.strip_button.setToolTip("Strip another trigger word's prefix from the selected "
                                     "caption or from every caption that starts with one "
                                     "(asks first; Ctrl+Z takes it back)")
        self.strip_button.clicked.connect(self.ask_strip_other_prefix)
        self.strip_button.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.run_button)
        top.addStretch(1)
        filter_row = QHBoxLayout()
        show_label = QLabel("&Show:")
        show_label.setBuddy(self.kind_combo)
        filter_row.addWidget(show_label)
        filter_row.addWidget(self.kind_combo)
        filter_row.addStretch(1)
        filter_row.addWidget(self.strip_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.near_check)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.summary)
        layout.addLayout(filter_row)
        layout.addWidget(self.list_view, 1)
        layout.addWidget(self.detail)
        self.set_project(None)

    # ------------------------------------------------------------------ public

    @property
    def project(self) -> Project | None:
        """The project checked, or None."""
        return self._project

    @property
    def is_running(self) -> bool:
        """True from :meth:`run` until the check has finished, failed or been cancelled."""
        return self._job is not None

    def findings(self) -> list[Finding]:
        """Every finding of the last completed check (whatever the filter shows)."""
        return list(self._findings)

    def set_project(self, project: Project | None) -> None:
        """Check ``project`` from now on; None disables the check.

        Another project clears the results; a running check is cancelled, and its thread has
        stopped when this returns (so the old project may then be closed). The same project
        again changes nothing.
        """
        if project is self._project and project is not None:
            return
        self._stop_job()
        self._project = project
        self._findings = []
        self._total = 0
        self._wanted_kind = None
        self._fill_combo()
        self.summary.setText(INTRO_TEXT if project is not None else NO_PROJECT_TEXT)
        self._set_status("")
        self._show_idle()

    def run(self) -> None:
        """Start the check of the current project; nothing happens without one or while a
        check runs. The previous results are cleared."""
        if self._project is None or self._job is not None:
            return
        self._findings = []
        self._total = 0
        self._fill_combo()
        self.summary.setText("")
        job = CheckJob(self._project, near_duplicates=self.near_check.isChecked(), parent=self,
                       pool=self._pool)
        self._job = job
        job.progress.connect(lambda done, total: self._on_progress(job, done, total))
        job.finished.connect(lambda findings: self._on_finished(job, findings))
        job.failed.connect(lambda message: self._on_failed(job, message))
        job.cancelled.connect(lambda: self._on_cancelled(job))
        self.run_button.setText(CANCEL_TEXT)
        self.run_button.setToolTip("Stop the check")
        self.run_button.setEnabled(True)
        self.near_check.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.show()
        self._set_status("Checking the images…")
        job.start()

    def foreign_prefix_ids(self) -> list[int]:
        """The images of the last check's ``prefix_other`` findings, in list order."""
        return [f.image_id for f in self._findings if f.kind == FOREIGN_KIND]

    def ask_strip_other_prefix(self) -> None:
        """"Strip Other Prefix…": ask whether to strip another trigger word's prefix from the
        selected finding's image or from every image with that finding, then emit
        :attr:`strip_other_prefix_requested` with the chosen ids (nothing on Cancel)."""
        every = self.foreign_prefix_ids()
        if not every:
            return
        current = self._current_foreign_finding()
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Strip Other Prefix")
        count = len(every)
        captions = "1 caption starts" if count == 1 else f"{count} captions start"
        box.setText(f"{captions} with another trigger word's prefix. Strip it?")
        selected = f"The selected finding is {current.path}. " if current is not None else ""
        box.setInformativeText(
            f"{selected}The export puts your own prefix in front of each caption, so the other "
            "one would follow it. Only that prefix is removed; Edit > Undo takes it back.")
        this_button = None
        if current is not None and count > 1:
            this_button = box.addButton("Only This Image", QMessageBox.ButtonRole.AcceptRole)
        all_text = "Strip" if count == 1 else f"All {count} Images"
        all_button = box.addButton(all_text, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(all_button)
        box.exec()
        clicked = box.clickedButton()
        if clicked is all_button:
            self.strip_other_prefix_requested.emit(every)
        elif this_button is not None and clicked is this_button and current is not None:
            self.strip_other_prefix_requested.emit([current.image_id])

    def context_actions(self, item: QTreeWidgetItem | None,
                        parent: QObject | None = None) -> list[QAction]:
        """The list's context-menu entries for ``item`` (owned by ``parent``, else the panel):
        for a ``prefix_other`` finding, strip the prefix from this image, or from all images
        with that finding. None for other findings."""
        finding = self._finding_of(item)
        if finding is None or finding.kind != FOREIGN_KIND:
            return []
        owner = parent if parent is not None else self
        this = QAction(STRIP_THIS_TEXT, owner)
        image_id = finding.image_id
        this.triggered.connect(
            lambda _checked=False: self.strip_other_prefix_requested.emit([image_id]))
        every = self.foreign_prefix_ids()
        all_action = QAction(f"Strip Other Prefix from All {len(every)} Images", owner)
        all_action.triggered.connect(
            lambda _checked=False: self.strip_other_prefix_requested.emit(every))
        return [this, all_action] if len(every) > 1 else [this]

    def mark_outdated(self) -> None:
        """Captions changed after the last check: say so (the findings may be out of date)."""
        if self._job is None and self._findings:
            self._set_status(OUTDATED_TEXT)

    def cancel(self) -> None:
        """Ask a running check to stop; "Check cancelled." follows."""
        if self._job is None:
            return
        self._job.cancel()
        self.run_button.setEnabled(False)
        self._set_status("Cancelling…")

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until a running check's thread is done (its signals may still be queued).

        True when it is, or when nothing runs; False on timeout. Meant for shutdown and tests.
        """
        return self._job.wait(timeout_ms) if self._job is not None else True

    def shutdown(self) -> None:
        """Cancel a running check and wait for its thread (the window calls this on close)."""
        self._stop_job()
        self._show_idle()

    # ------------------------------------------------------------------ running

    def _stop_job(self) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        job.cancel()  # its signals are ignored from now on: it is no longer self._job
        job.wait(STOP_TIMEOUT_MS)
        job.deleteLater()

    def _on_run_clicked(self) -> None:
        if self._job is not None:
            self.cancel()
        else:
            self.run()

    def _on_progress(self, job: CheckJob, done: int, total: int) -> None:
        if job is not self._job:
            return
        self._total = total
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if not job.is_cancelled:
            self._set_status(f"Checking {done} of {total} images…")

    def _on_finished(self, job: CheckJob, findings: object) -> None:
        if job is not self._job:
            return
        assert isinstance(findings, list)
        self._end(job)
        self._findings = findings
        self._fill_combo()
        self.summary.setText(summary_text(findings, self._total))
        self._set_status("")

    def _on_failed(self, job: CheckJob, message: str) -> None:
        if job is not self._job:
            return
        self._end(job)
        self.summary.setText("")
        self._set_status(f"The check failed: {message}")

    def _on_cancelled(self, job: CheckJob) -> None:
        if job is not self._job:
            return
        self._end(job)
        self.summary.setText("")
        self._set_status(f"{CANCELLED_TEXT} Press {RUN_TEXT} to run it again.")

    def _end(self, job: CheckJob) -> None:
        self._job = None
        job.deleteLater()
        self._show_idle()

    def _show_idle(self) -> None:
        self.run_button.setText(RUN_TEXT)
        self.run_button.setToolTip("Look for problems in the captions and images that weaken "
                                   "a LoRA (nothing is changed)")
        self.run_button.setEnabled(self._project is not None)
        self.near_check.setEnabled(True)
        self.progress.hide()

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # ------------------------------------------------------------------ the list

    def _on_kind_chosen(self, _index: int) -> None:
        self._wanted_kind = self.kind_combo.currentData()
        self._fill_rows()

    def _fill_combo(self) -> None:
        """List the kinds found; the kind last chosen stays chosen while it has findings."""
        counts = Counter(f.kind for f in self._findings)
        kinds = [k for k in KIND_LABELS if counts[k]] + sorted(k for k in counts
                                                             if k not in KIND_LABELS)
        self.kind_combo.blockSignals(True)
        try:
            self.kind_combo.clear()
            self.kind_combo.addItem(f"All findings ({len(self._findings)})", None)
            for kind in kinds:
                self.kind_combo.addItem(f"{kind_label(kind, plural=True)} ({counts[kind]})",
                                        kind)
            wanted = self._wanted_kind
            index = self.kind_combo.findData(wanted) if wanted is not None else 0
            self.kind_combo.setCurrentIndex(max(index, 0))
        finally:
            self.kind_combo.blockSignals(False)
        self.kind_combo.setEnabled(bool(self._findings))
        self.strip_button.setVisible(FOREIGN_KIND in counts)
        self._fill_rows()

    def _show_detail(self, item: QTreeWidgetItem | None, _previous: object = None) -> None:
        if item is None:
            self.detail.setText("")
        else:
            self.detail.setText(f"{item.text(COL_FILE)}: {item.text(COL_PROBLEM)}")

    def _fill_rows(self) -> None:
        kind = self.kind_combo.currentData()
        self.list_view.clear()
        self.detail.setText("")
        items = []
        for index, finding in enumerate(self._findings):
            if kind is not None and finding.kind != kind:
                continue
            item = QTreeWidgetItem([finding.path, kind_label(finding.kind), finding.message])
            item.setData(COL_FILE, IMAGE_ID_ROLE, finding.image_id)
            item.setData(COL_KIND, FINDING_INDEX_ROLE, index)
            item.setToolTip(COL_FILE, f"{finding.path}\nClick to show this image")
            item.setToolTip(COL_PROBLEM, finding.message)
            items.append(item)
        self.list_view.addTopLevelItems(items)

    def _finding_of(self, item: QTreeWidgetItem | None) -> Finding | None:
        if item is None:
            return None
        index = item.data(COL_KIND, FINDING_INDEX_ROLE)
        return self._findings[index] if isinstance(index, int) else None

    def _current_foreign_finding(self) -> Finding | None:
        finding = self._finding_of(self.list_view.currentItem())
        return finding if finding is not None and finding.kind == FOREIGN_KIND else None

    def _show_context_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        actions = self.context_actions(self.list_view.itemAt(pos), menu)
        if not actions:
            menu.deleteLater()
            return
        menu.addActions(actions)
        viewport = self.list_view.viewport()
        assert viewport is not None
        menu.exec(viewport.mapToGlobal(pos))
        menu.deleteLater()

    def _on_item_activated(self, item: QTreeWidgetItem | None, _column: int = 0) -> None:
        if item is None:
            return
        image_id = int(item.data(COL_FILE, IMAGE_ID_ROLE))
        now = time.monotonic()
        interval = QApplication.doubleClickInterval() / 1000
        if (self._last_emit is not None and self._last_emit[0] == image_id
                and now - self._last_emit[1] < interval):
            return  # the second half of a double-click: one jump is enough
        self._last_emit = (image_id, now)
        self.image_requested.emit(image_id)
