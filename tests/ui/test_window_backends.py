"""The window captions through the backend registry: Caption With, an OpenAI-compatible server,
the local WD14 tagger (downloaded and loaded before the batch), the caption language, the
New Project dialog's language and the tokens and cost in the status bar."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QMessageBox

from loracap.core.backends import wd14
from loracap.core.pricing import BUILTIN_PRICES
from loracap.core.project import CaptionMode, Project
from loracap.core.records import ModelUsage
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from loracap.ui.usage import summarize_usage, usage_text
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.photos import make_photo_folder
from tests.fakes.tiny_tagger import write_tagger

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                              extend=True),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "ide_main_hall"
    make_photo_folder(photos, 4, size=(320, 240))
    return photos


@pytest.fixture
def project_path(folder: Path) -> Path:
    path = folder / "ide_main_hall.loraproj"
    with Project.create(path, trigger="ide_main_hall") as project:
        project.add_scanned(scan_folder(folder))
    return path


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Message boxes never block; their titles and texts are recorded."""
    texts: list[tuple[str, str]] = []

    def warning(_parent, title, text, *args, **kwargs):
        texts.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", staticmethod(warning))
    return texts


@pytest.fixture
def window(qtbot, app_settings: AppSettings, tmp_path: Path, gemini_server: FakeGeminiServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    """The window with the real captioner factory; Gemini is the fake server."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    main = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
    qtbot.addWidget(main)
    main.show()
    yield main
    if main.isVisible():
        main.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


def run_batch(qtbot, window: MainWindow, mode: CaptionMode = CaptionMode.MISSING):
    with qtbot.waitSignal(window.batch_finished, timeout=60_000) as blocker:
        window.generate(mode)
    return blocker.args[0]


def caption_with(window: MainWindow) -> list[tuple[str, bool]]:
    menu = window.caption_with_menu
    menu.aboutToShow.emit()
    return [(a.text(), a.isChecked()) for a in menu.actions() if a.isCheckable()]


def test_caption_with_runs_the_batch_on_another_backend_for_this_session(
        qtbot, window: MainWindow, project_path: Path, gemini_server: FakeGeminiServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(models=("qwen2.5vl:7b",)) as server:
        server.accepts_response_format = False  # the captioner learns to do without
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert window.open_project(project_path)
        assert caption_with(window) == [
            ("Google Gemini (project default)", True), ("OpenAI-compatible server", False),
            ("Anthropic Claude", False), ("WD14 tagger (local)", False)]
        openai = next(a for a in window.caption_with_menu.actions() if a.data() == "openai")
        openai.trigger()
        assert window.model_label.text() == (
            "Captioning with: OpenAI-compatible server (this session)")
        summary = run_batch(qtbot, window)
        assert (summary.done, summary.failed) == (4, [])
        assert gemini_server.generate_requests == []
        assert {r.model for r in server.chat_requests} == {"qwen2.5vl:7b"}
        project = window.project
        assert {rec.caption.backend for rec in project.images()} == {"openai"}
        assert project.settings.backend == "gemini"  # the project's own stays
        # What the server taught the captioner is kept for the next batch.
        # And the model it used, for the next batch on that backend.
        assert project.settings.options_for("openai") == {"structured_output": False,
                                                          "model": "qwen2.5vl:7b"}
        # A price the table does not know is said to be unknown, never free.
        assert window.usage_status.text() == (
            "Tokens: 3,344 (cost unknown: no price for openai qwen2.5vl:7b)")
        assert caption_with(window)[1] == ("OpenAI-compatible server", True)
        # Reopening the project forgets the session's choice.
        assert window.open_project(project_path)
        assert caption_with(window)[0] == ("Google Gemini (project default)", True)


def test_the_status_bar_shows_the_tokens_and_cost_after_a_batch(
        qtbot, window: MainWindow, project_path: Path) -> None:
    window.open_project(project_path)
    assert window.usage_status.text() == ""  # nothing paid yet
    run_batch(qtbot, window)
    # 4 answers of 270 + 20 tokens at $0.30 / $2.50 per million (gemini-flash-latest).
    assert window.usage_status.text() == "Tokens: 1,160 (about $0.0005)"
    assert "gemini gemini-flash-latest: 4 answer(s), 1,080 input + 80 output tokens" in \
        window.usage_status.toolTip()


def test_usage_text_names_the_models_without_a_price() -> None:
    usages = [ModelUsage("gemini", "gemini-2.5-flash", 10, 1_000_000, 0),
              ModelUsage("openai", "llava:13b", 2, 500, 20),
              ModelUsage("wd14", "wd-vit-tagger-v3", 9, 0, 0)]
    assert usage_text(summarize_usage(usages, BUILTIN_PRICES)) == (
        "Tokens: 1,000,520 (about $0.3000 + unknown for openai llava:13b)")
    assert usage_text(summarize_usage(usages[2:], BUILTIN_PRICES)) == ""


def test_the_caption_language_reaches_the_prompt(qtbot, window: MainWindow,
                                                 project_path: Path,
                                                 gemini_server: FakeGeminiServer) -> None:
    with Project.open(project_path) as project:
        project.update_settings(language="de")
    window.open_project(project_path)
    run_batch(qtbot, window)
    prompts = [r.prompt for r in gemini_server.generate_requests]
    assert len(prompts) == 4 and all("German (Deutsch)" in p for p in prompts)


def test_a_wd14_batch_uses_the_model_folder_and_loads_it_first(
        qtbot, window: MainWindow, project_path: Path, tmp_path: Path) -> None:
    window.settings.wd14_model_dir = write_tagger(tmp_path / "tiny-tagger")
    with Project.open(project_path) as project:
        project.update_settings(backend="wd14", model="")
    window.open_project(project_path)
    summary = run_batch(qtbot, window)
    assert (summary.done, summary.failed) == (4, [])
    for record in window.project.images():
        assert record.caption.backend == "wd14" and record.caption.model == "tiny-tagger"
        assert record.caption.body.startswith("1girl, ")
        assert "hatsune miku" in record.caption.body
    assert window.usage_status.text() == ""  # a local tagger costs nothing
    assert window._batch_captioner is None  # closed after the batch


def test_a_wd14_model_that_cannot_load_is_one_message(
        qtbot, window: MainWindow, project_path: Path, tmp_path: Path,
        shown: list[tuple[str, str]]) -> None:
    folder = write_tagger(tmp_path / "broken-tagger")
    (folder / "model.onnx").write_bytes(b"this is not an onnx model")
    window.settings.wd14_model_dir = folder
    with Project.open(project_path) as project:
        project.update_settings(backend="wd14")
    window.open_project(project_path)
    window.generate(CaptionMode.MISSING)
    assert not window.generate_action.isEnabled()  # getting ready counts as running
    qtbot.waitUntil(lambda: bool(shown), timeout=30_000)
    ((title, text),) = shown
    assert title == "Cannot start captioning"
    assert "model.onnx" in text and "Traceback" not in text
    assert window.runner is None and window.generate_action.isEnabled()
    assert not window.progress.isVisible()
    assert window.project.stats().failed == 0  # no image paid for the broken model


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The tiny tagger served as SmilingWolf/wd-vit-tagger-v3 by the fake Hugging Face hub;
    empty caches; downloads go to the fake hub."""
    import huggingface_hub.constants

    from tests.core.test_backend_wd14 import FakeHub

    source = write_tagger(tmp_path / "source")
    files = {f"SmilingWolf/wd-vit-tagger-v3/{name}": (source / name).read_bytes()
             for name in ("model.onnx", "selected_tags.csv")}
    monkeypatch.setenv("LORACAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with FakeHub(files) as fake:
        monkeypatch.setattr(wd14, "ensure_model",
                            functools.partial(wd14.ensure_model, endpoint=fake.url))
        yield fake


def test_a_wd14_model_is_downloaded_with_progress_before_the_batch(
        qtbot, window: MainWindow, project_path: Path, hub) -> None:
    with Project.open(project_path) as project:
        project.update_settings(backend="wd14", model="wd-vit-tagger-v3")
    window.open_project(project_path)
    texts: list[str] = []
    real = window.progress.show_activity

    def record(text: str, done: int, total: int) -> None:
        texts.append(text)
        real(text, done, total)

    window.progress.show_activity = record  # type: ignore[method-assign]
    summary = run_batch(qtbot, window)
    assert summary.done == 4
    downloads = [t for t in texts if t.startswith("Downloading the WD14 model")]
    assert downloads and downloads[0].startswith(
        "Downloading the WD14 model wd-vit-tagger-v3: ")
    assert "Loading the WD14 model…" in texts
    assert len([m for m, _ in hub.requests if m == "GET"]) == 2
    assert wd14.cached_model("wd-vit-tagger-v3") is not None
    assert {r.caption.model for r in window.project.images()} == {"wd-vit-tagger-v3"}


def test_getting_a_tagger_ready_can_be_cancelled(qtbot, window: MainWindow,
                                                 project_path: Path, hub) -> None:
    with Project.open(project_path) as project:
        project.update_settings(backend="wd14", model="wd-vit-tagger-v3")
    window.open_project(project_path)
    window.generate(CaptionMode.MISSING)
    assert window.progress.isVisible() and window.progress.cancel_button.isEnabled()
    window.progress.cancel_button.click()
    assert not window.progress.isVisible()
    assert window.statusBar().currentMessage() == "Cancelled before captioning began."
    assert window.runner is None and window.generate_action.isEnabled()
    assert window.project.stats().captioned == 0


def test_the_new_project_dialog_sets_the_language_and_the_default_backend(
        qtbot, window: MainWindow, folder: Path, app_settings: AppSettings) -> None:
    app_settings.default_backend = "anthropic"
    app_settings.default_model = "claude-haiku-4-5"
    app_settings.default_backend_options = {"anthropic": {"tagger_hints": True}}

    def drive_dialog() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QDialog)
        combo = dialog.language_combo
        assert combo.currentText() == "English"
        combo.setCurrentIndex(combo.findData("fr"))
        ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
        qtbot.waitUntil(ok.isEnabled, timeout=10_000)
        ok.click()

    QTimer.singleShot(0, drive_dialog)
    window.new_project(folder)
    settings = window.project.settings
    assert (settings.language, settings.backend, settings.model) == (
        "fr", "anthropic", "claude-haiku-4-5")
    assert settings.options_for("anthropic") == {"tagger_hints": True}
    assert window.model_label.text() == "Anthropic Claude: claude-haiku-4-5"


def test_a_projects_unknown_server_gets_the_key_only_after_the_user_says_yes(
        qtbot, window: MainWindow, project_path: Path, gemini_server: FakeGeminiServer,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from loracap.core.errors import LoraCapError
    from loracap.core.trusted_servers import is_trusted

    trusted = tmp_path / "trusted.json"
    monkeypatch.setattr("loracap.core.trusted_servers._path", lambda: trusted)
    with Project.open(project_path) as project:  # as a crafted project would hold it
        project.update_settings(base_url="https://collector.example/v1beta")
    asked: list[str] = []
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]

    def question(_parent, title, text, *args, **kwargs):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    made: list[str] = []

    def factory(config):
        made.append(config.base_url)
        raise LoraCapError("stopped before any request")

    monkeypatch.setattr(window, "_captioner_factory", factory)
    monkeypatch.setattr(window, "show_error", lambda text: None)
    assert window.open_project(project_path)
    window.generate(CaptionMode.MISSING)
    assert len(asked) == 1 and "https://collector.example/v1beta" in asked[0]
    assert "Gemini API key" in asked[0]
    assert made == [] and not is_trusted("gemini", "https://collector.example/v1beta")
    window.generate(CaptionMode.MISSING)
    assert made == ["https://collector.example/v1beta"]
    assert is_trusted("gemini", "https://collector.example/v1beta")
    assert gemini_server.generate_requests == []
