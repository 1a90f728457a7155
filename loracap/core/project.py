"""The LoRACap project: one ``.loraproj`` SQLite file per dataset.

:class:`Project` is the only way the rest of the program reads or writes a project file. It hands
out frozen records (:class:`ImageRecord`, :class:`CaptionRecord`; defined in
:mod:`loracap.core.records` and re-exported here), never ORM objects, so results can cross
threads. Every method opens its own short SQLAlchemy session, and every write is
committed before the method returns: a caption reported as stored survives a killed process.

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
import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import EllipsisType
from typing import Any

import psutil
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from loracap.core.backends.base import TokenUsage
from loracap.core.backends.registry import check_backend_options
from loracap.core.errors import (
    InputError,
    ProjectError,
    ProjectLockedError,
    ProjectNotWritableError,
    ProjectReadOnlyError,
    ProjectVersionError,
)
from loracap.core.project_integrity import (
    _check_header,
    _check_profile,
    _check_separator,
    _checked_backend_settings,
    _damaged,
    _inspect,
    _leaves_folder,
    _read_only_uri,
    _undo_entries,
)
from loracap.core.records import (
    AddResult,
    CaptionMode,
    CaptionRecord,
    CaptionVersion,
    ExportRecord,
    ImageRecord,
    ModelUsage,
    ProjectSettings,
    ProjectStats,
    Provenance,
    Review,
    UndoOutcome,
    readable_path,
)
from loracap.core.schema import (
    APPLICATION_ID,
    NO_PRESETS,
    SCHEMA_VERSION,
    Base,
    CaptionAttemptRow,
    CaptionRow,
    CaptionVersionRow,
    ExportRow,
    ImageRow,
    LockRow,
    ProjectRow,
    UndoStepRow,
    utcnow,
)
from loracap.core.trigger import (
    DEFAULT_PREFIX_TEMPLATE,
    full_caption,
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


MIGRATIONS: dict[int, Callable[[Any], None]] = {
    1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4, 4: _migrate_4_to_5,
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


class Project:
    """An open ``.loraproj`` project file.

    Use :meth:`create` or :meth:`open`, and :meth:`close` when done (or use it as a context
    manager). Thread-safe: any thread may call any method; writes are serialised.
    """

    def __init__(self, path: Path, engine: Engine, *, read_only: bool,
                 db_path: Path | None = None) -> None:
        self.path = path
        self.folder = path.parent
        self.read_only = read_only
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
        if not path.is_file():
            raise ProjectError(f"No project file at {path}.")
        version = _check_header(path)
        if version > SCHEMA_VERSION:
            raise ProjectVersionError(
                f"{path.name} was saved by a newer LoRACap (project format {version}; this "
                f"version reads up to {SCHEMA_VERSION}). Update LoRACap to open it."
            )
        if version < 1:
            raise ProjectError(_damaged(path, f"it has no project format version "
                                              f"(user_version {version})"))
        if not read_only:
            _check_writable(path)
        _inspect(path, version)
        engine = _make_engine(path, read_only=read_only)
        project = cls(path, engine, read_only=read_only)
        if read_only:
            return project
        try:
            if version < SCHEMA_VERSION:
                project._migrate(version)
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

    # ------------------------------------------------------------------ sessions

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        if self.read_only:
            raise ProjectReadOnlyError(f"{self.path.name} is open read-only.")
        with self._write_lock, Session(self._engine) as session, session.begin():
            yield session

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> ProjectSettings:
        """The project's current settings (read from the file each time)."""
        with self._read() as session:
            row = session.get(ProjectRow, 1)
            if row is None:
                raise ProjectError(f"{self.path.name} has no project settings; it is damaged.")
            return ProjectSettings(
                name=row.name,
                trigger=row.trigger,
                profile=row.profile,
                custom_prompt=row.custom_prompt,
                prefix_template=row.prefix_template,
                model=row.model,
                current_image_id=row.current_image_id,
                tag_separator=row.tag_separator,
                backend=row.backend,
                base_url=row.base_url,
                language=row.language,
                backend_options=check_backend_options(row.backend_options),
                prompt_presets=row.prompt_presets,
            )

    def update_settings(self, **changes: Any) -> ProjectSettings:
        """Change settings by name (``trigger``, ``profile``, ``custom_prompt``,
        ``prefix_template``, ``model``, ``name``, ``current_image_id``, ``tag_separator``,
        ``backend``, ``base_url``, ``language``, ``backend_options`` -- a mapping by backend
        name, or :meth:`update_backend_options` for one backend -- and ``prompt_presets``, a
        JSON list).

        Captions store only their body, so a new trigger word or template changes every
        caption's prefix at once. Raises :class:`InputError` for unknown names or invalid values.
        """
        allowed = {
            "trigger", "profile", "custom_prompt", "prefix_template", "model", "name",
            "current_image_id", "tag_separator", "backend", "base_url", "language",
            "backend_options", "prompt_presets",
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

    # ------------------------------------------------------------------ images

    def stored_path(self, path: Path) -> str:
        """A file's path as :attr:`ImageRecord.path` shows it: POSIX, relative to the project
        folder when below it, else absolute; bytes that are not UTF-8 shown as ``\\xHH``
        (:func:`~loracap.core.records.readable_path`)."""
        return readable_path(self._stored(path))

    def _stored(self, path: Path) -> str:
        """How a path is stored: like :meth:`stored_path`, with the exact name (a lone
        surrogate for each byte that is not UTF-8; :class:`~loracap.core.schema.FsPath`)."""
        path = Path(os.path.abspath(path))
        try:
            return path.relative_to(self.folder).as_posix()
        except ValueError:
            return path.as_posix()

    def resolve(self, stored: str) -> Path:
        """The absolute path of a stored image path."""
        candidate = Path(stored)
        return candidate if candidate.is_absolute() else self.folder / candidate

    def is_outside(self, record: ImageRecord) -> bool:
        """True when reading ``record``'s file reads outside the project folder: its stored path
        is absolute or leads out (:attr:`ImageRecord.outside`), or a symbolic link on the way
        leads out. Exports check this for every image they read; it touches the disk, so the
        grid shows the cheaper :attr:`ImageRecord.outside`."""
        if record.outside:
            return True
        folder = os.path.realpath(self.folder)
        real = os.path.realpath(record.abs_path)
        try:
            return os.path.commonpath([folder, real]) != folder
        except ValueError:  # another drive on Windows
            return True

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
        settings = self.settings
        added = invalid = imported = known = 0
        sidecar_errors: list[tuple[str, str]] = []
        with self._write() as session:
            existing = set(session.scalars(select(ImageRow.path)))
            for scanned in files:
                stored = self._stored(scanned.path)
                info = scanned.info
                if stored in existing:
                    known += 1
                    continue
                existing.add(stored)
                row = ImageRow(
                    path=stored,
                    file_size=info.file_size,
                    mtime=info.mtime,
                    width=info.width,
                    height=info.height,
                    format=info.format,
                    valid=info.valid,
                    invalid_reason=readable_path(info.reason),
                )
                session.add(row)
                session.flush()
                added += 1
                if not info.valid:
                    invalid += 1
                if scanned.sidecar_error:
                    sidecar_errors.append((readable_path(stored), scanned.sidecar_error))
                if scanned.sidecar_caption and info.valid:
                    body = strip_prefix(
                        scanned.sidecar_caption, settings.prefix_template, settings.trigger
                    )
                    self._put_caption(session, row.id, body, Provenance.IMPORTED)
                    imported += 1
        return AddResult(added, invalid, imported, known, sidecar_errors)

    def images(self) -> list[ImageRecord]:
        """Every image of the project, ordered by stored path (case-insensitive)."""
        with self._read() as session:
            return self._records(session, None)

    def image(self, image_id: int) -> ImageRecord:
        """One image by id; raises :class:`InputError` if there is none."""
        with self._read() as session:
            records = self._records(session, [image_id])
        if not records:
            raise InputError(f"No image with id {image_id} in {self.path.name}.")
        return records[0]

    def images_by_id(self, image_ids: Iterable[int]) -> list[ImageRecord]:
        """The images with these ids (unknown ids are left out), ordered as :meth:`images`."""
        ids = list(dict.fromkeys(image_ids))
        records: list[ImageRecord] = []
        with self._read() as session:
            for chunk in _chunks(ids):
                records.extend(self._records(session, chunk))
        records.sort(key=lambda rec: (rec.path.casefold(), rec.path))
        return records

    def missing_images(self) -> list[ImageRecord]:
        """Valid images whose file is no longer on disk (the folder was moved or renamed)."""
        return [rec for rec in self.images() if rec.valid and not rec.abs_path.is_file()]

    def _records(self, session: Session, ids: Sequence[int] | None) -> list[ImageRecord]:
        query = select(ImageRow, CaptionRow).outerjoin(
            CaptionRow, CaptionRow.image_id == ImageRow.id
        )
        if ids is not None:
            query = query.where(ImageRow.id.in_(ids))
        latest = self._latest_attempts(session, ids)
        records = []
        for image, caption in session.execute(query):
            attempt = latest.get(image.id)
            records.append(
                ImageRecord(
                    id=image.id,
                    path=readable_path(image.path),
                    abs_path=self.resolve(image.path),
                    valid=image.valid,
                    invalid_reason=image.invalid_reason,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                    file_size=image.file_size,
                    mtime=image.mtime,
                    caption=_caption_record(caption) if caption is not None else None,
                    last_error=attempt[1] if attempt and not attempt[0] else "",
                    last_error_kind=attempt[2] if attempt and not attempt[0] else "",
                    review=Review(image.review),
                    rating=image.rating,
                    note=image.note,
                    outside=_leaves_folder(image.path),
                )
            )
        records.sort(key=lambda rec: (rec.path.casefold(), rec.path))
        return records

    @staticmethod
    def _latest_attempts(
        session: Session, ids: Sequence[int] | None
    ) -> dict[int, tuple[bool, str, str]]:
        newest = select(
            CaptionAttemptRow.image_id, func.max(CaptionAttemptRow.id).label("last")
        ).group_by(CaptionAttemptRow.image_id)
        if ids is not None:
            newest = newest.where(CaptionAttemptRow.image_id.in_(ids))
        sub = newest.subquery()
        rows = session.execute(
            select(
                CaptionAttemptRow.image_id,
                CaptionAttemptRow.ok,
                CaptionAttemptRow.error,
                CaptionAttemptRow.error_kind,
            ).join(sub, CaptionAttemptRow.id == sub.c.last)
        )
        return {row.image_id: (row.ok, row.error, row.error_kind) for row in rows}

    # ------------------------------------------------------------------ captions

    def _put_caption(
        self,
        session: Session,
        image_id: int,
        body: str,
        provenance: Provenance,
        *,
        backend: str | None = None,
        model: str | None = None,
        prompt: str | None = None,
        usage: TokenUsage | None = None,
        current: CaptionRow | None | EllipsisType = ...,
    ) -> None:
        """Append a version (with the tokens of the answer that made it, if any) and make it
        the image's caption. ``current``: the image's caption row (or None) when the caller has
        loaded it already; saves a query per image."""
        now = utcnow()
        session.add(
            CaptionVersionRow(
                image_id=image_id,
                body=body,
                provenance=provenance.value,
                backend=backend,
                model=model,
                prompt=prompt,
                created_at=now,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
            )
        )
        row = session.get(CaptionRow, image_id) if current is ... else current
        if row is None:
            session.add(
                CaptionRow(
                    image_id=image_id,
                    body=body,
                    provenance=provenance.value,
                    backend=backend,
                    model=model,
                    prompt=prompt,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            row.body = body
            row.provenance = provenance.value
            row.backend = backend
            row.model = model
            row.prompt = prompt
            row.updated_at = now

    def _require_image(self, session: Session, image_id: int) -> ImageRow:
        image = session.get(ImageRow, image_id)
        if image is None:
            raise InputError(f"No image with id {image_id} in {self.path.name}.")
        return image

    def store_generated(
        self,
        image_id: int,
        body: str,
        *,
        backend: str,
        model: str,
        prompt: str,
        usage: TokenUsage | None = None,
        overwrite_protected: bool = False,
    ) -> bool:
        """Store a model's caption body for an image, and record the attempt as ok with the
        tokens it cost (``usage``; the version stored carries them too).

        The check and the write happen in one transaction: if a person edited, wrote or
        imported the caption meanwhile, it is kept (and False returned) unless
        ``overwrite_protected``. The replaced text stays in the history either way.
        """
        usage = usage or TokenUsage()
        tokens = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        with self._write() as session:
            self._require_image(session, image_id)
            session.add(
                CaptionAttemptRow(image_id=image_id, ok=True, backend=backend, model=model,
                                  **tokens)
            )
            current = session.get(CaptionRow, image_id)
            if (
                current is not None
                and Provenance(current.provenance).protected
                and current.body.strip()
                and not overwrite_protected
            ):
                # Keep the generated text in the history, but not as the current caption.
                session.add(
                    CaptionVersionRow(
                        image_id=image_id, body=body, provenance=Provenance.GENERATED.value,
                        backend=backend, model=model, prompt=prompt, created_at=utcnow(),
                        **tokens,
                    )
                )
                return False
            self._put_caption(
                session, image_id, body, Provenance.GENERATED,
                backend=backend, model=model, prompt=prompt, usage=usage,
            )
            return True

    def record_failure(
        self, image_id: int, message: str, *, kind: str = "", backend: str = "", model: str = ""
    ) -> None:
        """Record a failed captioning attempt with its error message."""
        with self._write() as session:
            self._require_image(session, image_id)
            session.add(
                CaptionAttemptRow(
                    image_id=image_id, ok=False, error=message, error_kind=kind,
                    backend=backend or None, model=model or None,
                )
            )

    def edit_caption(self, image_id: int, body: str) -> CaptionRecord:
        """Store text a person typed as the image's caption body (one undo step).

        A generated (or already edited) caption becomes ``edited`` and keeps the backend, model
        and prompt it came from; otherwise the caption is ``manual``. Committed at once. Raises
        :class:`InputError` for an unknown image.
        """
        with self._write() as session:
            image = self._require_image(session, image_id)
            entry = self._edit_row(session, image_id, session.get(CaptionRow, image_id), body)
            if entry is not None:
                self._record_step(session, f"Edit caption of {_file_name(image.path)}", [entry])
            session.flush()
            row = session.get(CaptionRow, image_id)
            assert row is not None
            return _caption_record(row)

    def apply_edits(self, bodies: Mapping[int, str], label: str) -> list[int]:
        """Store new caption bodies for many images as ONE undo step labelled ``label``.

        ``bodies`` maps image id -> new body (e.g. the ``after`` of a batch find/replace). Each
        caption follows :meth:`edit_caption`'s rules (``edited``, or ``manual`` for text a person
        wrote or imported); bodies equal to the current one are skipped. All or nothing: one
        transaction. Returns the ids whose caption changed. Raises :class:`InputError` for an
        unknown or invalid image (then nothing is stored).
        """
        entries: list[dict[str, Any]] = []
        with self._write() as session, session.no_autoflush:
            images, captions = self._load_rows(session, list(bodies))
            for image_id, body in bodies.items():
                image = images.get(image_id)
                if image is None:
                    raise InputError(f"No image with id {image_id} in {self.path.name}.")
                if not image.valid:
                    raise InputError(f"{image.path} is not a valid image; its caption cannot "
                                     "be changed.")
                entry = self._edit_row(session, image_id, captions.get(image_id), body)
                if entry is not None:
                    entries.append(entry)
            if entries:
                self._record_step(session, label, entries)
        return [entry["image"] for entry in entries]

    @staticmethod
    def _load_rows(session: Session, image_ids: Sequence[int]
                   ) -> tuple[dict[int, ImageRow], dict[int, CaptionRow]]:
        """The image and caption rows of many images, in a few queries (500 ids each)."""
        images: dict[int, ImageRow] = {}
        captions: dict[int, CaptionRow] = {}
        for chunk in _chunks(image_ids):
            images.update((row.id, row) for row in
                          session.scalars(select(ImageRow).where(ImageRow.id.in_(chunk))))
            captions.update((row.image_id, row) for row in session.scalars(
                select(CaptionRow).where(CaptionRow.image_id.in_(chunk))))
        return images, captions

    def _edit_row(self, session: Session, image_id: int, current: CaptionRow | None,
                  body: str) -> dict[str, Any] | None:
        if current is not None and current.body == body:
            return None
        before = _caption_state(current)
        if current is not None and current.provenance in (
            Provenance.GENERATED.value, Provenance.EDITED.value
        ):
            after = [body, Provenance.EDITED.value, current.backend, current.model,
                     current.prompt]
        else:
            after = [body, Provenance.MANUAL.value, None, None, None]
        self._put_caption_state(session, image_id, after, current=current)
        return {"image": image_id, "before": {"caption": before}, "after": {"caption": after}}

    def restore_caption(self, image_id: int, caption: CaptionRecord | None) -> None:
        """Make ``caption`` (an earlier state) the current caption again, without an undo step.

        The body, provenance, backend, model and prompt come back exactly; ``None`` removes the
        current caption (the image becomes uncaptioned). Every text stays in the history.
        """
        state = None if caption is None else [
            caption.body, caption.provenance.value, caption.backend, caption.model,
            caption.prompt,
        ]
        with self._write() as session:
            self._require_image(session, image_id)
            self._put_caption_state(session, image_id, state)

    def restore_version(self, image_id: int, version_id: int) -> CaptionRecord:
        """Make an entry of the image's history (:meth:`history`) its current caption again.

        The version's text, provenance, model and prompt come back exactly; one undo step.
        Raises :class:`InputError` when the version does not belong to the image.
        """
        with self._write() as session:
            image = self._require_image(session, image_id)
            version = session.get(CaptionVersionRow, version_id)
            if version is None or version.image_id != image_id:
                raise InputError("That caption version is not part of this image's history.")
            current = session.get(CaptionRow, image_id)
            before = _caption_state(current)
            after = [version.body, version.provenance, version.backend, version.model,
                     version.prompt]
            if before != after:
                self._put_caption_state(session, image_id, after)
                self._record_step(
                    session, f"Restore an earlier caption of {_file_name(image.path)}",
                    [{"image": image_id, "before": {"caption": before},
                      "after": {"caption": after}}],
                )
            session.flush()
            row = session.get(CaptionRow, image_id)
            assert row is not None
            return _caption_record(row)

    def has_generated_version(self, image_id: int) -> bool:
        """True when the image's history holds a generated caption (revert is possible)."""
        with self._read() as session:
            found = session.scalar(
                select(CaptionVersionRow.id)
                .where(CaptionVersionRow.image_id == image_id)
                .where(CaptionVersionRow.provenance == Provenance.GENERATED.value)
                .limit(1)
            )
            return found is not None

    def relink(self, new_folder: Path) -> list[ImageRecord]:
        """Point missing images at ``new_folder`` (the dataset folder was moved or renamed).

        A missing image is found in ``new_folder`` under its stored relative path, or else by a
        file name that occurs exactly once in ``new_folder``'s tree. Returns the images relinked;
        images not found stay missing. Raises :class:`InputError` if ``new_folder`` is no folder.
        """
        new_folder = Path(new_folder).absolute()
        if not new_folder.is_dir():
            raise InputError(f"{new_folder} is not a folder.")
        missing = self.missing_images()
        if not missing:
            return []
        by_name: dict[str, list[Path]] = {}
        for candidate in new_folder.rglob("*"):
            if candidate.is_file():
                by_name.setdefault(candidate.name.casefold(), []).append(candidate)
        moved: list[int] = []
        with self._read() as session:
            exact: dict[int, str] = {}  # the exact stored paths, not the readable ones
            for chunk in _chunks([rec.id for rec in missing]):
                exact.update((row.id, row.path) for row in session.execute(
                    select(ImageRow.id, ImageRow.path).where(ImageRow.id.in_(chunk))))
        for rec in missing:
            target: Path | None = None
            stored = Path(exact.get(rec.id, rec.path))
            if (not stored.is_absolute() and not rec.outside
                    and (new_folder / stored).is_file()):
                target = new_folder / stored
            else:
                matches = by_name.get(stored.name.casefold(), [])
                if len(matches) == 1:
                    target = matches[0]
            if target is None:
                continue
            with self._write() as session:
                row = session.get(ImageRow, rec.id)
                assert row is not None
                row.path = self._stored(target)
            moved.append(rec.id)
        return [self.image(image_id) for image_id in moved]

    def set_review(self, image_id: int, *, review: Review | None = None,
                   rating: int | None | bool = False, note: str | None = None) -> ImageRecord:
        """Change one image's review state, rating and/or note; see :meth:`set_reviews`."""
        self.set_reviews([image_id], review=review, rating=rating, note=note)
        return self.image(image_id)

    def set_reviews(self, image_ids: Sequence[int], *, review: Review | None = None,
                    rating: int | None | bool = False, note: str | None = None,
                    label: str = "") -> list[int]:
        """Change the review state, rating (1-5; None clears it) and/or note of images.

        Arguments left out are not changed (``rating=False`` means "leave as is"). One undo
        step for all the images (``label`` or a generated one such as "Approve 3 images").
        Returns the ids that changed. Raises :class:`InputError` for a rating outside 1-5 or an
        unknown image. Committed at once.
        """
        if rating is not False and rating is not None and not 1 <= int(rating) <= 5:
            raise InputError("A rating is a whole number from 1 to 5.")
        entries: list[dict[str, Any]] = []
        with self._write() as session, session.no_autoflush:
            wanted = list(dict.fromkeys(image_ids))
            images, _captions = self._load_rows(session, wanted)
            for image_id in wanted:
                row = images.get(image_id)
                if row is None:
                    raise InputError(f"No image with id {image_id} in {self.path.name}.")
                before = _review_state(row)
                if review is not None:
                    row.review = Review(review).value
                if rating is not False:
                    row.rating = None if rating is None else int(rating)
                if note is not None:
                    row.note = note
                after = _review_state(row)
                if after != before:
                    entries.append({"image": image_id, "before": {"review": before},
                                    "after": {"review": after}})
            if entries:
                self._record_step(session, label or _review_label(
                    len(entries), review=review, rating=rating, note=note), entries)
        return [entry["image"] for entry in entries]

    # ------------------------------------------------------------------ undo and redo

    def _record_step(self, session: Session, label: str, entries: list[dict[str, Any]]) -> None:
        """Push an undo step (in the edit's own transaction) and trim the stack.

        A new step discards the redo branch, as in every editor.
        """
        session.execute(delete(UndoStepRow).where(UndoStepRow.undone.is_(True)))
        session.add(UndoStepRow(label=label, created_at=utcnow(), undone=False,
                                entries=len(entries), payload=json.dumps(entries)))
        session.flush()
        rows = session.execute(
            select(UndoStepRow.id, UndoStepRow.entries).order_by(UndoStepRow.id.desc())
        ).all()
        kept_entries = 0
        drop: list[int] = []
        for position, (step_id, count) in enumerate(rows):
            kept_entries += count
            if position > 0 and (position >= MAX_UNDO_STEPS or kept_entries > MAX_UNDO_ENTRIES):
                drop.append(step_id)
        if drop:
            session.execute(delete(UndoStepRow).where(UndoStepRow.id.in_(drop)))

    def _put_caption_state(self, session: Session, image_id: int, state: list[Any] | None,
                           *, current: CaptionRow | None | EllipsisType = ...) -> None:
        if state is None:
            row = session.get(CaptionRow, image_id) if current is ... else current
            if row is not None:
                session.delete(row)
            return
        body, provenance, backend, model, prompt = state
        self._put_caption(session, image_id, body, Provenance(provenance),
                          backend=backend, model=model, prompt=prompt, current=current)

    def _step(self, *, undo: bool) -> UndoOutcome | None:
        with self._write() as session, session.no_autoflush:
            query = select(UndoStepRow).where(UndoStepRow.undone.is_(not undo))
            query = query.order_by(UndoStepRow.id.desc() if undo else UndoStepRow.id)
            step = session.scalars(query.limit(1)).first()
            if step is None:
                return None
            source, target = ("after", "before") if undo else ("before", "after")
            entries = _undo_entries(self.path, step.payload)
            images, captions = self._load_rows(session, [int(e["image"]) for e in entries])
            changed: list[int] = []
            skipped: list[int] = []
            for entry in entries:
                image_id = int(entry["image"])
                image = images.get(image_id)
                current = captions.get(image_id)
                wanted = entry[target]
                now: dict[str, Any] = {}
                if "caption" in wanted:
                    now["caption"] = _caption_state(current)
                if "review" in wanted and image is not None:
                    now["review"] = _review_state(image)
                # Something else changed the image after this step: leave it as it is.
                if image is None or now != entry[source]:
                    skipped.append(image_id)
                    continue
                if "caption" in wanted:
                    self._put_caption_state(session, image_id, wanted["caption"],
                                            current=current)
                if "review" in wanted:
                    image.review, image.rating, image.note = wanted["review"]
                changed.append(image_id)
            step.undone = undo
            return UndoOutcome(step.label, changed, skipped)

    def undo(self) -> UndoOutcome | None:
        """Take back the newest edit that is not undone; None when there is nothing to undo.

        Survives closing and reopening: the stack is stored in the project file. An image that
        something else changed after the step (a captioning batch, another edit) is skipped and
        reported in :attr:`UndoOutcome.skipped`, never overwritten.
        """
        return self._step(undo=True)

    def redo(self) -> UndoOutcome | None:
        """Do again the oldest undone edit; None when there is nothing to redo."""
        return self._step(undo=False)

    def undo_label(self) -> str | None:
        """The label of the step :meth:`undo` would take back, or None."""
        return self._peek(undone=False)

    def redo_label(self) -> str | None:
        """The label of the step :meth:`redo` would do again, or None."""
        return self._peek(undone=True)

    def _peek(self, *, undone: bool) -> str | None:
        order = UndoStepRow.id if undone else UndoStepRow.id.desc()
        with self._read() as session:
            return session.scalar(
                select(UndoStepRow.label).where(UndoStepRow.undone.is_(undone))
                .order_by(order).limit(1)
            )

    def history(self, image_id: int) -> list[CaptionVersion]:
        """Every caption version of an image, oldest first."""
        with self._read() as session:
            rows = session.scalars(
                select(CaptionVersionRow)
                .where(CaptionVersionRow.image_id == image_id)
                .order_by(CaptionVersionRow.id)
            )
            return [
                CaptionVersion(
                    id=row.id, body=row.body, provenance=Provenance(row.provenance),
                    backend=row.backend, model=row.model, prompt=row.prompt,
                    created_at=row.created_at, input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                )
                for row in rows
            ]

    def revert_to_generated(self, image_id: int) -> CaptionRecord:
        """Make the latest generated version the current caption again (one undo step; the edit
        stays in the history). Raises :class:`InputError` when the image has never had a
        generated caption."""
        generated = [v for v in self.history(image_id) if v.provenance is Provenance.GENERATED]
        if not generated:
            raise InputError("This image has no generated caption to revert to.")
        return self.restore_version(image_id, generated[-1].id)

    def final_caption(self, record: ImageRecord, settings: ProjectSettings | None = None) -> str:
        """The caption a trainer reads: the rendered prefix plus the body; ``""`` if none."""
        settings = settings or self.settings
        if record.caption is None:
            return ""
        return full_caption(settings.prefix_template, settings.trigger, record.caption.body)

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

    # ------------------------------------------------------------------ batches and counts

    def select_for_captioning(
        self,
        mode: CaptionMode,
        image_ids: Sequence[int] = (),
        *,
        overwrite_protected: bool = False,
    ) -> tuple[list[int], list[int]]:
        """Choose a batch's images.

        Returns ``(to_caption, protected)``: the ids to caption, and the ids left out because
        their caption is ``edited``, ``manual`` or ``imported`` and ``overwrite_protected`` is
        False. Invalid images and images whose file is missing are never selected.
        """
        wanted = set(image_ids)
        chosen: list[int] = []
        protected: list[int] = []
        for rec in self.images():
            if not rec.valid or not rec.abs_path.is_file():
                continue
            if mode is CaptionMode.MISSING and rec.has_caption:
                continue
            if mode is CaptionMode.FAILED and not rec.failed:
                continue
            if mode is CaptionMode.SELECTED and rec.id not in wanted:
                continue
            if rec.has_caption and rec.caption and rec.caption.provenance.protected:
                if not overwrite_protected:
                    protected.append(rec.id)
                    continue
            chosen.append(rec.id)
        return chosen, protected

    def stats(self) -> ProjectStats:
        """Counts of images and captions (see :class:`ProjectStats`)."""
        images = self.images()
        valid = [rec for rec in images if rec.valid]
        provenance = {p.value: 0 for p in Provenance}
        for rec in valid:
            if rec.has_caption and rec.caption:
                provenance[rec.caption.provenance.value] += 1
        return ProjectStats(
            images=len(valid),
            invalid=len(images) - len(valid),
            captioned=sum(rec.has_caption for rec in valid),
            failed=sum(rec.failed for rec in valid),
            missing_files=sum(not rec.abs_path.is_file() for rec in valid),
            provenance=provenance,
            reviewed=sum(rec.review is not Review.UNREVIEWED for rec in valid),
            approved=sum(rec.review is Review.APPROVED for rec in valid),
            rejected=sum(rec.review is Review.REJECTED for rec in valid),
        )


    def token_usage(self) -> list[ModelUsage]:
        """The tokens every answer received so far cost, per backend and model (sorted by
        backend, then model): what the services billed, whether the caption was kept or not.
        Failed attempts count no tokens (a refusal or an error answer carries none)."""
        with self._read() as session:
            rows = session.execute(
                select(CaptionAttemptRow.backend, CaptionAttemptRow.model,
                       func.count(), func.sum(CaptionAttemptRow.input_tokens),
                       func.sum(CaptionAttemptRow.output_tokens))
                .where(CaptionAttemptRow.ok.is_(True))
                .group_by(CaptionAttemptRow.backend, CaptionAttemptRow.model)
            ).all()
        return sorted(
            (ModelUsage(backend or "", model or "", int(count), int(inp or 0), int(out or 0))
             for backend, model, count, inp, out in rows),
            key=lambda usage: (usage.backend, usage.model),
        )


def _caption_record(row: CaptionRow) -> CaptionRecord:
    return CaptionRecord(
        body=row.body,
        provenance=Provenance(row.provenance),
        backend=row.backend,
        model=row.model,
        prompt=row.prompt,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    """``ids`` in slices of ``size``: SQLite limits the variables of one statement."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _file_name(stored: str) -> str:
    return readable_path(stored.rsplit("/", 1)[-1])


def _caption_state(row: CaptionRow | None) -> list[Any] | None:
    """A caption as stored in an undo step: ``[body, provenance, backend, model, prompt]``."""
    if row is None:
        return None
    return [row.body, row.provenance, row.backend, row.model, row.prompt]


def _review_state(row: ImageRow) -> list[Any]:
    """An image's review fields as stored in an undo step: ``[review, rating, note]``."""
    return [row.review, row.rating, row.note]


def _review_label(count: int, *, review: Review | None, rating: int | None | bool,
                  note: str | None) -> str:
    images = "1 image" if count == 1 else f"{count} images"
    if review is not None:
        verb = {Review.APPROVED: "Approve", Review.REJECTED: "Reject",
                Review.UNREVIEWED: "Clear the review mark of"}[Review(review)]
        return f"{verb} {images}"
    if rating is not False:
        if rating is None:
            return f"Clear the rating of {images}"
        return f"Set the rating of {images} to {rating}"
    return f"Edit the note of {images}"


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
