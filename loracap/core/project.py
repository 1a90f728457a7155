"""The LoRACap project: one ``.loraproj`` SQLite file per dataset.

:class:`Project` is the only way the rest of the program reads or writes a project file. It hands
out frozen records (:class:`ImageRecord`, :class:`CaptionRecord`; defined in
:mod:`loracap.core.records` and re-exported here), never ORM objects, so results can cross
threads. Every method opens its own short SQLAlchemy session, and every write is
committed before the method returns: a caption reported as stored survives a killed process.

This module holds the project file itself (creating, opening, migrating, locking, closing,
settings, adding a scan, exports); the rest of :class:`Project` comes from its parts, one
responsibility each: :mod:`loracap.core.project_images` (image paths, records, relinking,
batches and counts), :mod:`loracap.core.project_captions` (captions, their history, review
marks), :mod:`loracap.core.project_people` (the parts of multi-person captions),
:mod:`loracap.core.project_qa` (question-answer pairs and their history),
:mod:`loracap.core.project_undo` (the undo stack), on the shared
:mod:`loracap.core.project_base`. The checks of a file's contents are in
:mod:`loracap.core.project_integrity`. Import everything from here.

Safety rules kept here, for every caller (GUI, CLI, runner):

* A caption whose provenance is ``edited``, ``manual`` or ``imported`` is never replaced by
  generated text unless the caller passes ``overwrite_protected=True``.
* Every caption version is appended to ``caption_versions`` before it becomes current, so no
  text is ever lost.
* A new project file is written under a hidden temporary name beside its final path and appears
  at that path only when it is complete (:meth:`Project.create`): a failed ``new`` (a full
  disk, an error while adding the images) leaves nothing behind that blocks the retry.
* Values read from a project file are checked as strictly as the user's input when it is opened
  (trigger word, prefix template, tag separator, profile, review marks, provenance, ratings,
  paths, the tables themselves): a damaged or edited file is refused with one
  :class:`ProjectError` ("… is damaged: …"), never half-read. An image path that is absolute or
  leads out of the project folder is only flagged (:attr:`ImageRecord.outside`); the exports
  leave such files alone unless the user allows them.
* A project file from a newer LoRACap is refused (:class:`ProjectVersionError`); an older one is
  migrated after a backup copy is written beside it. The backup is made only once the file is
  known to be sound, and removed again if the migration fails (the file is then unchanged), so
  repeated attempts do not pile up copies.
* A project file or folder that cannot be written is refused for writing with
  :class:`ProjectNotWritableError`, which says what to do; opening it read-only still works.
* Only one process opens a project for writing; a second gets :class:`ProjectLockedError`.
  A lock left by a crashed process is taken over.
* The file runs in SQLite's WAL mode while open and is switched back to a single file (rollback
  journal) on :meth:`Project.close`, so a closed project has no ``-wal``/``-shm`` files beside it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, create_engine, delete, event, insert, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from loracap.core.errors import (
    InputError,
    ProjectError,
    ProjectLockedError,
    ProjectNotWritableError,
)
from loracap.core.project_batches import ProjectBatches
from loracap.core.project_captions import ProjectCaptions
from loracap.core.project_images import ProjectImages
from loracap.core.project_integrity import (
    _check_profile,
    _check_separator,
    _checked_backend_settings,
    _checked_qa_settings,
    _damaged,
    _inspect,
    _read_only_uri,
    checked_version,
)
from loracap.core.project_people import ProjectPeople
from loracap.core.project_qa import ProjectQA
from loracap.core.project_reader import read_settings
from loracap.core.project_undo import ProjectUndo
from loracap.core.records import (
    AddResult,
    CaptionMode,
    CaptionRecord,
    CaptionVersion,
    ExportRecord,
    ImageRecord,
    ProjectSettings,
    ProjectStats,
    Provenance,
    UndoOutcome,
    readable_path,
)
from loracap.core.schema import (
    APPLICATION_ID,
    NO_PRESETS,
    SCHEMA_VERSION,
    Base,
    BatchItemRow,
    BatchJobRow,
    CaptionRow,
    CaptionVersionRow,
    ExportRow,
    ImageRow,
    LockRow,
    PersonPartRow,
    ProjectRow,
    QAEntryRow,
    QAVersionRow,
    UndoStepRow,
    utcnow,
)
from loracap.core.trigger import (
    DEFAULT_PREFIX_TEMPLATE,
    strip_prefix,
    validate_prefix_template,
    validate_trigger,
)

log = logging.getLogger(__name__)

#: File extension of a project file.
PROJECT_SUFFIX = ".loraproj"

#: End of the hidden name a new project file has until it is complete
#: (``.<name>.loraproj.<pid>-<random>.creating``, beside the final path; :meth:`Project.create`).
CREATING_SUFFIX = ".creating"


#: Migrations from schema version ``v`` to ``v + 1``, each run inside one transaction on a raw
#: SQLAlchemy connection. Empty while only version 1 exists.
def _migrate_1_to_2(conn: Any) -> None:
    """Version 2 adds the review state, rating and note of each image."""
    conn.exec_driver_sql(
        "ALTER TABLE images ADD COLUMN review VARCHAR NOT NULL DEFAULT 'unreviewed'")
    conn.exec_driver_sql("ALTER TABLE images ADD COLUMN rating INTEGER")
    conn.exec_driver_sql("ALTER TABLE images ADD COLUMN note TEXT NOT NULL DEFAULT ''")


def _migrate_2_to_3(conn: Any) -> None:
    """Version 3 adds the project's tag separator and the stored undo stack."""
    conn.exec_driver_sql(
        "ALTER TABLE project ADD COLUMN tag_separator VARCHAR NOT NULL DEFAULT ', '")
    Base.metadata.tables[UndoStepRow.__tablename__].create(conn)


def _migrate_3_to_4(conn: Any) -> None:
    """Version 4 adds the table of the exports written (``exports``)."""
    Base.metadata.tables[ExportRow.__tablename__].create(conn)


def _migrate_4_to_5(conn: Any) -> None:
    """Version 5 adds the project's backend, base URL, caption language, backend options and
    prompt presets, and the token usage of caption versions and attempts."""
    for column, default in (("backend", "'gemini'"), ("base_url", "''"), ("language", "'en'"),
                            ("backend_options", "'{}'"),
                            ("prompt_presets", f"'{NO_PRESETS}'")):
        conn.exec_driver_sql(
            f"ALTER TABLE project ADD COLUMN {column} TEXT NOT NULL DEFAULT {default}")
    for table in ("caption_versions", "caption_attempts"):
        for column in ("input_tokens", "output_tokens"):
            conn.exec_driver_sql(
                f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


def _migrate_5_to_6(conn: Any) -> None:
    """Version 6 adds multi-person captions: the project's custom aliases and order of
    people, and the table of the parts of such captions (``person_parts``)."""
    conn.exec_driver_sql("ALTER TABLE project ADD COLUMN aliases TEXT NOT NULL DEFAULT '[]'")
    conn.exec_driver_sql(
        "ALTER TABLE project ADD COLUMN people_order VARCHAR NOT NULL DEFAULT 'left'")
    conn.exec_driver_sql("ALTER TABLE project ADD COLUMN detector TEXT NOT NULL DEFAULT ''")
    Base.metadata.tables[PersonPartRow.__tablename__].create(conn)


def _migrate_6_to_7(conn: Any) -> None:
    """Version 7 adds question-answer pairs: the project's answer labels and answer schema,
    and the tables of the pairs and of every version of their text (``qa_entries``,
    ``qa_versions``)."""
    conn.exec_driver_sql("ALTER TABLE project ADD COLUMN qa_labels TEXT NOT NULL DEFAULT '[]'")
    conn.exec_driver_sql("ALTER TABLE project ADD COLUMN qa_schema TEXT NOT NULL DEFAULT ''")
    for row in (QAEntryRow, QAVersionRow):
        Base.metadata.tables[row.__tablename__].create(conn)


def _migrate_7_to_8(conn: Any) -> None:
    """Version 8 adds batch API jobs (``batch_jobs``, ``batch_items``), the batch a caption
    version came from, and the file state at which an image's pixels last decoded whole."""
    conn.exec_driver_sql(
        "ALTER TABLE caption_versions ADD COLUMN batch VARCHAR NOT NULL DEFAULT ''")
    conn.exec_driver_sql("ALTER TABLE images ADD COLUMN decoded_size INTEGER")
    conn.exec_driver_sql("ALTER TABLE images ADD COLUMN decoded_mtime FLOAT")
    for row in (BatchJobRow, BatchItemRow):
        Base.metadata.tables[row.__tablename__].create(conn)


MIGRATIONS: dict[int, Callable[[Any], None]] = {
    1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4, 4: _migrate_4_to_5,
    5: _migrate_5_to_6, 6: _migrate_6_to_7, 7: _migrate_7_to_8,
}

#: Undo steps kept in a project file; older ones are dropped (the caption history keeps every
#: text regardless).
MAX_UNDO_STEPS = 200

#: Image changes kept over all stored undo steps, so a few batch edits of a 50,000-image project
#: cannot grow the file without bound. The newest step is always kept whole.
MAX_UNDO_ENTRIES = 200_000


def _connect_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 10000")
    # FULL: a committed transaction survives a power cut, not only a killed process.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _make_engine(path: Path, *, read_only: bool) -> Engine:
    """An engine with a real connection pool over ``path``.

    The pool class is given explicitly: a ``creator`` with the bare ``sqlite://`` URL would
    otherwise get SQLAlchemy's pool for in-memory databases (one connection per thread, closing
    the connections of other threads past five threads -- fatal with a worker pool).
    """
    if read_only:
        target = _read_only_uri(path)

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(target, uri=True, check_same_thread=False)
    else:

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(path, check_same_thread=False)

    engine = create_engine(
        "sqlite://", creator=connect, poolclass=QueuePool, pool_size=8, max_overflow=32
    )
    event.listen(engine, "connect", _connect_pragmas)
    return engine


def _db_reason(exc: BaseException) -> str:
    """SQLite's own words for a database error (``database or disk is full``), without
    SQLAlchemy's statement and background link."""
    return str(getattr(exc, "orig", None) or exc)


def _process_identity() -> tuple[int, str, float]:
    me = psutil.Process()
    return me.pid, socket.gethostname(), me.create_time()


def _owner_alive(pid: int, host: str, started: float) -> bool:
    """True when the lock's owner is a live process on this machine (same pid and start time)."""
    if host != socket.gethostname():
        # A lock from another machine: the file was copied while open, or sits on a shared
        # drive. It cannot be checked from here; the file is taken over with a warning.
        log.warning("Project lock held by host %s cannot be verified; taking it over", host)
        return False
    try:
        proc = psutil.Process(pid)
        return bool(abs(proc.create_time() - started) < 1.0)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


class Project(ProjectImages, ProjectCaptions, ProjectUndo, ProjectPeople, ProjectQA,
              ProjectBatches):
    """An open ``.loraproj`` project file.

    Use :meth:`create` or :meth:`open`, and :meth:`close` when done (or use it as a context
    manager). Thread-safe: any thread may call any method; writes are serialised.

    The methods on images, captions, undo, people and question-answer pairs come from its
    parts (:class:`ProjectImages`, :class:`ProjectCaptions`, :class:`ProjectUndo`,
    :class:`ProjectPeople`, :class:`ProjectQA`; see the module's description).
    """

    def __init__(self, path: Path, engine: Engine, *, read_only: bool,
                 db_path: Path | None = None) -> None:
        self.path = path
        self.folder = path.parent
        self.read_only = read_only
        #: The file's project format (``PRAGMA user_version``): :data:`SCHEMA_VERSION`, except
        #: for an older file opened read-only, which is not migrated (format-8 tables and
        #: columns are then absent).
        self.format_version = SCHEMA_VERSION
        self._engine = engine
        self._write_lock = threading.RLock()
        self._closed = False
        # The file the engine uses: a hidden temporary one while a new project is incomplete.
        self._db_path = db_path or path
        self._pending = db_path is not None and db_path != path

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        trigger: str,
        profile: str = "space",
        custom_prompt: str = "",
        prefix_template: str = DEFAULT_PREFIX_TEMPLATE,
        model: str = "gemini-flash-latest",
        name: str | None = None,
        backend: str = "gemini",
        base_url: str = "",
        language: str = "en",
    ) -> Project:
        """Create a new project file at ``path`` and open it for writing.

        All or nothing: the file is written under a hidden temporary name beside ``path``
        (``.<name>.creating``, skipped by the scan) and appears at ``path`` only when it is
        complete -- when the first :meth:`add_scanned` has stored the scan's images, or when the
        project is closed without an error (an empty project). If adding the images fails, or
        the ``with`` block ends with an exception first, the temporary file is removed and no
        project file is left. Temporary files of processes that died while creating are
        removed here.

        Raises :class:`ProjectError` if the file exists or cannot be written (a full disk, a
        read-only folder), :class:`~loracap.core.errors.TriggerWordError` for an invalid
        trigger word and :class:`InputError` for an invalid prefix template, profile, backend,
        base URL or language.
        """
        path = Path(os.path.abspath(path))
        validate_trigger(trigger)
        validate_prefix_template(prefix_template)
        _check_profile(str(profile))
        backend_settings = _checked_backend_settings(
            {"backend": backend, "base_url": base_url, "language": language})
        if os.path.lexists(path):
            raise ProjectError(f"{path} already exists; open it, or choose another project path.")
        if not path.parent.is_dir():
            raise ProjectError(f"Cannot create {path}: the folder {path.parent} does not exist.")
        _remove_stale_creations(path)
        temp = path.with_name(
            f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{CREATING_SUFFIX}")
        engine = _make_engine(temp, read_only=False)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
                Base.metadata.create_all(conn)
            with Session(engine) as session, session.begin():
                session.add(
                    ProjectRow(
                        id=1,
                        name=name or path.stem,
                        trigger=trigger,
                        profile=str(profile),
                        custom_prompt=custom_prompt,
                        prefix_template=prefix_template,
                        model=model,
                        **backend_settings,
                    )
                )
        except (OperationalError, DatabaseError, OSError) as exc:
            engine.dispose()
            _remove_database(temp)
            raise ProjectError(_create_failure(path, exc)) from exc
        return cls(path, engine, read_only=False, db_path=temp)

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> Project:
        """Open an existing project file.

        ``read_only=True`` neither locks nor migrates the file and refuses writes; it works on a
        file or folder that cannot be written. Every value is checked first (see the module's
        rules); nothing is written to a file that fails the check.
        Raises :class:`ProjectError` (not found, not a project, damaged),
        :class:`ProjectVersionError` (newer version), :class:`ProjectNotWritableError` (the
        file or its folder cannot be written; not with ``read_only``) and
        :class:`ProjectLockedError`.
        """
        path = Path(os.path.abspath(path))
        version = checked_version(path)
        if not read_only:
            _check_writable(path)
        _inspect(path, version)
        engine = _make_engine(path, read_only=read_only)
        project = cls(path, engine, read_only=read_only)
        project.format_version = version
        if read_only:
            return project
        try:
            if version < SCHEMA_VERSION:
                project._migrate(version)
                project.format_version = SCHEMA_VERSION
            project._enter_wal()
            project._take_lock()
        except (OperationalError, DatabaseError, sqlite3.DatabaseError) as exc:
            engine.dispose()
            raise _open_failure(path, exc) from exc
        except BaseException:
            engine.dispose()
            raise
        return project

    def close(self) -> None:
        """Release the lock and leave the project as a single file. Safe to call twice.

        A new project that is not complete yet (see :meth:`create`) is put in place first:
        closing without an error means it is complete. Raises :class:`ProjectError` when that
        fails (the temporary file is then removed).
        """
        if self._closed:
            return
        if self._pending:
            self._publish()
        self._closed = True
        if self.read_only:
            self._engine.dispose()
            return
        try:
            with self._write_lock, self._engine.begin() as conn:
                pid, _, _ = _process_identity()
                conn.execute(delete(LockRow).where(LockRow.pid == pid))
        except (OperationalError, DatabaseError) as exc:
            log.warning("Could not release the lock of %s: %s", self.path, _db_reason(exc))
        # Leaving WAL mode needs the only connection: close the pooled ones (worker threads
        # used their own) first.
        self._engine.dispose()
        try:
            raw = sqlite3.connect(self._db_path)
            try:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                raw.execute("PRAGMA journal_mode = DELETE")
            finally:
                raw.close()
        except sqlite3.DatabaseError as exc:
            log.warning("Could not finish closing %s cleanly: %s", self.path, exc)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._pending and exc_type is not None:
            self._discard()  # a new project whose creation failed leaves nothing behind
            return
        self.close()

    def _publish(self) -> None:
        """Put a complete new project file in place: the temporary file becomes ``path``
        (never replacing a file that appeared there meanwhile), then it is opened for writing
        as :meth:`open` does (WAL, lock)."""
        temp = self._db_path
        with self._write_lock:
            self._engine.dispose()
            try:
                _move_into_place(temp, self.path)
            except FileExistsError as exc:
                self._discard()
                raise ProjectError(f"{self.path} already exists (made while this project was "
                                   "being created); open it, or choose another project "
                                   "path.") from exc
            except OSError as exc:
                self._discard()
                raise ProjectError(_create_failure(self.path, exc)) from exc
            self._pending = False
            self._db_path = self.path
            self._engine = _make_engine(self.path, read_only=False)
            try:
                self._enter_wal()
                self._take_lock()
            except (OperationalError, DatabaseError) as exc:
                self._closed = True
                self._engine.dispose()
                raise _open_failure(self.path, exc) from exc

    def _discard(self) -> None:
        """Drop a new project that is not complete: close it and remove its temporary file."""
        self._closed = True
        self._pending = False
        self._engine.dispose()
        _remove_database(self._db_path)
        log.info("Removed the unfinished project file %s", self._db_path.name)

    def _enter_wal(self) -> None:
        with self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")

    def _take_lock(self) -> None:
        pid, host, started = _process_identity()
        with self._engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                row = conn.execute(select(LockRow).where(LockRow.id == 1)).first()
                if row is not None and row.pid != pid:
                    if _owner_alive(row.pid, row.host, row.process_started):
                        raise ProjectLockedError(
                            f"{self.path.name} is already open in another LoRACap (process "
                            f"{row.pid} on {row.host}). Close it there first; "
                            "`loracap info` can still read it."
                        )
                    log.info("Taking over the lock of a process that is gone (pid %s)", row.pid)
                conn.execute(delete(LockRow))
                conn.execute(
                    insert(LockRow).values(
                        id=1, pid=pid, host=host, process_started=started, opened_at=utcnow()
                    )
                )
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise

    def _migrate(self, version: int) -> None:
        """Back up, then migrate from ``version`` to :data:`SCHEMA_VERSION` in one transaction.

        The file was checked (:func:`_inspect`) before, so a damaged file never gets here. If a
        step fails, the transaction is rolled back -- the file is as it was -- and the backup
        just written is removed again: a second attempt does not leave a second copy.
        """
        backup = self.path.with_name(f"{self.path.stem}.v{version}-backup{PROJECT_SUFFIX}")
        counter = 2
        while backup.exists():
            backup = self.path.with_name(
                f"{self.path.stem}.v{version}-backup-{counter}{PROJECT_SUFFIX}"
            )
            counter += 1
        try:
            source = sqlite3.connect(self.path)
            try:
                target = sqlite3.connect(backup)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except BaseException:
            backup.unlink(missing_ok=True)
            raise
        log.info("Backed up %s to %s before migrating", self.path.name, backup.name)
        try:
            with self._engine.connect() as conn:
                # An explicit transaction: the Python sqlite3 module would otherwise commit
                # each ALTER and CREATE on its own, leaving a half-migrated file on an error.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    for step in range(version, SCHEMA_VERSION):
                        MIGRATIONS[step](conn)
                    conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.exec_driver_sql("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
        except BaseException as exc:
            backup.unlink(missing_ok=True)
            log.info("Migration of %s failed; removed the backup %s", self.path.name,
                     backup.name)
            if isinstance(exc, (OperationalError, DatabaseError)):
                raise ProjectError(
                    f"{self.path.name} could not be upgraded from project format {version} to "
                    f"{SCHEMA_VERSION}: {_db_reason(exc)}. It is unchanged; no backup copy was "
                    "kept.") from exc
            raise

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> ProjectSettings:
        """The project's current settings (read from the file each time;
        :func:`~loracap.core.project_reader.read_settings`).

        A file of an older format opened read-only (not migrated) lacks the columns of later
        settings; those read as their defaults (:class:`ProjectSettings`)."""
        with self._driver() as conn:
            return read_settings(conn, self.path.name)

    def update_settings(self, **changes: Any) -> ProjectSettings:
        """Change settings by name (``trigger``, ``profile``, ``custom_prompt``,
        ``prefix_template``, ``model``, ``name``, ``current_image_id``, ``tag_separator``,
        ``backend``, ``base_url``, ``language``, ``backend_options`` -- a mapping by backend
        name, or :meth:`update_backend_options` for one backend -- ``prompt_presets``, a
        JSON list, and for multi-person captions ``aliases``, a list of names,
        ``people_order``, ``left`` or ``size``, and ``detector``, the path of a local ONNX
        person detector or ``""``; for question-answer pairs ``qa_labels``, the labels a
        ``label`` answer chooses from -- each on one line, at most 200 characters, not empty,
        none twice ignoring case -- and ``qa_schema``, the JSON schema of a ``custom_format``
        answer as JSON text or a mapping that is a JSON object, or ``""``).

        Captions store only their body, so a new trigger word or template changes every
        caption's prefix at once. Raises :class:`InputError` for unknown names or invalid values.
        """
        allowed = {
            "trigger", "profile", "custom_prompt", "prefix_template", "model", "name",
            "current_image_id", "tag_separator", "backend", "base_url", "language",
            "backend_options", "prompt_presets", "aliases", "people_order", "detector",
            "qa_labels", "qa_schema",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise InputError(f"Unknown project setting(s): {', '.join(sorted(unknown))}")
        if "trigger" in changes:
            validate_trigger(changes["trigger"])
        if "prefix_template" in changes:
            validate_prefix_template(changes["prefix_template"])
        if "tag_separator" in changes:
            _check_separator(str(changes["tag_separator"]))
        if "profile" in changes:
            _check_profile(str(changes["profile"]))
        changes.update(_checked_backend_settings(changes))
        changes.update(_checked_qa_settings(changes))
        with self._write() as session:
            row = session.get(ProjectRow, 1)
            assert row is not None
            for key, value in changes.items():
                setattr(row, key, str(value) if key == "profile" else value)
            row.updated_at = utcnow()
        return self.settings

    def update_backend_options(self, backend: str, **options: Any) -> ProjectSettings:
        """Merge ``options`` (JSON values) into the stored settings of ``backend``, e.g.
        ``update_backend_options("openai", structured_output=False)``; the other backends'
        settings are kept."""
        merged = {name: dict(values) for name, values in self.settings.backend_options.items()}
        merged.setdefault(backend, {}).update(options)
        return self.update_settings(backend_options=merged)

    # ------------------------------------------------------------------ adding images

    def add_scanned(self, files: Iterable[Any]) -> AddResult:
        """Add the files of a folder scan (:class:`loracap.core.scan.ScannedFile`).

        Files already in the project are left alone. A sidecar caption becomes an ``imported``
        caption (with the project's prefix removed if it starts with it). Everything is
        committed in one transaction: all files or, on an error, none. A file name that is not
        valid UTF-8 is stored exactly (:class:`~loracap.core.schema.FsPath`) and shown readable.

        On a new project (:meth:`create`) this completes it: the file appears at its path once
        the images are stored; if storing fails the unfinished file is removed and the project
        closed. Raises :class:`ProjectError` when the file cannot be written (a full disk).
        """
        try:
            result = self._add_scanned(files)
        except BaseException as exc:
            pending = self._pending
            if pending:
                self._discard()
            if isinstance(exc, (OperationalError, DatabaseError)):
                if pending:
                    raise ProjectError(_create_failure(self.path, exc)) from exc
                raise ProjectError(f"Cannot add the images to {self.path.name}: "
                                   f"{_db_reason(exc)}; nothing was added.") from exc
            raise
        if self._pending:
            self._publish()
        return result

    def _add_scanned(self, files: Iterable[Any]) -> AddResult:
        """Store the scanned files in one transaction, inserted 1,000 rows a statement (issue
        15: the rows of 10,000 photos in about half a second), their sidecar captions as
        ``imported`` with a first version each."""
        settings = self.settings
        added = invalid = imported = known = 0
        sidecar_errors: list[tuple[str, str]] = []
        with self._write() as session:
            existing = set(session.scalars(select(ImageRow.path)))
            rows: list[dict[str, Any]] = []
            captions: dict[str, str] = {}
            now = utcnow()
            for scanned in files:
                stored = self._stored(scanned.path)
                info = scanned.info
                if stored in existing:
                    known += 1
                    continue
                existing.add(stored)
                rows.append(dict(path=stored, file_size=info.file_size, mtime=info.mtime,
                                 width=info.width, height=info.height, format=info.format,
                                 valid=info.valid, invalid_reason=readable_path(info.reason),
                                 added_at=now))
                added += 1
                if not info.valid:
                    invalid += 1
                if scanned.sidecar_error:
                    sidecar_errors.append((readable_path(stored), scanned.sidecar_error))
                if scanned.sidecar_caption and info.valid:
                    captions[stored] = strip_prefix(
                        scanned.sidecar_caption, settings.prefix_template, settings.trigger)
            # Core statements on the session's connection: no ORM bookkeeping per row.
            conn = session.connection()
            tables = Base.metadata.tables
            images = tables[ImageRow.__tablename__]
            add_images = insert(images).returning(images.c.id, images.c.path)
            for start in range(0, len(rows), 1000):
                chunk = rows[start:start + 1000]
                ids = conn.execute(add_images, chunk).all()
                with_caption = [(image_id, captions[path]) for image_id, path in ids
                                if path in captions]
                if with_caption:
                    conn.execute(insert(tables[CaptionVersionRow.__tablename__]), [
                        dict(image_id=i, body=b, provenance=Provenance.IMPORTED.value,
                             created_at=now) for i, b in with_caption])
                    conn.execute(insert(tables[CaptionRow.__tablename__]), [
                        dict(image_id=i, body=b, provenance=Provenance.IMPORTED.value,
                             created_at=now, updated_at=now) for i, b in with_caption])
                    imported += len(with_caption)
        return AddResult(added, invalid, imported, known, sidecar_errors)

    # ------------------------------------------------------------------ exports

    def record_export(self, path: Path, fmt: str, *, size: int, sha256: str) -> None:
        """Remember an export just written at ``path`` (format value ``fmt``, ``size`` bytes,
        SHA-256 hex digest ``sha256``). Committed at once. Raises
        :class:`ProjectReadOnlyError` on a project opened read-only, :class:`ProjectError` when
        the file cannot be written."""
        try:
            with self._write() as session:
                session.add(ExportRow(path=self._stored(path), format=str(fmt),
                                      written_at=utcnow(), size=int(size), sha256=sha256))
        except (OperationalError, DatabaseError) as exc:
            raise ProjectError(f"Cannot record the export in {self.path.name}: "
                               f"{_db_reason(exc)}") from exc

    def exports(self, path: Path | None = None) -> list[ExportRecord]:
        """The exports recorded by :meth:`record_export`, newest first; only those written to
        ``path`` when given."""
        query = select(ExportRow).order_by(ExportRow.id.desc())
        if path is not None:
            query = query.where(ExportRow.path == self._stored(path))
        with self._read() as session:
            return [
                ExportRecord(path=readable_path(row.path), abs_path=self.resolve(row.path),
                             format=row.format,
                             written_at=row.written_at, size=row.size, sha256=row.sha256)
                for row in session.scalars(query)
            ]

    # ------------------------------------------------------------------ undo limits

    def _undo_limits(self) -> tuple[int, int]:
        """``(steps, image changes)`` the undo stack keeps: :data:`MAX_UNDO_STEPS` and
        :data:`MAX_UNDO_ENTRIES` of this module, read at each step, so a change to them (a
        test's monkeypatch) takes effect."""
        return MAX_UNDO_STEPS, MAX_UNDO_ENTRIES


# ---------------------------------------------------------------------- writing and creating


def _check_writable(path: Path) -> None:
    """Raise :class:`ProjectNotWritableError` when ``path`` or its folder cannot be written."""
    file_ok, folder_ok = _writable(path)
    if not (file_ok and folder_ok):
        raise ProjectNotWritableError(_not_writable(path, file_ok=file_ok, folder_ok=folder_ok))


def _writable(path: Path) -> tuple[bool, bool]:
    """``(file, folder)``: whether this process may write ``path`` and create files beside it
    (by its effective user, where the system can tell)."""
    effective = os.access in os.supports_effective_ids
    return (os.access(path, os.W_OK, effective_ids=effective),
            os.access(path.parent, os.W_OK | os.X_OK, effective_ids=effective))


def _not_writable(path: Path, *, file_ok: bool, folder_ok: bool) -> str:
    if not file_ok and not folder_ok:
        what, them = f"the file and its folder {path.parent} are read-only", "them"
    elif not file_ok:
        what, them = "the file is read-only", "it"
    elif not folder_ok:
        what, them = f"its folder {path.parent} is read-only", "it"
    else:
        what, them = "the file cannot be written (a read-only disk?)", "it"
    return (f"{path.name} cannot be opened for changes: {what}. LoRACap saves every caption and "
            "edit into the project file as it happens, and needs to write in its folder too. "
            f"Make {them} writable, or copy the folder to a place you can write to; opened "
            "read-only, the project can still be viewed and exported.")


def _open_failure(path: Path, exc: BaseException) -> ProjectError:
    """The error of a database failure while opening ``path`` for writing."""
    reason = _db_reason(exc)
    lowered = reason.lower()
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        file_ok, folder_ok = _writable(path)
        return ProjectNotWritableError(_not_writable(path, file_ok=file_ok, folder_ok=folder_ok))
    if "malformed" in lowered or "not a database" in lowered:
        return ProjectError(_damaged(path, reason))
    return ProjectError(f"Cannot open {path.name} for writing: {reason}.")


def _create_failure(path: Path, exc: BaseException) -> str:
    """The message of a new project that could not be written."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _db_reason(exc)
    return (f"Cannot create the project file {path}: {readable_path(reason)}. No project file "
            "was left behind; check that the disk has free space and the folder can be "
            "written, then try again.")


def _rollback(conn: Any) -> None:
    """Roll back an explicit transaction, if SQLite has not already done so."""
    try:
        conn.exec_driver_sql("ROLLBACK")
    except (OperationalError, DatabaseError) as exc:
        log.debug("Rollback after a failed transaction: %s", _db_reason(exc))


def _remove_database(path: Path) -> None:
    """Remove a database file and SQLite's files beside it; errors are logged."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(f"{os.fspath(path)}{suffix}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("Could not remove %s%s: %s", path, suffix, exc)


def _remove_stale_creations(path: Path) -> None:
    """Remove the temporary files of new projects at ``path`` whose process is gone (killed
    while creating); files of live processes are left alone."""
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix) or CREATING_SUFFIX not in name:
            continue
        owner = name[len(prefix):].split("-", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid() or psutil.pid_exists(int(owner)):
            continue
        try:
            os.unlink(path.parent / name)
            log.info("Removed %s, left by a process that stopped while creating a project", name)
        except OSError as exc:
            log.warning("Could not remove %s: %s", name, exc)


def _move_into_place(temp: Path, path: Path) -> None:
    """Give the complete file ``temp`` the name ``path``, never replacing a file there
    (``FileExistsError``). A hard link does it atomically; where the disk has none (FAT,
    some network drives), a rename after a check."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "File exists", os.fspath(path)) from None
        os.rename(temp, path)  # on Windows this refuses an existing target too
    else:
        os.unlink(temp)
    if os.name == "posix":  # make the new name itself survive a power cut
        try:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("Could not sync the folder of %s: %s", path, exc)


def default_project_path(folder: Path, trigger: str) -> Path:
    """``<folder>/<trigger>.loraproj``: where ``loracap new`` puts a project by default."""
    return Path(folder).absolute() / f"{trigger}{PROJECT_SUFFIX}"


def project_lock_owner(path: Path) -> tuple[int, str] | None:
    """``(pid, host)`` of the process holding the project open, or None. Reads without locking."""
    conn = sqlite3.connect(_read_only_uri(path), uri=True)
    try:
        row = conn.execute("SELECT pid, host FROM lock WHERE id = 1").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()
    return (int(row[0]), str(row[1])) if row else None


__all__ = [
    "AddResult", "CaptionMode", "CaptionRecord", "CaptionVersion", "ExportRecord",
    "ImageRecord", "MIGRATIONS",
    "CREATING_SUFFIX", "MAX_UNDO_ENTRIES", "MAX_UNDO_STEPS", "PROJECT_SUFFIX", "Project",
    "ProjectNotWritableError", "ProjectSettings", "ProjectStats", "Provenance", "UndoOutcome",
    "default_project_path", "project_lock_owner",
]
