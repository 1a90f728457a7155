"""The .loraproj project file: settings, images, provenance, history, versions, locking."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from loracap.core import project as project_mod
from loracap.core.errors import (
    InputError,
    ProjectError,
    ProjectLockedError,
    ProjectReadOnlyError,
    ProjectVersionError,
    TriggerWordError,
)
from loracap.core.project import CaptionMode, Project, Provenance
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from tests.fakes.photos import make_photo, make_photo_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path)


def make_dataset(tmp_path: Path) -> Path:
    """A folder ``hall`` of four photos, one in a subfolder, a caption file and a broken image."""
    folder = tmp_path / "hall"
    make_photo_folder(folder, 4)
    make_photo(folder / "sub" / "IMG_0009.png", seed=9)
    (folder / "IMG_0002.txt").write_text("photo of hall marble floor, tall windows\n")
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return folder


def new_project(folder: Path, trigger: str = "hall") -> Project:
    project = Project.create(folder / f"{trigger}.loraproj", trigger=trigger)
    project.add_scanned(scan_folder(folder))
    return project


def ids_by_path(project: Project) -> dict[str, int]:
    return {rec.path: rec.id for rec in project.images()}


def test_new_project_stores_relative_paths_and_imports_sidecars(dataset: Path) -> None:
    with new_project(dataset) as project:
        records = {rec.path: rec for rec in project.images()}
        assert set(records) == {
            "IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg",
            "sub/IMG_0009.png", "broken.jpg",
        }
        assert records["IMG_0001.jpg"].width == 640 and records["IMG_0001.jpg"].height == 480
        assert records["IMG_0001.jpg"].format == "JPEG"
        assert not records["broken.jpg"].valid and records["broken.jpg"].invalid_reason
        imported = records["IMG_0002.jpg"].caption
        assert imported is not None and imported.provenance is Provenance.IMPORTED
        # The project's own prefix is not stored twice.
        assert imported.body == "marble floor, tall windows"
        assert project.final_caption(records["IMG_0002.jpg"]) == (
            "photo of hall marble floor, tall windows"
        )


def test_closed_project_is_one_file_and_reopens_elsewhere(dataset: Path, tmp_path: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0001.jpg"]
        project.edit_caption(image_id, "lobby, red sofa")
    leftovers = sorted(p.name for p in dataset.glob("hall.loraproj*"))
    assert leftovers == ["hall.loraproj"]
    # Copy the whole folder (another laptop): relative paths still resolve.
    moved = tmp_path / "copied"
    os.rename(dataset, moved)
    with Project.open(moved / "hall.loraproj") as project:
        assert project.missing_images() == []
        rec = project.image(image_id)
        assert rec.abs_path == moved / "IMG_0001.jpg"
        assert rec.caption is not None and rec.caption.body == "lobby, red sofa"


def test_missing_images_are_reported_not_fatal(dataset: Path) -> None:
    with new_project(dataset):
        pass
    (dataset / "IMG_0003.jpg").unlink()
    with Project.open(dataset / "hall.loraproj") as project:
        assert [rec.path for rec in project.missing_images()] == ["IMG_0003.jpg"]
        assert project.stats().missing_files == 1
        chosen, _ = project.select_for_captioning(CaptionMode.ALL)
        assert ids_by_path(project)["IMG_0003.jpg"] not in chosen


def test_provenance_edit_history_and_revert(dataset: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0001.jpg"]
        assert project.store_generated(
            image_id, "lecture hall, tiered seating", backend="gemini", model="m1", prompt="p"
        )
        rec = project.image(image_id)
        assert rec.caption and rec.caption.provenance is Provenance.GENERATED
        edited = project.edit_caption(image_id, "lecture hall, tiered seating, red chairs")
        assert edited.provenance is Provenance.EDITED
        assert edited.model == "m1"  # an edit keeps where its text came from
        reverted = project.revert_to_generated(image_id)
        assert reverted.provenance is Provenance.GENERATED
        assert reverted.body == "lecture hall, tiered seating"
        bodies = [(v.provenance, v.body) for v in project.history(image_id)]
        assert bodies == [
            (Provenance.GENERATED, "lecture hall, tiered seating"),
            (Provenance.EDITED, "lecture hall, tiered seating, red chairs"),
            (Provenance.GENERATED, "lecture hall, tiered seating"),
        ]


def test_manual_caption_and_revert_without_generated(dataset: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0004.jpg"]
        assert project.edit_caption(image_id, "my own words").provenance is Provenance.MANUAL
        with pytest.raises(InputError, match="no generated caption"):
            project.revert_to_generated(image_id)


@pytest.mark.parametrize("provenance", ["edited", "manual", "imported"])
def test_generated_text_never_replaces_a_persons_caption(dataset: Path, provenance: str) -> None:
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        image_id = ids["IMG_0002.jpg"] if provenance == "imported" else ids["IMG_0001.jpg"]
        if provenance == "edited":
            project.store_generated(image_id, "old", backend="gemini", model="m", prompt="p")
            project.edit_caption(image_id, "a person's words")
        elif provenance == "manual":
            project.edit_caption(image_id, "a person's words")
        before = project.image(image_id).caption
        assert before is not None
        stored = project.store_generated(image_id, "new text", backend="g", model="m", prompt="p")
        assert stored is False
        after = project.image(image_id).caption
        assert after is not None and after.body == before.body
        # The generated text is not lost either: it is in the history.
        assert "new text" in [v.body for v in project.history(image_id)]
        assert project.store_generated(
            image_id, "new text", backend="g", model="m", prompt="p", overwrite_protected=True
        )
        assert before.body in [v.body for v in project.history(image_id)]
        assert project.image(image_id).caption.body == "new text"  # type: ignore[union-attr]


def test_select_modes_and_stats(dataset: Path) -> None:
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        project.store_generated(ids["IMG_0001.jpg"], "a", backend="g", model="m", prompt="p")
        project.record_failure(ids["IMG_0003.jpg"], "Gemini blocked this image (SAFETY)",
                               kind="rejected")
        missing, protected = project.select_for_captioning(CaptionMode.MISSING)
        assert sorted(missing) == sorted(
            [ids["IMG_0003.jpg"], ids["IMG_0004.jpg"], ids["sub/IMG_0009.png"]]
        )
        assert protected == []
        everything, protected = project.select_for_captioning(CaptionMode.ALL)
        assert ids["IMG_0002.jpg"] in protected and ids["IMG_0002.jpg"] not in everything
        assert ids["broken.jpg"] not in everything
        failed, _ = project.select_for_captioning(CaptionMode.FAILED)
        assert failed == [ids["IMG_0003.jpg"]]
        chosen, protected = project.select_for_captioning(
            CaptionMode.SELECTED, [ids["IMG_0001.jpg"], ids["IMG_0002.jpg"]]
        )
        assert chosen == [ids["IMG_0001.jpg"]] and protected == [ids["IMG_0002.jpg"]]
        stats = project.stats()
        assert (stats.images, stats.invalid, stats.captioned, stats.failed) == (5, 1, 2, 1)
        assert stats.provenance == {"generated": 1, "edited": 0, "manual": 0, "imported": 1}
        assert project.image(ids["IMG_0003.jpg"]).last_error.startswith("Gemini blocked")


def test_changing_the_trigger_changes_every_prefix(dataset: Path) -> None:
    with new_project(dataset) as project:
        rec = next(r for r in project.images() if r.path == "IMG_0002.jpg")
        project.update_settings(trigger="main_hall")
        assert project.final_caption(rec) == "photo of main_hall marble floor, tall windows"
        project.update_settings(prefix_template="{trigger}, ")
        assert project.final_caption(rec) == "main_hall, marble floor, tall windows"
        with pytest.raises(TriggerWordError):
            project.update_settings(trigger="Main Hall")
        with pytest.raises(InputError):
            project.update_settings(api_key="secret")


def test_file_never_holds_the_api_key(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-very-secret-key")
    with new_project(dataset):
        pass
    assert b"AIza-very-secret-key" not in (dataset / "hall.loraproj").read_bytes()


def test_not_a_project_and_newer_version_are_refused(dataset: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "x.loraproj"
    bogus.write_text("hello")
    with pytest.raises(ProjectError, match="not a LoRACap project"):
        Project.open(bogus)
    other = tmp_path / "other.loraproj"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ProjectError, match="not a LoRACap project"):
        Project.open(other)
    with new_project(dataset):
        pass
    path = dataset / "hall.loraproj"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ProjectVersionError, match="newer LoRACap"):
        Project.open(path)
    with pytest.raises(ProjectError, match="No project file"):
        Project.open(tmp_path / "nope.loraproj")


def make_version_7(path: Path) -> None:
    """Turn a current project file into what schema version 7 looked like (no batch jobs, no
    batch of a caption version, no record of decoded pixels)."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE batch_items")
    conn.execute("DROP TABLE batch_jobs")
    conn.execute("ALTER TABLE caption_versions DROP COLUMN batch")
    for column in ("decoded_size", "decoded_mtime"):
        conn.execute(f"ALTER TABLE images DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()


def make_version_6(path: Path) -> None:
    """Turn a current project file into what schema version 6 looked like (no question-answer
    pairs, answer labels or answer schema)."""
    make_version_7(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE qa_versions")
    conn.execute("DROP TABLE qa_entries")
    for column in ("qa_labels", "qa_schema"):
        conn.execute(f"ALTER TABLE project DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()


def make_version_5(path: Path) -> None:
    """Turn a current project file into what schema version 5 looked like (no multi-person
    parts, aliases or order of people)."""
    make_version_6(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE person_parts")
    for column in ("aliases", "people_order", "detector"):
        conn.execute(f"ALTER TABLE project DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()


def make_version_4(path: Path) -> None:
    """Turn a current project file into what schema version 4 looked like (no backend settings,
    no token counts)."""
    make_version_5(path)
    conn = sqlite3.connect(path)
    for column in ("backend", "base_url", "language", "backend_options", "prompt_presets"):
        conn.execute(f"ALTER TABLE project DROP COLUMN {column}")
    for table in ("caption_versions", "caption_attempts"):
        for column in ("input_tokens", "output_tokens"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()


def _make_version_3(path: Path) -> None:
    """Turn a current project file into what schema version 3 looked like (no exports)."""
    make_version_4(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE exports")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()


def _make_version_2(path: Path) -> None:
    """Turn a current project file into what schema version 2 looked like."""
    _make_version_3(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE project DROP COLUMN tag_separator")
    conn.execute("DROP TABLE undo_steps")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


def _make_version_1(path: Path) -> None:
    """Turn a current project file into what LoRACap 0.1 wrote (schema version 1)."""
    _make_version_2(path)
    conn = sqlite3.connect(path)
    for column in ("review", "rating", "note"):
        conn.execute(f"ALTER TABLE images DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_a_version_1_project_is_backed_up_then_migrated(dataset: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0002.jpg"]
    path = dataset / "hall.loraproj"
    _make_version_1(path)
    with Project.open(path) as project:
        rec = project.image(image_id)
        assert rec.review is Review.UNREVIEWED and rec.rating is None and rec.note == ""
        assert rec.caption is not None and rec.caption.provenance is Provenance.IMPORTED
        project.set_review(image_id, review=Review.APPROVED, rating=4, note="sharp")
    backup = dataset / "hall.v1-backup.loraproj"
    assert backup.is_file()
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    old.close()
    with Project.open(path, read_only=True) as project:
        rec = project.image(image_id)
        assert (rec.review, rec.rating, rec.note) == (Review.APPROVED, 4, "sharp")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == project_mod.SCHEMA_VERSION
    conn.close()


def test_a_version_2_project_gains_the_separator_and_a_stored_undo_stack(dataset: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0002.jpg"]
    path = dataset / "hall.loraproj"
    _make_version_2(path)
    with Project.open(path) as project:
        assert project.settings.tag_separator == ", "
        assert project.undo_label() is None
        project.edit_caption(image_id, "a hall, oak doors")
    assert (dataset / "hall.v2-backup.loraproj").is_file()
    with Project.open(path) as project:
        assert project.undo_label() == "Edit caption of IMG_0002.jpg"
        project.undo()
        rec = project.image(image_id)
        assert rec.caption is not None and rec.caption.provenance is Provenance.IMPORTED


def test_a_version_3_project_gains_the_exports_table(dataset: Path, tmp_path: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0002.jpg"]
        project.set_review(image_id, rating=3)
    path = dataset / "hall.loraproj"
    _make_version_3(path)
    with Project.open(path, read_only=True) as project:  # read-only: nothing migrated
        assert project.image(image_id).rating == 3
    assert not (dataset / "hall.v3-backup.loraproj").exists()
    out = tmp_path / "elsewhere.zip"
    out.write_bytes(b"zip bytes")
    with Project.open(path) as project:
        assert project.exports() == []
        project.record_export(out, "replicate", size=9, sha256="ab" * 32)
        project.record_export(dataset / "metadata.txt", "metadata", size=3, sha256="cd" * 32)
    backup = dataset / "hall.v3-backup.loraproj"
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 3
    assert "exports" not in {row[0] for row in
                             old.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    old.close()
    with Project.open(path, read_only=True) as project:
        assert project.image(image_id).rating == 3  # nothing else changed
        recorded = project.exports()
        # Newest first; stored like image paths: relative below the project folder.
        assert [(r.path, r.format, r.size) for r in recorded] == [
            ("metadata.txt", "metadata", 3), (out.as_posix(), "replicate", 9)]
        assert recorded[0].abs_path == dataset / "metadata.txt"
        assert [r.path for r in project.exports(out)] == [out.as_posix()]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == project_mod.SCHEMA_VERSION
    conn.close()


def test_migrations_run_in_order_after_one_backup(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with new_project(dataset):
        pass
    path = dataset / "hall.loraproj"
    current = project_mod.SCHEMA_VERSION
    ran: list[int] = []

    def add_notes(conn: object) -> None:
        ran.append(current)
        conn.exec_driver_sql("ALTER TABLE images ADD COLUMN extra TEXT")  # type: ignore[attr-defined]

    monkeypatch.setattr(project_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(project_mod.MIGRATIONS, current, add_notes)
    with Project.open(path) as project:
        assert len(project.images()) == 6
    assert ran == [current]
    assert (dataset / f"hall.v{current}-backup.loraproj").is_file()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == current + 1
    assert "extra" in [row[1] for row in conn.execute("PRAGMA table_info(images)")]
    conn.close()


def test_review_state_rating_and_note(dataset: Path) -> None:
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        project.set_review(ids["IMG_0001.jpg"], review=Review.APPROVED, rating=5)
        project.set_review(ids["IMG_0003.jpg"], review=Review.REJECTED, note="blurry")
        rec = project.set_review(ids["IMG_0001.jpg"], note="keep")
        assert (rec.review, rec.rating, rec.note) == (Review.APPROVED, 5, "keep")
        assert project.set_review(ids["IMG_0001.jpg"], rating=None).rating is None
        with pytest.raises(InputError, match="1 to 5"):
            project.set_review(ids["IMG_0001.jpg"], rating=6)
        stats = project.stats()
        assert (stats.reviewed, stats.approved, stats.rejected) == (2, 1, 1)


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def test_second_process_is_refused_while_first_is_open(dataset: Path) -> None:
    with new_project(dataset):
        pass
    path = dataset / "hall.loraproj"
    holder = _python(
        "import sys; from loracap.core.project import Project\n"
        f"p = Project.open({str(path)!r}); print('open', flush=True); sys.stdin.read(); p.close()"
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(ProjectLockedError, match="already open in another LoRACap"):
            Project.open(path)
        with Project.open(path, read_only=True) as reader:  # reading is still allowed
            assert reader.stats().images == 5
            with pytest.raises(ProjectReadOnlyError):
                reader.edit_caption(reader.images()[0].id, "x")
    finally:
        holder.communicate("", timeout=30)
    with Project.open(path) as project:  # released on close
        assert project.stats().images == 5


def test_lock_of_a_crashed_process_is_taken_over(dataset: Path) -> None:
    with new_project(dataset):
        pass
    path = dataset / "hall.loraproj"
    crashed = _python(
        "import os; from loracap.core.project import Project\n"
        f"p = Project.open({str(path)!r}); os._exit(9)"
    )
    crashed.communicate(timeout=30)
    assert crashed.returncode == 9
    assert project_mod.project_lock_owner(path) is not None
    with Project.open(path) as project:
        assert project.stats().images == 5


def test_writes_from_many_threads_are_all_kept(dataset: Path) -> None:
    with new_project(dataset) as project:
        ids = [rec.id for rec in project.images() if rec.valid]
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(10):
                    image_id = ids[(n + i) % len(ids)]
                    project.record_failure(image_id, f"e{n}-{i}", kind="server")
                    project.edit_caption(image_id, f"text {n}-{i}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        total_versions = sum(len(project.history(i)) for i in ids)
        assert total_versions >= 40 - 1  # an identical re-edit is not a new version


def test_create_refuses_existing_file_and_bad_trigger(dataset: Path) -> None:
    with new_project(dataset):
        pass
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(dataset / "hall.loraproj", trigger="hall")
    with pytest.raises(TriggerWordError):
        Project.create(dataset / "x.loraproj", trigger="IDE Main-Hall")
    assert not (dataset / "x.loraproj").exists()


def test_many_worker_threads_share_the_project_safely(dataset: Path) -> None:
    """More threads than any per-thread pool keeps: no connection is closed under a user."""
    with new_project(dataset) as project:
        ids = [rec.id for rec in project.images() if rec.valid]
        errors: list[BaseException] = []
        barrier = threading.Barrier(12)

        def work() -> None:
            try:
                barrier.wait()
                for _ in range(20):
                    project.images()
                    project.record_failure(ids[0], "x", kind="server")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        for _round in range(3):  # fresh threads each round, as a new worker pool would have
            threads = [threading.Thread(target=work) for _ in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            barrier.reset()
        assert errors == []


def test_restore_caption_brings_back_an_exact_earlier_state(dataset: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0001.jpg"]
        project.store_generated(image_id, "generated text", backend="gemini", model="m1",
                                prompt="p")
        before = project.image(image_id).caption
        project.edit_caption(image_id, "edited text")
        project.restore_caption(image_id, before)
        after = project.image(image_id).caption
        assert after is not None and before is not None
        assert (after.body, after.provenance, after.model) == (
            "generated text", Provenance.GENERATED, "m1")
        project.restore_caption(image_id, None)
        assert project.image(image_id).caption is None
        assert project.has_generated_version(image_id)
        assert [v.body for v in project.history(image_id)][-2:] == ["edited text",
                                                                    "generated text"]


def test_relink_finds_moved_images(dataset: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    project_path = outside / "hall.loraproj"
    with Project.create(project_path, trigger="hall") as project:
        project.add_scanned(scan_folder(dataset))  # images outside the project folder
        assert project.missing_images() == []
        moved = tmp_path / "moved_hall"
        os.rename(dataset, moved)
        assert len(project.missing_images()) == 5
        with pytest.raises(InputError):
            project.relink(tmp_path / "no_such_folder")
        relinked = project.relink(moved)
        assert len(relinked) == 5
        assert project.missing_images() == []
        assert {rec.abs_path.parent for rec in project.images() if rec.valid} == {
            moved, moved / "sub"}
