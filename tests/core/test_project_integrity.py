"""A project file that is all or nothing, names that are not UTF-8, and files that lie.

``Project.create`` leaves no half-made project behind; file names that are not valid UTF-8 are
stored exactly and shown readable; a damaged or edited project file is refused with one clear
message and no backup copies; image paths that leave the project folder are flagged; a
read-only project is refused for writing with advice, and still opens read-only.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loracap.core import project as project_mod
from loracap.core.errors import InputError, ProjectError, ProjectVersionError
from loracap.core.project import (
    CREATING_SUFFIX,
    Project,
    ProjectNotWritableError,
    Provenance,
)
from loracap.core.scan import ScannedFile, scan_folder
from loracap.core.schema import SCHEMA_VERSION
from tests.core.test_project import make_version_4
from tests.fakes.photos import make_photo, make_photo_folder

#: Linux (ext4, tmpfs …) stores any bytes as a file name; macOS and Windows do not.
bytes_names = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="file names that are not UTF-8 need Linux")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 3)
    (folder / "IMG_0002.txt").write_text("photo of hall oak doors\n")
    return folder


def project_files(folder: Path) -> list[str]:
    """Every file in ``folder`` that belongs to a project (hidden temporary ones included)."""
    return sorted(name for name in os.listdir(folder) if ".loraproj" in name)


# ---------------------------------------------------------------------- all or nothing


def test_a_new_project_appears_only_once_its_images_are_stored(dataset: Path) -> None:
    path = dataset / "hall.loraproj"
    project = Project.create(path, trigger="hall")
    try:
        assert not path.exists()
        [temporary] = project_files(dataset)
        assert temporary.startswith(".hall.loraproj.") and temporary.endswith(CREATING_SUFFIX)
        # The scan never takes the unfinished file for a photo or a project.
        assert [f.rel_path for f in scan_folder(dataset)] == [
            "IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"]
        result = project.add_scanned(scan_folder(dataset))
        assert result.added == 3 and result.imported_captions == 1
        assert project_files(dataset) == ["hall.loraproj", "hall.loraproj-shm",
                                          "hall.loraproj-wal"]  # open, in WAL mode
        assert project.stats().images == 3
        project.edit_caption(project.images()[0].id, "a bench")
    finally:
        project.close()
    assert project_files(dataset) == ["hall.loraproj"]
    with Project.open(path) as reopened:
        assert reopened.stats().captioned == 2


def _scan_then_fail(folder: Path) -> Iterator[ScannedFile]:
    yield from scan_folder(folder)
    raise OSError(28, "No space left on device")


def test_a_failure_while_adding_the_images_leaves_no_project(dataset: Path) -> None:
    path = dataset / "hall.loraproj"
    with pytest.raises(OSError, match="No space left"), Project.create(
            path, trigger="hall") as project:
        project.add_scanned(_scan_then_fail(dataset))
    assert project_files(dataset) == []
    # The retry is not blocked by "already exists", and finds everything to caption.
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(dataset))
        assert project.stats().images == 3


def test_the_window_style_create_then_add_leaves_nothing_on_failure(dataset: Path) -> None:
    # The window and `run` call create, then add_scanned, without a with block.
    project = Project.create(dataset / "hall.loraproj", trigger="hall")
    with pytest.raises(OSError):
        project.add_scanned(_scan_then_fail(dataset))
    project.close()  # as `run` does on any error: closes, publishes nothing
    assert project_files(dataset) == []


def test_an_error_in_the_with_block_removes_the_unfinished_project(dataset: Path) -> None:
    with pytest.raises(RuntimeError), Project.create(dataset / "hall.loraproj", trigger="hall"):
        raise RuntimeError("the user pressed Cancel")
    assert project_files(dataset) == []


def test_an_empty_project_is_complete_when_closed(dataset: Path) -> None:
    with Project.create(dataset / "hall.loraproj", trigger="hall"):
        pass
    assert project_files(dataset) == ["hall.loraproj"]
    with Project.open(dataset / "hall.loraproj") as project:
        assert project.images() == []


def test_a_file_made_at_the_path_meanwhile_is_never_replaced(dataset: Path) -> None:
    path = dataset / "hall.loraproj"
    project = Project.create(path, trigger="hall")
    path.write_bytes(b"someone else's file")
    with pytest.raises(ProjectError, match="already exists"):
        project.add_scanned(scan_folder(dataset))
    assert path.read_bytes() == b"someone else's file"
    assert project_files(dataset) == ["hall.loraproj"]


def test_temporary_files_of_a_killed_process_are_removed(dataset: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    stale = dataset / f".hall.loraproj.{dead}-0a1b2c3d{CREATING_SUFFIX}"
    stale.write_bytes(b"half a project")
    (dataset / f"{stale.name}-journal").write_bytes(b"journal")
    alive = dataset / f".hall.loraproj.{os.getppid()}-0a1b2c3d{CREATING_SUFFIX}"
    alive.write_bytes(b"another process is creating it right now")
    with Project.create(dataset / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(dataset))
    assert project_files(dataset) == [alive.name, "hall.loraproj"]


# ---------------------------------------------------------------------- names that are not UTF-8


@bytes_names
def test_names_that_are_not_utf8_are_stored_exactly_and_shown_readable(tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 1)
    raw = os.fsencode(folder)
    make_photo(folder / "tmp1.jpg", seed=5)
    os.rename(raw + b"/tmp1.jpg", raw + b"/caf\xe9.jpg")
    (Path(os.fsdecode(raw + b"/caf\xe9.txt"))).write_bytes(b"photo of hall a cafe table\n")
    os.mkdir(raw + b"/d\xffr")
    make_photo(folder / "tmp2.png", seed=6)
    os.rename(raw + b"/tmp2.png", raw + b"/d\xffr/b\xe0d.png")
    path = folder / "hall.loraproj"

    scanned = list(scan_folder(folder))
    assert sorted(f.rel_path for f in scanned) == [
        "IMG_0001.jpg", "caf\\xe9.jpg", "d\\xffr/b\\xe0d.png"]
    with Project.create(path, trigger="hall") as project:
        result = project.add_scanned(scanned)
        assert (result.added, result.invalid, result.imported_captions) == (3, 0, 1)
        records = {rec.path: rec for rec in project.images()}
        cafe = records["caf\\xe9.jpg"]
        assert cafe.file_name == "caf\\xe9.jpg" and cafe.valid and not cafe.outside
        assert os.fsencode(cafe.abs_path) == raw + b"/caf\xe9.jpg"
        assert cafe.abs_path.is_file() and project.missing_images() == []
        assert cafe.caption is not None and cafe.caption.body == "a cafe table"
        assert project.stored_path(cafe.abs_path) == "caf\\xe9.jpg"
        project.edit_caption(cafe.id, "a cafe table, red chairs")
        assert project.undo_label() == "Edit caption of caf\\xe9.jpg"
        # Adding the same scan again finds every file known, byte for byte.
        assert project.add_scanned(scan_folder(folder)).already_known == 3

    conn = sqlite3.connect(path)
    stored = dict(conn.execute("SELECT path, typeof(path) FROM images").fetchall())
    conn.close()
    assert stored == {"IMG_0001.jpg": "text", b"caf\xe9.jpg": "blob",
                      b"d\xffr/b\xe0d.png": "blob"}

    moved = tmp_path / "moved"
    os.rename(folder, moved)
    with Project.open(moved / "hall.loraproj") as project:
        bad = next(rec for rec in project.images() if rec.path == "d\\xffr/b\\xe0d.png")
        assert os.fsencode(bad.abs_path) == os.fsencode(moved) + b"/d\xffr/b\xe0d.png"
        assert project.missing_images() == []
        assert project.undo() is not None


def test_a_project_folder_with_uri_characters_opens_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "shoot #2?x=1 100%"
    make_photo_folder(folder, 1)
    with Project.create(folder / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
    with Project.open(folder / "hall.loraproj", read_only=True) as project:
        assert [rec.path for rec in project.images()] == ["IMG_0001.jpg"]
    assert project_mod.project_lock_owner(folder / "hall.loraproj") is None


# ---------------------------------------------------------------------- damaged project files


def _made(dataset: Path) -> Path:
    with Project.create(dataset / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(dataset))
        image_id = project.images()[0].id
        project.store_generated(image_id, "lobby", backend="g", model="m", prompt="p")
        project.edit_caption(image_id, "lobby, sofa")
    return dataset / "hall.loraproj"


def _execute(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


DAMAGE = [
    ("PRAGMA user_version = 0", "it has no project format version"),
    ("DROP TABLE captions", "the table captions is missing"),
    ("ALTER TABLE images DROP COLUMN review", "the column review of the table images is missing"),
    ("DELETE FROM project", "it has no project settings"),
    ("UPDATE project SET trigger = '../../x/ESCAPED'",
     'its trigger word "../../x/ESCAPED" is not a valid trigger word'),
    ("UPDATE project SET trigger = char(27) || '[2J'",
     r'its trigger word "\x1b[2J" is not a valid trigger word'),
    ("UPDATE project SET prefix_template = 'photo of' || char(10) || '{trigger} '",
     "its caption prefix"),
    ("UPDATE project SET tag_separator = ''", 'its tag separator "" is empty'),
    ("UPDATE project SET profile = 'robot'", 'its caption profile "robot" is not one of'),
    ("UPDATE images SET review = 'maybe'", 'has the review mark "maybe"'),
    ("UPDATE images SET rating = 9", "has the rating"),
    ("UPDATE images SET file_size = 'big'", "has the size"),
    ("UPDATE captions SET provenance = 'alien'", 'a caption has the provenance "alien"'),
    ("UPDATE caption_versions SET provenance = 'alien'", 'a caption has the provenance "alien"'),
    ("UPDATE captions SET body = CAST(x'ff00fe' AS TEXT)", "it cannot be read"),
    ("UPDATE images SET path = '' WHERE id = 1", 'image 1 has the path ""'),
    # Rows are first tested in SQL (issue 15); each kind of damage still gets its message.
    ("UPDATE images SET valid = 2", 'is marked valid "2"'),
    ("UPDATE images SET width = 0", 'has the size "0"'),
    ("UPDATE images SET mtime = 'noon'", "has the size"),
    ("UPDATE images SET note = x'00'", "has a note that is not text"),
    ("UPDATE images SET path = CAST(x'ff41' AS TEXT) WHERE id = 1", "it cannot be read"),
    ("INSERT INTO lock VALUES (1, 'me', 'here', 0, '2024-01-01')", "its lock row"),
    ("UPDATE captions SET updated_at = '2024-02-30 10:00:00.000000'",
     'the time "2024-02-30 10:00:00.000000" in captions.updated_at is not a time'),
    ("UPDATE images SET added_at = 'yesterday'", '"yesterday" in images.added_at'),
    ("UPDATE caption_versions SET created_at = 20240101", "in caption_versions.created_at"),
]


@pytest.mark.parametrize(("statement", "problem"), DAMAGE)
@pytest.mark.parametrize("read_only", [False, True])
def test_a_damaged_project_is_refused_with_one_message(
    dataset: Path, statement: str, problem: str, read_only: bool
) -> None:
    path = _made(dataset)
    _execute(path, statement)
    before = path.read_bytes()
    for _attempt in range(2):
        with pytest.raises(ProjectError) as caught:
            Project.open(path, read_only=read_only)
        message = str(caught.value)
        assert message.startswith("hall.loraproj is damaged: ") and problem in message
        assert "\n" not in message and "\x1b" not in message
    assert project_files(dataset) == ["hall.loraproj"]  # no backup copy, no -wal or -shm
    assert path.read_bytes() == before


def test_a_damaged_older_project_gets_no_backup(dataset: Path) -> None:
    path = _made(dataset)
    _execute(path, "DROP TABLE exports", "DROP TABLE undo_steps", "PRAGMA user_version = 3")
    for _attempt in range(3):
        with pytest.raises(ProjectError, match="is damaged: the table undo_steps is missing"):
            Project.open(path)
    assert project_files(dataset) == ["hall.loraproj"]


def test_a_failed_migration_keeps_the_file_and_no_backup_then_succeeds_once(
    dataset: Path
) -> None:
    path = _made(dataset)
    make_version_4(path)
    # Format 3, with something in the way of the table that format 4 adds.
    _execute(path, "DROP TABLE exports", "CREATE VIEW exports AS SELECT 1 AS x",
             "PRAGMA user_version = 3")
    for _attempt in range(2):
        with pytest.raises(ProjectError, match="could not be upgraded from project format 3 "
                                               f"to {SCHEMA_VERSION}: .*exports.* It is "
                                               "unchanged"):
            Project.open(path)
    assert project_files(dataset) == ["hall.loraproj"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
    _execute(path, "DROP VIEW exports")
    with Project.open(path) as project:
        assert project.exports() == []
    assert project_files(dataset) == ["hall.loraproj", "hall.v3-backup.loraproj"]


def test_a_damaged_undo_step_is_refused_not_a_crash(dataset: Path) -> None:
    path = _made(dataset)
    _execute(path, """UPDATE undo_steps SET payload = '[{"image": 1, "before": {"caption":
                      ["x", "alien", null, null, null]}, "after": {"caption": null}}]'""")
    with Project.open(path) as project, pytest.raises(
            ProjectError, match="is damaged: a stored undo step cannot be read"):
        project.undo()


def test_settings_refuse_what_opening_would_refuse(dataset: Path) -> None:
    with Project.open(_made(dataset)) as project:
        with pytest.raises(InputError, match="Unknown caption profile"):
            project.update_settings(profile="robot")
        with pytest.raises(InputError, match="line break"):
            project.update_settings(tag_separator="\n")
        with pytest.raises(InputError, match="empty"):
            project.update_settings(tag_separator="")
        assert project.update_settings(profile="person", tag_separator="; ").profile == "person"
    with pytest.raises(InputError, match="Unknown caption profile"):
        Project.create(dataset / "other.loraproj", trigger="hall", profile="robot")


def test_a_newer_project_is_still_refused_as_newer(dataset: Path) -> None:
    path = _made(dataset)
    _execute(path, "PRAGMA user_version = 99", "DROP TABLE images")
    with pytest.raises(ProjectVersionError, match="newer LoRACap"):
        Project.open(path)


# ---------------------------------------------------------------------- paths outside the folder


def test_paths_that_leave_the_project_folder_are_flagged(dataset: Path, tmp_path: Path) -> None:
    path = _made(dataset)
    make_photo(tmp_path / "secret_notes.jpg", seed=7)
    make_photo(tmp_path / "elsewhere" / "private.jpg", seed=8)
    (dataset / "sub").mkdir()
    os.symlink(tmp_path / "elsewhere", dataset / "sub" / "link")
    rows = {"../secret_notes.jpg": True, (tmp_path / "secret_notes.jpg").as_posix(): True,
            "sub/../IMG_0001.jpg": False, "sub/link/private.jpg": False}
    conn = sqlite3.connect(path)
    for number, stored in enumerate(rows, start=10):
        conn.execute("INSERT INTO images (id, path, file_size, mtime, width, height, format, "
                     "valid, invalid_reason, added_at, review, note) VALUES (?, ?, 1, 0, 640, "
                     "480, 'JPEG', 1, '', '2024-01-01', 'unreviewed', '')", (number, stored))
    conn.commit()
    conn.close()
    with Project.open(path, read_only=True) as project:
        records = {rec.path: rec for rec in project.images()}
        assert {stored: records[stored].outside for stored in rows} == rows
        assert not records["IMG_0001.jpg"].outside
        # Reading through a link that leads out of the folder is outside too.
        assert project.is_outside(records["sub/link/private.jpg"])
        assert not project.is_outside(records["sub/../IMG_0001.jpg"])
        assert not project.is_outside(records["IMG_0001.jpg"])


# ---------------------------------------------------------------------- read-only projects


@contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as an ordinary user: root writes read-only files anyway."""
    if os.name != "posix" or os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_dataset() -> Iterator[Path]:
    """A dataset folder any user can reach (pytest's tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="loracap-ro-"))
    top.chmod(0o755)
    folder = top / "hall"
    make_photo_folder(folder, 2)
    try:
        yield folder
    finally:
        for dirpath, _dirs, _files in os.walk(top):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(top)


@pytest.mark.parametrize(("file_mode", "folder_mode", "what"), [
    (0o444, 0o777, "the file is read-only"),
    (0o666, 0o555, "its folder"),
    (0o444, 0o555, "the file and its folder"),
])
def test_a_read_only_project_is_refused_for_writing_and_opens_read_only(
    shared_dataset: Path, file_mode: int, folder_mode: int, what: str
) -> None:
    path = shared_dataset / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(shared_dataset))
    with Project.open(path, read_only=True) as warm:  # load every module while root
        warm.stats()
    path.chmod(file_mode)
    shared_dataset.chmod(folder_mode)
    with unprivileged():
        with pytest.raises(ProjectNotWritableError) as caught:
            Project.open(path)
        with Project.open(path, read_only=True) as project:
            stats = project.stats()
    message = str(caught.value)
    assert message.startswith(f"hall.loraproj cannot be opened for changes: {what}")
    assert "Make " in message and "opened read-only, the project can still be viewed" in message
    assert stats.images == 2
    assert sorted(os.listdir(shared_dataset)) == ["IMG_0001.jpg", "IMG_0002.jpg",
                                                  "hall.loraproj"]


def test_a_new_project_in_a_read_only_folder_leaves_nothing(shared_dataset: Path) -> None:
    with Project.open(_made_shared(shared_dataset), read_only=True) as warm:
        warm.stats()
    (shared_dataset / "hall.loraproj").unlink()
    shared_dataset.chmod(0o555)
    with unprivileged(), pytest.raises(ProjectError, match="Cannot create the project file .* "
                                                           "No project file was left behind"):
        Project.create(shared_dataset / "hall.loraproj", trigger="hall")
    assert project_files(shared_dataset) == []


def _made_shared(folder: Path) -> Path:
    with Project.create(folder / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
    return folder / "hall.loraproj"


def test_caption_history_survives_the_checks(dataset: Path) -> None:
    with Project.open(_made(dataset)) as project:
        rec = next(r for r in project.images() if r.caption is not None
                   and r.caption.provenance is Provenance.EDITED)
        assert [v.body for v in project.history(rec.id)] == ["lobby", "lobby, sofa"]
        assert json.loads(json.dumps(project.undo_label())) == f"Edit caption of {rec.path}"
