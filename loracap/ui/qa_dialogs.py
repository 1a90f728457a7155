"""The window's dialogs for question-answer pairs (issue 14): what to generate, and how to export.

:class:`QAGenerateDialog` turns the user's choices into
:class:`~loracap.core.qa.generate.QAOptions` (checked before the dialog closes, so a mistake is
shown in it); :class:`QAExportDialog` runs :class:`~loracap.jobs.background.QAExportJob` with a
progress bar and says what was written and what was left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import LoraCapError
from loracap.core.prompts import LANGUAGES, language_label
from loracap.core.qa.records import AnswerType
from loracap.jobs.background import QAExportJob

if TYPE_CHECKING:
    from loracap.core.project import Project
    from loracap.core.qa.generate import QAOptions
    from loracap.core.records import ProjectSettings

#: The kinds of questions, as the dialog names them (the presets of loracap.core.qa.prompts).
KINDS = (("descriptive", "Descriptive: what is visible"),
         ("reasoning", "Reasoning: why, what next"),
         ("counting", "Counting and positions"),
         ("ocr", "Text in the image (OCR)"))

ANSWER_TYPES = ((AnswerType.TEXT, "Free text"),
                (AnswerType.LABEL, "Labels from the project's list"),
                (AnswerType.CUSTOM_FORMAT, "JSON following the project's schema"))

STYLES = (("default", "LoRACap (every field)"), ("llava", "LLaVA conversations"),
          ("vqa", "VQA-style records"), ("sharegpt", "ShareGPT (LLaMA-Factory)"),
          ("hf", "Hugging Face imagefolder"))


class QAGenerateDialog(QDialog):
    """Captions > Question-Answer Pairs > Generate…: how many questions, of what kind, in which
    language, with which answers, for which images. :attr:`options` and :attr:`scope` hold
    the choice after ``exec()`` returns Accepted."""

    def __init__(self, parent: QWidget | None, settings: ProjectSettings, *,
                 selected: int, current: str | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate Question-Answer Pairs")
        self._settings = settings
        self.options: QAOptions | None = None
        #: ``missing``, ``all``, ``selected`` or ``current``.
        self.scope = "missing"
        self.questions = QSpinBox()
        self.questions.setRange(1, 20)
        self.questions.setValue(3)
        self.kind = QComboBox()
        for name, label in KINDS:
            self.kind.addItem(label, name)
        self.template_path = QLineEdit()
        self.template_path.setPlaceholderText("optional: your own prompt template (.txt)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        template_row = QHBoxLayout()
        template_row.addWidget(self.template_path, 1)
        template_row.addWidget(browse)
        self.language = QComboBox()
        for code in LANGUAGES:
            self.language.addItem(language_label(code), code)
        self.language.setCurrentIndex(max(0, self.language.findData(settings.language)))
        self.answer_type = QComboBox()
        for kind, label in ANSWER_TYPES:
            self.answer_type.addItem(label, kind.value)
        self.scopes = QButtonGroup(self)
        scope_box = QVBoxLayout()
        for scope, label, enabled in (
                ("missing", "Images without pairs", True),
                ("all", "All images (new questions only)", True),
                ("selected", f"The {selected} selected image(s)", selected > 0),
                ("current", f"This image ({current})" if current else "This image",
                 current is not None)):
            button = QRadioButton(label)
            button.setProperty("scope", scope)
            button.setEnabled(enabled)
            self.scopes.addButton(button)
            scope_box.addWidget(button)
        self.scopes.buttons()[3 if current is not None and selected <= 1 else 0].setChecked(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b3261e;")
        self.error.hide()

        form = QFormLayout()
        form.addRow("Questions per image", self.questions)
        form.addRow("Kind of questions", self.kind)
        form.addRow("Prompt template", template_row)
        form.addRow("Language", self.language)
        form.addRow("Answers", self.answer_type)
        form.addRow("Images", scope_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText("Generate")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Prompt Template", "",
                                              "Text files (*.txt);;All files (*)")
        if path:
            self.template_path.setText(path)

    def accept(self) -> None:
        """Check the choice; stay open with the reason when it cannot be used."""
        from loracap.core.qa.generate import QAOptions

        checked = self.scopes.checkedButton()
        self.scope = str(checked.property("scope")) if checked is not None else "missing"
        template = ""
        try:
            if self.template_path.text().strip():
                path = Path(self.template_path.text().strip()).expanduser()
                try:
                    template = path.read_text(encoding="utf-8")
                except (OSError, UnicodeError) as exc:
                    raise LoraCapError(f"Cannot read {path}: {exc}.") from exc
            self.options = QAOptions(
                questions=self.questions.value(), language=str(self.language.currentData()),
                preset=str(self.kind.currentData()), template=template,
                answer_type=AnswerType(self.answer_type.currentData()),
                labels=tuple(self._settings.qa_labels), schema=self._settings.qa_schema,
                only="selected" if self.scope in ("selected", "current") else self.scope,
            ).checked()
        except LoraCapError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        super().accept()


class QAExportDialog(QDialog):
    """File > Export Question-Answer Pairs…: the layout, the options, where; the export runs in
    the background with a progress bar, and the dialog says what was written."""

    def __init__(self, parent: QWidget | None, project: Project) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Question-Answer Pairs")
        self._project = project
        self._job: QAExportJob | None = None
        self.result_text = ""
        self.style = QComboBox()
        for name, label in STYLES:
            self.style.addItem(label, name)
        self.style.currentIndexChanged.connect(self._style_changed)
        self.jsonl = QCheckBox("JSON Lines (one record a line; for large sets)")
        self.base64 = QCheckBox("Embed the images as data URLs (no images/ folder)")
        self.per_pair = QCheckBox("One record per pair (LLaVA, ShareGPT, Hugging Face)")
        self.confirmed_only = QCheckBox("Only confirmed pairs")
        self.min_score = QComboBox()
        self.min_score.addItem("Any (scored or not)", None)
        for score in range(6):
            self.min_score.addItem(f"At least {score}", score)
        self.out = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.progress = QProgressBar()
        self.progress.hide()
        self.message = QLabel()
        self.message.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Layout", self.style)
        form.addRow("", self.jsonl)
        form.addRow("", self.base64)
        form.addRow("", self.per_pair)
        form.addRow("", self.confirmed_only)
        form.addRow("Score", self.min_score)
        form.addRow("Write to", out_row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Close)
        export = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert export is not None
        export.setText("Export")
        self.buttons.accepted.connect(self.start_export)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Invalid answers and questions without an answer are never "
                                "exported."))
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._style_changed()

    def _style_changed(self) -> None:
        from loracap.core.qa.exports import default_output

        style = str(self.style.currentData())
        hf = style == "hf"
        for box in (self.jsonl, self.base64):
            box.setEnabled(not hf)
        self.per_pair.setEnabled(style in ("llava", "sharegpt", "hf"))
        project = self._project
        self.out.setText(str(default_output(project.path, project.settings.trigger, style,
                                            self.jsonl.isChecked())))

    def _browse(self) -> None:
        if str(self.style.currentData()) == "hf":
            path = QFileDialog.getExistingDirectory(self, "Export Folder", self.out.text())
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export File", self.out.text(),
                                                  "JSON (*.json *.jsonl)")
        if path:
            self.out.setText(path)

    def options(self) -> dict[str, object]:
        """The keyword arguments of the export (:func:`loracap.core.qa.exports.export_qa`)."""
        style = str(self.style.currentData())
        return {"style": style, "jsonl": self.jsonl.isChecked() and style != "hf",
                "base64_images": self.base64.isChecked() and style != "hf",
                "per_pair": self.per_pair.isChecked(),
                "confirmed_only": self.confirmed_only.isChecked(),
                "min_score": self.min_score.currentData()}

    def start_export(self) -> None:
        """Export in the background; the dialog stays open to show the result."""
        if self._job is not None and self._job.is_running:
            return
        out = Path(self.out.text().strip()).expanduser()
        job = QAExportJob(self._project, out, self.options(), parent=self)
        job.progress.connect(lambda done: self.progress.setValue(done))
        job.finished.connect(self._done)
        job.failed.connect(self._failed)
        self._job = job
        self.progress.setRange(0, max(1, self._project.qa_stats().images_with_qa))
        self.progress.setValue(0)
        self.progress.show()
        self.message.setText("Exporting…")
        self.buttons.setEnabled(False)
        job.start()

    def _done(self, result: object) -> None:
        from loracap.core.qa.exports import QAExportResult

        assert isinstance(result, QAExportResult)
        self.buttons.setEnabled(True)
        self.progress.hide()
        lines = [f"Wrote {result.pairs} pairs of {result.images} images ({result.records} "
                 f"records) to {result.path}."]
        for reason, count in result.skipped.items():
            lines.append(f"Left out {count} pair(s): {reason.value.replace('_', ' ')}.")
        for item in result.skipped_images[:5]:
            lines.append(f"Left out {item.rel_path}: {item.detail}")
        self.result_text = "\n".join(lines)
        self.message.setText(self.result_text)

    def _failed(self, message: str) -> None:
        self.buttons.setEnabled(True)
        self.progress.hide()
        self.result_text = message
        self.message.setText(f"Not exported: {message}")

    def wait(self, timeout_ms: int = -1) -> bool:
        """Wait for an export under way (tests, closing)."""
        return self._job.wait(timeout_ms) if self._job is not None else True
